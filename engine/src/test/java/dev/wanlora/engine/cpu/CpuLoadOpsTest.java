package dev.wanlora.engine.cpu;

import dev.wanlora.engine.io.ByteSource;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.numeric.Fp8BlockQuantizer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** The loader's two ops on the CPU reference: writeBytes (raw bytes from a source) and quantizeFp8 (musubi's quantizer). */
class CpuLoadOpsTest {
    private final CpuBackend cpu = new CpuBackend();

    /** writeBytes from a file range decodes exactly what fromBytes decodes from the same bytes, for every dtype. */
    @Test
    void writeBytesFromAFileEqualsFromBytes(@TempDir Path dir) {
        SplittableRandom random = new SplittableRandom(7);
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        DType[] dtypes = {DType.F32, DType.BF16, DType.F16, DType.F8_E4M3, DType.F8_E5M2};
        for (DType t : dtypes) {
            float[] v = new float[77];
            for (int i = 0; i < v.length; i++) v[i] = (float) (random.nextGaussian() * 3);
            entries.add(SafeTensorsWriter.Entry.ofFloats("x." + t, t, Shape.of(7, 11), v));
        }
        Path file = dir.resolve("t.safetensors");
        SafeTensorsWriter.write(file, entries, Map.of());
        try (SafeTensors st = SafeTensors.open(file)) {
            for (DType t : dtypes) {
                String key = "x." + t;
                try (Tensor expected = cpu.fromBytes(t, Shape.of(7, 11), st.data(key));
                     Tensor big = cpu.allocate(t, Shape.of(100))) {
                    Tensor x = big.view(10, Shape.of(7, 11)); // a view at an offset: only its elements change
                    cpu.writeBytes(x, st.source(key));
                    assertArrayEquals(cpu.toFloats(expected), cpu.toFloats(x), key);
                    assertEquals(0f, cpu.toFloats(big)[9]);
                    assertEquals(0f, cpu.toFloats(big)[87]);
                }
            }
            try (Tensor wrong = cpu.allocate(DType.BF16, Shape.of(5))) {
                var e = assertThrows(IllegalArgumentException.class, () -> cpu.writeBytes(wrong, st.source("x.BF16")));
                assertTrue(e.getMessage().startsWith("writeBytes: byte count does not match"), e.getMessage());
            }
        }
    }

    @Test
    void byteSourceOfASegmentReadsPieces() {
        byte[] bytes = {1, 2, 3, 4, 5, 6, 7};
        ByteSource s = ByteSource.of(MemorySegment.ofArray(bytes));
        MemorySegment into = MemorySegment.ofArray(new byte[3]);
        s.read(2, into);
        assertArrayEquals(new byte[] {3, 4, 5}, into.toArray(ValueLayout.JAVA_BYTE));
        assertEquals(7, s.byteSize());
    }

    /** The op is the reference quantizer: golden musubi bytes through Backend.quantizeFp8. */
    @Test
    void quantizeFp8MatchesMusubiGolden() {
        Path dir = Golden.dir("wan-tiny");
        int tensors = 0;
        try (var model = SafeTensors.open(dir.resolve("model.safetensors"));
             var golden = SafeTensors.open(dir.resolve("fp8.safetensors"))) {
            for (String key : golden.keys()) {
                if (!key.startsWith("fp8.")) continue;
                String weightKey = key.substring("fp8.".length());
                Shape shape = model.info(weightKey).shape();
                try (Tensor w = cpu.fromBytes(DType.BF16, shape, model.data(weightKey));
                     Tensor codes = cpu.allocate(DType.F8_E4M3, shape);
                     Tensor scale = cpu.allocate(DType.BF16, Shape.of(shape.dim(0), shape.dim(1) / 64, 1))) {
                    cpu.quantizeFp8(codes, scale, w);
                    float[] c = cpu.toFloats(codes);
                    byte[] expected = golden.data(key).toArray(ValueLayout.JAVA_BYTE);
                    for (int i = 0; i < c.length; i++) assertEquals(expected[i], Fp8.e4m3FromFloat(c[i]), key + "[" + i + "]");
                    String scaleKey = "fp8scale." + weightKey.replace(".weight", ".scale_weight");
                    assertArrayEquals(golden.floats(scaleKey), cpu.toFloats(scale), scaleKey);
                }
                tensors++;
            }
        }
        assertEquals(20, tensors);
    }

    @Test
    void quantizeFp8ChecksItsArguments() {
        try (Tensor w = cpu.allocate(DType.BF16, Shape.of(2, 96)); Tensor codes = cpu.allocate(DType.F8_E4M3, Shape.of(2, 96));
             Tensor scale = cpu.allocate(DType.BF16, Shape.of(2, 1, 1))) {
            var e = assertThrows(IllegalArgumentException.class, () -> cpu.quantizeFp8(codes, scale, w));
            assertTrue(e.getMessage().contains("not a multiple of the block size 64"), e.getMessage());
        }
        try (Tensor w = cpu.allocate(DType.F16, Shape.of(2, 64)); Tensor codes = cpu.allocate(DType.F8_E4M3, Shape.of(2, 64));
             Tensor scale = cpu.allocate(DType.BF16, Shape.of(2, 1, 1))) {
            var e = assertThrows(IllegalArgumentException.class, () -> cpu.quantizeFp8(codes, scale, w));
            assertTrue(e.getMessage().contains("scale"), e.getMessage());
        }
    }

    /** F16 and F32 weights: scales rounded to the weight's dtype, held in F32 (the reference's values exactly). */
    @Test
    void quantizeFp8OfF16AndF32Weights() {
        SplittableRandom random = new SplittableRandom(3);
        for (DType t : new DType[] {DType.F16, DType.F32}) {
            float[] v = new float[3 * 128];
            for (int i = 0; i < v.length; i++) v[i] = (float) (random.nextGaussian() * 0.02);
            try (Tensor w = cpu.fromFloats(t, Shape.of(3, 128), v); Tensor codes = cpu.allocate(DType.F8_E4M3, Shape.of(3, 128));
                 Tensor scale = cpu.allocate(DType.F32, Shape.of(3, 2, 1))) {
                cpu.quantizeFp8(codes, scale, w);
                var q = Fp8BlockQuantizer.quantize(cpu.toFloats(w), Shape.of(3, 128), t);
                assertArrayEquals(q.scales(), cpu.toFloats(scale), t.toString());
                float[] c = cpu.toFloats(codes);
                for (int i = 0; i < c.length; i++) assertEquals(q.codes()[i], Fp8.e4m3FromFloat(c[i]));
            }
        }
    }
}
