package dev.wanlora.engine.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** Writer → reader round trips, musubi's 256-byte header rule, and atomic replacement. */
class SafeTensorsWriterTest {

    @TempDir
    Path tmp;

    private static final float[] VALUES = {0f, -0f, 1f, -2.5f, 3.14159265f, 1e-3f, 65504f, 300f};

    @Test
    void roundTripsEveryDtype() {
        Shape s = Shape.of(2, 4);
        List<SafeTensorsWriter.Entry> entries = List.of(
                SafeTensorsWriter.Entry.ofFloats("f32", DType.F32, s, VALUES),
                SafeTensorsWriter.Entry.ofFloats("bf16", DType.BF16, s, VALUES),
                SafeTensorsWriter.Entry.ofFloats("f16", DType.F16, s, VALUES),
                SafeTensorsWriter.Entry.ofFloats("e4m3", DType.F8_E4M3, s, VALUES),
                SafeTensorsWriter.Entry.ofFloats("e5m2", DType.F8_E5M2, s, VALUES),
                SafeTensorsWriter.Entry.ofFloats("f64", DType.F64, s, VALUES),
                SafeTensorsWriter.Entry.ofFloats("alpha", DType.F32, Shape.of(), new float[] {4f}),
                SafeTensorsWriter.Entry.ofFloats("empty", DType.F32, Shape.of(0, 3), new float[0]),
                SafeTensorsWriter.Entry.ofBytes("ints", DType.I32, Shape.of(2), new byte[] {1, 0, 0, 0, -1, -1, -1, -1}));
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("ss_network_dim", "4");
        metadata.put("caption1", "a \"quoted\" ünïcode caption\nwith a newline");
        Path f = tmp.resolve("all.safetensors");
        SafeTensorsWriter.write(f, entries, metadata);

        try (SafeTensors st = SafeTensors.open(f)) {
            assertEquals(entries.stream().map(SafeTensorsWriter.Entry::name).toList(), List.copyOf(st.keys()));
            assertEquals(metadata, st.metadata());
            float[] bf16 = new float[VALUES.length], f16 = new float[VALUES.length], e4m3 = new float[VALUES.length],
                    e5m2 = new float[VALUES.length];
            for (int i = 0; i < VALUES.length; i++) {
                bf16[i] = Bf16.round(VALUES[i]);
                f16[i] = Fp16.round(VALUES[i]);
                e4m3[i] = Fp8.e4m3ToFloat(Fp8.e4m3FromFloat(VALUES[i]));
                e5m2[i] = Fp8.e5m2ToFloat(Fp8.e5m2FromFloat(VALUES[i]));
            }
            assertArrayEquals(VALUES, st.floats("f32"));
            assertArrayEquals(VALUES, st.floats("f64"));
            assertArrayEquals(bf16, st.floats("bf16"));
            assertArrayEquals(f16, st.floats("f16"));
            assertArrayEquals(e4m3, st.floats("e4m3"));
            assertArrayEquals(e5m2, st.floats("e5m2"));
            // Spot values: bf16(3.14159265) = 3.140625 (0x4049), e4m3(300) = 288 (0x79: 2^8 · 1.125), e4m3(1e-3) = 2^-10
            // rounds to 2^-9·0 or 2^-9·1: 1e-3 / 2^-9 = 0.512 > 0.5, so one subnormal step, 2^-9 = 0.001953125.
            assertEquals(3.140625f, st.floats("bf16")[4]);
            assertEquals(288f, st.floats("e4m3")[7]);
            assertEquals(0.001953125f, st.floats("e4m3")[5]);
            assertArrayEquals(new float[] {4f}, st.floats("alpha"));
            assertEquals(Shape.of(0, 3), st.info("empty").shape());
            assertEquals(0, st.info("empty").byteLength());
            assertEquals(-1, st.data("ints").get(ValueLayout.JAVA_INT_UNALIGNED, 4));
        }
    }

