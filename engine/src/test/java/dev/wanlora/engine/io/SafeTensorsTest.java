package dev.wanlora.engine.io;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;

import static dev.wanlora.engine.io.SafeTensorsFiles.f32;
import static dev.wanlora.engine.io.SafeTensorsFiles.raw;
import static org.junit.jupiter.api.Assertions.*;

/** Reading well-formed files: the wan-tiny golden DiT and small hand-made files. */
class SafeTensorsTest {

    @TempDir
    Path tmp;

    @Test
    void readsGoldenTinyDit() {
        try (SafeTensors st = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"))) {
            assertEquals(69, st.keys().size());
            for (String k : st.keys()) assertEquals(DType.BF16, st.info(k).dtype(), k);
            SafeTensors.TensorInfo pe = st.info("patch_embedding.weight");
            assertEquals(Shape.of(256, 16, 1, 2, 2), pe.shape());
            assertEquals(256L * 16 * 4 * 2, pe.byteLength());
            // The first key in the header is the first in keys() (header order, as Python's json.dumps wrote it).
            assertEquals("blocks.0.cross_attn.k.bias", st.keys().iterator().next());
            // floats() widens bf16 exactly: each value equals the raw bits shifted into a float.
            MemorySegment raw = st.data("head.modulation");
            float[] v = st.floats("head.modulation");
            assertEquals(2 * 256, v.length);
            for (int i = 0; i < v.length; i++) {
                short bits = raw.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i);
                assertEquals(Bf16.toFloat(bits), v[i]);
            }
            assertTrue(st.metadata().containsKey("config"));
            assertTrue(raw.isReadOnly());
        }
    }

    @Test
    void readsHandMadeFile() throws IOException {
        // a: F32 (2) = [1.5, -2]; b: F32 () = 7, stored first so offsets are out of header order but disjoint.
        Path f = raw(tmp.resolve("x.safetensors"),
                "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                        + "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                f32(7f, 1.5f, -2f));
        try (SafeTensors st = SafeTensors.open(f)) {
            assertEquals(List.of("a", "b"), List.copyOf(st.keys()));
            assertEquals(List.of("b", "a"), st.keysInFileOrder(), "b's bytes come first");
            assertArrayEquals(new float[] {1.5f, -2f}, st.floats("a"));
            assertArrayEquals(new float[] {7f}, st.floats("b"));
            assertEquals(Map.of("format", "pt"), st.metadata());
            assertEquals(new SafeTensors.TensorInfo("b", DType.F32, Shape.of(), f, 4), st.info("b"));
            assertTrue(st.contains("a"));
            assertFalse(st.contains("c"));
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> st.info("c"));
            assertEquals(f + ": no tensor 'c' (the file has 2 tensors). hint: run `wanlora inspect " + f
                    + "` to list its keys", e.getMessage());
        }
    }

    @Test
    void stripsPrefixes() throws IOException {
        Path f = raw(tmp.resolve("comfy.safetensors"),
                "{\"model.diffusion_model.blocks.0.x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        + "\"diffusion_model.head.y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                        + "\"other\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                f32(1, 2, 3));
        try (SafeTensors st = SafeTensors.open(f, SafeTensors.DIT_PREFIXES)) {
            assertEquals(List.of("blocks.0.x", "head.y", "other"), List.copyOf(st.keys()));
            assertArrayEquals(new float[] {2}, st.floats("head.y"));
            assertEquals("head.y", st.info("head.y").name());
        }
        try (SafeTensors st = SafeTensors.open(f)) {
            assertTrue(st.contains("model.diffusion_model.blocks.0.x"));
        }
    }

    @Test
    void refusesKeysThatClashAfterStripping() throws IOException {
        Path f = raw(tmp.resolve("clash.safetensors"),
                "{\"model.diffusion_model.a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                f32(1, 2));
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(f, SafeTensors.DIT_PREFIXES));
        assertTrue(e.getMessage().startsWith(f + ": keys 'model.diffusion_model.a' and 'a' both become 'a'"), e.getMessage());
    }

    @Test
    void floatsRefusesIntegers() throws IOException {
        Path f = raw(tmp.resolve("i.safetensors"), "{\"n\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]);
        try (SafeTensors st = SafeTensors.open(f)) {
            SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> st.floats("n"));
            assertEquals(f + ": tensor 'n' is I32, floats() needs F32, F64, F16, BF16, F8_E4M3 or F8_E5M2."
                    + " hint: read integer tensors through data(key)", e.getMessage());
            assertEquals(4, st.data("n").byteSize());
        }
    }

    @Test
    void mapsFilesBeyondTwoGiB() throws IOException {
        // A sparse 3 GiB file: "big" (U8, 3 GiB) then "tail" (F32 (2)) at byte offset 3 GiB of the data section.
        long big = 3L << 30;
        String header = "{\"big\":{\"dtype\":\"U8\",\"shape\":[" + big + "],\"data_offsets\":[0," + big + "]},"
                + "\"tail\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" + big + "," + (big + 8) + "]}}";
        Path f = raw(tmp.resolve("sparse.safetensors"), header, new byte[0]);
        long dataStart = Files.size(f);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(f32(6.5f, -1f)), dataStart + big);
        }
        try (SafeTensors st = SafeTensors.open(f)) {
            assertEquals(big, st.data("big").byteSize());
            assertArrayEquals(new float[] {6.5f, -1f}, st.floats("tail"));
        }
    }

    @Test
    void dataAfterCloseThrows() throws IOException {
        Path f = raw(tmp.resolve("c.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", f32(1));
        SafeTensors st = SafeTensors.open(f);
        MemorySegment s = st.data("a");
        st.close();
        st.close(); // idempotent
        assertThrows(IllegalStateException.class, () -> st.data("a"));
        assertThrows(IllegalStateException.class, () -> s.get(ValueLayout.JAVA_BYTE, 0));
    }
}
