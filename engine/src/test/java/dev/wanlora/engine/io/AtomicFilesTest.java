package dev.wanlora.engine.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** Atomic replacement of files and folders: success replaces, failure leaves the old content and no temporary. */
class AtomicFilesTest {

    @TempDir
    Path tmp;

    @Test
    void writesAndReplacesAFile() throws IOException {
        Path f = tmp.resolve("config.toml");
        AtomicFiles.writeString(f, "a = 1\n");
        assertEquals("a = 1\n", Files.readString(f));
        AtomicFiles.writeString(f, "a = 2\n");
        assertEquals("a = 2\n", Files.readString(f));
        assertEquals(List.of(f), listing(tmp));
    }

    @Test
    void failingContentKeepsTheOldFile() throws IOException {
        Path f = tmp.resolve("config.toml");
        AtomicFiles.writeString(f, "old");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> AtomicFiles.write(f, temp -> {
            Files.writeString(temp, "half");
            throw new IOException("disk full");
        }));
        assertEquals(f + ": cannot write (IOException: disk full). hint: check that the folder exists, is writable and has"
                + " free space", e.getMessage());
        IllegalStateException bug = new IllegalStateException("bug");
        assertSame(bug, assertThrows(IllegalStateException.class, () -> AtomicFiles.write(f, temp -> { throw bug; })));
        assertEquals("old", Files.readString(f));
        assertEquals(List.of(f), listing(tmp));
    }

    @Test
    void writesAndReplacesAFolder() throws IOException {
        Path state = tmp.resolve("lora-000001-state");
        AtomicFiles.writeDirectory(state, d -> {
            Files.writeString(d.resolve("step.txt"), "10");
            Files.createDirectory(d.resolve("optimizer"));
            Files.writeString(d.resolve("optimizer/m.bin"), "m");
        });
        assertEquals("m", Files.readString(state.resolve("optimizer/m.bin")));
        AtomicFiles.writeDirectory(state, d -> Files.writeString(d.resolve("step.txt"), "20"));
        assertEquals("20", Files.readString(state.resolve("step.txt")));
        assertFalse(Files.exists(state.resolve("optimizer")));
        assertEquals(List.of(state), listing(tmp));
    }

    @Test
    void failingFolderContentKeepsTheOldFolder() throws IOException {
        Path state = tmp.resolve("s");
        AtomicFiles.writeDirectory(state, d -> Files.writeString(d.resolve("step.txt"), "10"));
        assertThrows(UncheckedIOException.class, () -> AtomicFiles.writeDirectory(state, d -> {
            Files.writeString(d.resolve("step.txt"), "20");
            Files.createDirectory(d.resolve("sub"));
            Files.writeString(d.resolve("sub/x"), "x");
            throw new IOException("disk full");
        }));
        assertEquals("10", Files.readString(state.resolve("step.txt")));
        assertEquals(List.of(state), listing(tmp));
    }

    private static List<Path> listing(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.toList();
        }
    }
}
