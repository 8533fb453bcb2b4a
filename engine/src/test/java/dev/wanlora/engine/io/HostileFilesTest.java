package dev.wanlora.engine.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15 items 1, 8 and 9 at the engine's file layer: a header nested thousands deep, the leftovers of a killed save,
 * and a failed write that must name the file the user asked for, not its hidden temporary.
 */
class HostileFilesTest {

    @TempDir
    Path dir;

    private Path safetensors(String name, String header) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).put(h);
        return Files.write(dir.resolve(name), b.array());
    }

    /** Item 1: Jackson's depth-limit error has no location; it used to end in an NPE inside readHeader. */
    @Test
    void deeplyNestedHeaderIsOneLine() throws IOException {
        for (int depth : new int[] {65, 1001, 100_000}) {
            Path f = safetensors("deep" + depth + ".safetensors", "{\"__metadata__\":" + "[".repeat(depth) + "]".repeat(depth) + "}");
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(f));
            assertTrue(e.getMessage().startsWith(f + ": header is not valid JSON ("), e.getMessage());
            assertTrue(e.getMessage().contains("nesting depth"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
        // a shallow header still parses: the limit is far above a real header's 3 levels
        Path ok = safetensors("ok.safetensors", "{\"__metadata__\":{\"a\":\"b\"}}");
        try (SafeTensors st = SafeTensors.open(ok)) {
            assertEquals(Map.of("a", "b"), st.metadata());
        }
        // the index reader shares the limit
        Path index = Files.writeString(dir.resolve("m.safetensors.index.json"), "{\"weight_map\":" + "[".repeat(2000) + "]".repeat(2000) + "}");
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(index));
        assertTrue(e.getMessage().contains("not valid JSON") && e.getMessage().contains("nesting depth"), e.getMessage());
    }

    @Test
    void malformedUtf8NamesItsOffset() throws IOException {
        byte[] h = "{\"a\":1}".getBytes(StandardCharsets.UTF_8);
        h[3] = (byte) 0xff;
        ByteBuffer b = ByteBuffer.allocate(8 + h.length).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).put(h);
        Path f = Files.write(dir.resolve("utf.safetensors"), b.array());
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(f));
        assertEquals(f + ": header is not valid UTF-8 (a malformed byte at header offset 3). hint: the file is corrupt or not"
                + " safetensors", e.getMessage());
    }

    /** Item 8: a kill during a state save leaves .NAME-stepN-state.HEX.tmp; the next start removes it. */
    @Test
    void leftoversOfKilledSavesAreRemoved() throws IOException {
        Path tmpFolder = Files.createDirectories(dir.resolve(".run-step00000002-state.0123456789abcdef.tmp"));
        Files.write(tmpFolder.resolve("optimizer.safetensors"), new byte[1000]);
        Path tmpFile = Files.write(dir.resolve(".run.safetensors.fedcba9876543210.tmp"), new byte[10]);
        // kill after the target was renamed aside, before the new copy was renamed in: both copies complete
        Path asideOld = Files.createDirectories(dir.resolve(".run-state.00000000000000aa.old"));
        Files.writeString(asideOld.resolve("state.json"), "old");
        Path asideNew = Files.createDirectories(dir.resolve(".run-state.00000000000000aa.tmp"));
        Files.writeString(asideNew.resolve("state.json"), "new");
        // kill after both renames, before the old copy was deleted
        Files.createDirectories(dir.resolve("run-000001-state"));
        Path done = Files.createDirectories(dir.resolve(".run-000001-state.00000000000000bb.old"));
        // not ours: other hidden files, a name without 16 hex digits
        Path other = Files.writeString(dir.resolve(".hidden.tmp"), "x");
        Path notHex = Files.writeString(dir.resolve(".run.safetensors.xyz.tmp"), "x");

        Map<Path, Long> removed = AtomicFiles.removeLeftovers(dir);

        assertEquals(Map.of(tmpFolder, 1000L, tmpFile, 10L, asideOld, 3L, done, 0L), removed);
        assertEquals("new", Files.readString(dir.resolve("run-state/state.json")));
        assertFalse(Files.exists(asideNew));
        assertTrue(Files.exists(other) && Files.exists(notHex) && Files.isDirectory(dir.resolve("run-000001-state")));
        assertEquals(Map.of(), AtomicFiles.removeLeftovers(dir));
    }

    /** Item 9: the disk-full error of a write names the target (file, or file inside the state folder), never the temporary. */
    @Test
    void failedWritesNameTheTargetNotTheTemporary() {
        Path file = dir.resolve("lora.safetensors");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> AtomicFiles.write(file, temp -> {
            throw new FileSystemException(temp.toString(), null, "No space left on device");
        }));
        assertEquals(file + ": cannot write (FileSystemException: " + file + ": No space left on device). hint: check that the"
                + " folder exists, is writable and has free space", e.getMessage());

        Path state = dir.resolve("run-state");
        e = assertThrows(UncheckedIOException.class, () -> AtomicFiles.writeDirectory(state, temp -> {
            throw new FileSystemException(temp.resolve("optimizer.safetensors").toString(), null, "No space left on device");
        }));
        assertTrue(e.getMessage().contains("(FileSystemException: " + state.resolve("optimizer.safetensors")
                + ": No space left on device)"), e.getMessage());
        assertFalse(e.getMessage().contains(".tmp"), e.getMessage());
    }
}