    @Test
    void headerIsPaddedTo256AndOffsetsAreContiguous() throws IOException {
        // Metadata of every length 0..300 crosses several 256-byte boundaries of the header.
        for (int n = 0; n <= 300; n += 7) {
            Path f = tmp.resolve("pad" + n + ".safetensors");
            List<SafeTensorsWriter.Entry> entries = List.of(
                    SafeTensorsWriter.Entry.ofFloats("b", DType.F32, Shape.of(3), new float[] {1, 2, 3}),
                    SafeTensorsWriter.Entry.ofFloats("e", DType.BF16, Shape.of(0), new float[0]),
                    SafeTensorsWriter.Entry.ofFloats("a", DType.BF16, Shape.of(1), new float[] {5}));
            SafeTensorsWriter.write(f, entries, n == 0 ? Map.of() : Map.of("m", "x".repeat(n)));
            byte[] bytes = Files.readAllBytes(f);
            long headerLength = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            assertEquals(0, (8 + headerLength) % 256, "n=" + n);
            assertEquals(8 + headerLength + 12 + 0 + 2, bytes.length);
            String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);
            assertTrue(header.stripTrailing().endsWith("}"));
            assertTrue(header.substring(header.stripTrailing().length()).chars().allMatch(c -> c == ' '));
            JsonNode root = JsonMapper.builder().build().readTree(header);
            List<String> keys = new ArrayList<>();
            root.fieldNames().forEachRemaining(keys::add);
            assertEquals(n == 0 ? List.of("b", "e", "a") : List.of("__metadata__", "b", "e", "a"), keys);
            assertEquals("[0,12]", root.get("b").get("data_offsets").toString());
            assertEquals("[12,12]", root.get("e").get("data_offsets").toString());
            assertEquals("[12,14]", root.get("a").get("data_offsets").toString());
        }
    }

    @Test
    void copiesTheGoldenDitByteForByte() {
        Path src = Golden.dir("wan-tiny").resolve("model.safetensors");
        Path copy = tmp.resolve("copy.safetensors");
        try (SafeTensors in = SafeTensors.open(src)) {
            List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
            for (String k : in.keys()) {
                SafeTensors.TensorInfo i = in.info(k);
                entries.add(new SafeTensorsWriter.Entry(k, i.dtype(), i.shape(), in.data(k)));
            }
            SafeTensorsWriter.write(copy, entries, in.metadata());
            try (SafeTensors out = SafeTensors.open(copy)) {
                assertEquals(List.copyOf(in.keys()), List.copyOf(out.keys()));
                assertEquals(in.metadata(), out.metadata());
                for (String k : in.keys()) {
                    assertEquals(in.info(k).shape(), out.info(k).shape());
                    assertEquals(-1, in.data(k).mismatch(out.data(k)), k);
                }
            }
        }
    }

    @Test
    void failedWriteLeavesTargetUntouchedAndNoTemporary() throws IOException {
        Path f = tmp.resolve("lora.safetensors");
        Files.writeString(f, "previous epoch");
        MemorySegment dead;
        try (Arena a = Arena.ofConfined()) {
            dead = a.allocate(8);
        }
        // The second tensor's memory is gone: reading it fails half-way through the write.
        List<SafeTensorsWriter.Entry> entries = List.of(
                SafeTensorsWriter.Entry.ofFloats("ok", DType.F32, Shape.of(2), new float[] {1, 2}),
                new SafeTensorsWriter.Entry("dead", DType.F32, Shape.of(2), dead));
        assertThrows(IllegalStateException.class, () -> SafeTensorsWriter.write(f, entries, Map.of()));
        assertEquals("previous epoch", Files.readString(f));
        assertEquals(List.of(f), listing());
    }

    @Test
    void missingFolderIsOneLine() throws IOException {
        Path f = tmp.resolve("no/such/dir/out.safetensors");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> SafeTensorsWriter.write(f,
                List.of(SafeTensorsWriter.Entry.ofFloats("a", DType.F32, Shape.of(1), new float[] {1})), Map.of()));
        assertTrue(e.getMessage().startsWith(f.toAbsolutePath() + ": cannot write (NoSuchFileException: "), e.getMessage());
        assertTrue(e.getMessage().endsWith("). hint: check that the folder exists, is writable and has free space"));
        assertEquals(List.of(), listing());
    }

    @Test
    void replacesAnExistingFile() {
        Path f = tmp.resolve("x.safetensors");
        SafeTensorsWriter.write(f, List.of(SafeTensorsWriter.Entry.ofFloats("a", DType.F32, Shape.of(1), new float[] {1})), Map.of());
        SafeTensorsWriter.write(f, List.of(SafeTensorsWriter.Entry.ofFloats("b", DType.F32, Shape.of(1), new float[] {2})), Map.of());
        try (SafeTensors st = SafeTensors.open(f)) {
            assertEquals(List.of("b"), List.copyOf(st.keys()));
        }
    }

    @Test
    void refusesBadEntries() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.write(tmp.resolve("d.safetensors"),
                List.of(SafeTensorsWriter.Entry.ofFloats("a", DType.F32, Shape.of(1), new float[] {1}),
                        SafeTensorsWriter.Entry.ofFloats("a", DType.F32, Shape.of(1), new float[] {2})), Map.of()));
        assertEquals("SafeTensorsWriter.write: duplicate tensor name; got 'a' twice, expected unique names", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.Entry.ofBytes("w", DType.BF16, Shape.of(3), new byte[4]));
        assertEquals("SafeTensorsWriter.Entry 'w': byte size does not match dtype and shape; got 4 bytes, expected 6 (BF16 (3))",
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.Entry.ofFloats("w", DType.F32, Shape.of(3), new float[2]));
        assertEquals("SafeTensorsWriter.Entry.ofFloats 'w': value count does not match shape; got 2 values, expected 3 for (3)",
                e.getMessage());
        UnsupportedOperationException u = assertThrows(UnsupportedOperationException.class,
                () -> SafeTensorsWriter.Entry.ofFloats("w", DType.I8, Shape.of(1), new float[1]));
        assertEquals("SafeTensorsWriter.Entry.ofFloats 'w': cannot store floats as I8; supported: F64, F32, F16, BF16, F8_E4M3, F8_E5M2",
                u.getMessage());
        assertThrows(IllegalArgumentException.class, () -> SafeTensorsWriter.Entry.ofBytes("__metadata__", DType.U8, Shape.of(0), new byte[0]));
    }

    private List<Path> listing() throws IOException {
        try (Stream<Path> s = Files.list(tmp)) {
            return s.toList();
        }
    }
}
