package dev.wanlora.engine.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The read-ahead runs only when the files fit in half of the available memory, and close() always stops it. */
class FileReadAheadTest {

    @TempDir
    Path dir;

    @Test
    void readsOnlyWhatFitsInHalfTheAvailableMemory() throws IOException {
        Path a = Files.write(dir.resolve("a.safetensors"), new byte[3 << 20]);
        Path b = Files.write(dir.resolve("b.safetensors"), new byte[1 << 20]);
        List<Path> files = List.of(a, b);
        try (FileReadAhead r = FileReadAhead.start(files, 8L << 20)) { // 4 MiB of files, 8 MiB available: exactly half
            assertTrue(r.isReading());
        }
        try (FileReadAhead r = FileReadAhead.start(files, (8L << 20) - 1)) {
            assertFalse(r.isReading());
        }
        try (FileReadAhead r = FileReadAhead.start(files, 0)) { // MemAvailable unknown
            assertFalse(r.isReading());
        }
        try (FileReadAhead r = FileReadAhead.start(List.of(dir.resolve("missing.safetensors")), 1L << 40)) {
            assertFalse(r.isReading()); // the loader names a missing file; the hint does nothing
        }
    }

    @Test
    void oneReaderPerFileWhileItsHandleIsOpen() throws IOException {
        Path a = Files.write(dir.resolve("one.safetensors"), new byte[1 << 20]);
        try (FileReadAhead first = FileReadAhead.start(List.of(a), 1L << 40)) {
            assertTrue(first.isReading());
            try (FileReadAhead second = FileReadAhead.start(List.of(dir.resolve("./one.safetensors")), 1L << 40)) {
                assertFalse(second.isReading()); // the same file, named another way: the first reader covers it
            }
        }
        try (FileReadAhead third = FileReadAhead.start(List.of(a), 1L << 40)) {
            assertTrue(third.isReading()); // the first handle is closed: the file can be read again
        }
    }

    @Test
    void readersCoverFilesOfAnySizeAndStop() throws IOException, InterruptedException {
        // 2.5 chunks per reader's turn: the last chunk is short and falls to reader 0; an empty file reads nothing.
        Path big = Files.write(dir.resolve("big.safetensors"), new byte[FileReadAhead.READERS * FileReadAhead.CHUNK_BYTES
                + FileReadAhead.CHUNK_BYTES / 2]);
        Path empty = Files.write(dir.resolve("empty.safetensors"), new byte[0]);
        FileReadAhead r = FileReadAhead.start(List.of(big, empty), 1L << 40);
        assertTrue(r.isReading());
        r.close();
        r.close(); // idempotent
        try (FileReadAhead again = FileReadAhead.start(List.of(big), 1L << 40)) {
            assertTrue(again.isReading()); // the claim ended with the first handle's close
        }
    }
}
