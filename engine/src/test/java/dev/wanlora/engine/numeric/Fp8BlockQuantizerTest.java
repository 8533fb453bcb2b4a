package dev.wanlora.engine.numeric;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Fp8BlockQuantizerTest {

    /** Every fp8.* byte and fp8scale.* value of the golden file, made by musubi's own quantizer from model.safetensors. */
    @Test
    void matchesMusubiGoldenByteForByte() {
        Path dir = Golden.dir("wan-tiny");
        int tensors = 0;
        long bytes = 0, clampedBlocks = 0, blocks = 0;
        try (var model = SafeTensors.open(dir.resolve("model.safetensors"));
             var golden = SafeTensors.open(dir.resolve("fp8.safetensors"))) {
            for (String key : golden.keys()) {
                if (!key.startsWith("fp8.")) continue;
                String weightKey = key.substring("fp8.".length());
                var info = model.info(weightKey);
                assertEquals(DType.BF16, info.dtype());
                int out = (int) info.shape().dim(0), in = (int) info.shape().dim(1);
                var q = Fp8BlockQuantizer.quantize(model.floats(weightKey), out, in, DType.BF16);

                byte[] expectedCodes = golden.data(key).toArray(ValueLayout.JAVA_BYTE);
                assertArrayEquals(expectedCodes, q.codes(), key);
                String scaleKey = "fp8scale." + weightKey.replace(".weight", ".scale_weight");
                assertEquals(Shape.of(out, in / 64, 1), golden.info(scaleKey).shape());
                assertEquals(golden.info(scaleKey).shape(), q.scaleShape(), scaleKey);
                assertArrayEquals(golden.floats(scaleKey), q.scales(), scaleKey); // bf16 values, compared exactly
                float[] w = model.floats(weightKey);
                for (int b = 0; b < q.scales().length; b++) {
                    blocks++;
                    float max = 0;
                    for (int i = b * 64; i < b * 64 + 64; i++) max = Math.max(max, Math.abs(w[i]));
                    if (max / q.scales()[b] > 448f) clampedBlocks++; // the bf16 scale rounded down
                }
                tensors++;
                bytes += expectedCodes.length;
            }
        }
        System.out.printf("fp8 golden: %d tensors, %d bytes identical, clamp active in %d of %d blocks%n", tensors, bytes,
                clampedBlocks, blocks);
        assertEquals(20, tensors, "10 block Linears × 2 blocks");
        assertEquals(1_572_864, bytes);
    }

    @Test
    void handValuesOfOneBlock() {
        // block 0: max |w| = 2.0 → scale = bf16(2/448) = bf16(0.004464...) = 0.004455566 (bf16 keeps 8 bits)
        // block 1 holds a NaN: torch.max propagates it, so the scale is NaN and every W/scale becomes NaN → 0
        float[] w = new float[128];
        w[0] = 2.0f;
        w[1] = -1.0f;
        w[64] = 1.0f;
        w[65] = Float.NaN;
        var q = Fp8BlockQuantizer.quantize(w, 1, 128, DType.BF16);
        float scale = Bf16.round(2.0f / 448f);
        assertEquals(scale, q.scales()[0], 0f);
        assertTrue(scale < 2.0f / 448f, "the bf16 scale rounds down here, so 2/scale > 448 and the clamp acts");
        assertEquals(448f, Fp8.e4m3ToFloat(q.codes()[0]), 0f);
        assertEquals(Fp8.e4m3ToFloat(Fp8.e4m3FromFloat(-1.0f / scale)), Fp8.e4m3ToFloat(q.codes()[1]), 0f);
        assertEquals(0f, Fp8.e4m3ToFloat(q.codes()[3]), 0f);
        assertTrue(Float.isNaN(q.scales()[1]));
        assertEquals(0f, Fp8.e4m3ToFloat(q.codes()[64]), 0f, "NaN scale → W/scale = NaN → 0");
        assertEquals(0f, Fp8.e4m3ToFloat(q.codes()[65]), 0f);
        float[] back = Fp8BlockQuantizer.dequantize(q, Shape.of(1, 128), DType.BF16);
        assertEquals(Bf16.round(448f * scale), back[0], 0f);
    }

    @Test
    void zeroBlockGetsTheMinimumScaleAndFallbacksFollowMusubi() {
        var zero = Fp8BlockQuantizer.quantize(new float[128], 2, 64, DType.F32);
        assertEquals(1e-8f, zero.scales()[0], 0f);
        var channel = Fp8BlockQuantizer.quantize(new float[] {1, -4, 2, 8, 0, 0}, 2, 3, DType.F32);
        assertEquals(Fp8BlockQuantizer.Granularity.CHANNEL, channel.granularity());
        assertEquals(Shape.of(2, 1), channel.scaleShape());
        assertArrayEquals(new float[] {4f / 448f, 8f / 448f}, channel.scales());
        var tensor = Fp8BlockQuantizer.quantize(new float[] {1, -3, 2, 0}, Shape.of(4), DType.F32);
        assertEquals(Fp8BlockQuantizer.Granularity.TENSOR, tensor.granularity());
        assertEquals(Shape.of(), tensor.scaleShape());
        assertArrayEquals(new float[] {3f / 448f}, tensor.scales());
        assertEquals(-448f, Fp8.e4m3ToFloat(tensor.codes()[1]), 0f);
    }

    @Test
    void dequantizationErrorIsWithinTheFormat() {
        // e4m3 keeps 3 mantissa bits: a value m·2^e (m in [1,2)) is rounded on a grid of 2⁻³·2^e, an rms error of
        // 2⁻³·2^e/√12, i.e. rms relative error ≤ 2⁻³/√12 ≈ 3.6e-2 (m near 1); the bf16 product adds ≤ 2⁻⁹ ≈ 2e-3.
        var rng = new java.util.SplittableRandom(3);
        float[] w = new float[256 * 128];
        for (int i = 0; i < w.length; i++) w[i] = Bf16.round((float) (rng.nextDouble() * 2 - 1) * 0.05f);
        var q = Fp8BlockQuantizer.quantize(w, 256, 128, DType.BF16);
        float[] back = Fp8BlockQuantizer.dequantize(q, Shape.of(256, 128), DType.BF16);
        ErrorStats stats = ErrorStats.compare(back, w);
        System.out.println("fp8 block round trip " + stats.describe(3.8e-2));
        assertTrue(stats.relL2() < 3.8e-2, stats.toString());
    }

    @Test
    void refusesFp8Weights() {
        var e = assertThrows(UnsupportedOperationException.class,
                () -> Fp8BlockQuantizer.quantize(new float[64], 1, 64, DType.F8_E4M3));
        assertTrue(e.getMessage().startsWith("Fp8BlockQuantizer: cannot quantize a F8_E4M3 weight"), e.getMessage());
    }
}
