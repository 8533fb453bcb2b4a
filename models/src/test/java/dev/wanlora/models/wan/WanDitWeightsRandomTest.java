package dev.wanlora.models.wan;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Linear;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** WanDitWeights.random: the device-drawn weights of wanlora bench (here on the CPU reference, tiny shapes). */
class WanDitWeightsRandomTest {

    private static final WanDitConfig TINY = new WanDitConfig(256, 512, 2, 2, 16, 16, 4096, 256, 512, 1e-6f,
            WanDitConfig.PATCH_1_2_2);

    /**
     * Sample standard deviation of n ≥ 65536 draws is within 1/√(2n) ≈ 0.3 % (one σ) of the true one; bf16 storage
     * (relative rounding ≤ 2⁻⁹) and, for fp8, e4m3 rounding (≤ 2⁻⁴, mean-square effect ≈ 2⁻⁸/3 on the variance)
     * move it by well under 1 %. 3 % is ten σ plus the rounding.
     */
    private static final double STD_TOLERANCE = 0.03;

    @Test
    void scaledFp8CodesAndScalesAsTheLoaderKeepsThem() {
        try (CpuBackend cpu = new CpuBackend();
             WanDitWeights w = WanDitWeights.random(cpu, TINY, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, BlockSwap.NONE, 7)) {
            assertEquals(Quantization.FP8_SCALED, w.quantization());
            assertEquals(2, w.blocks().size());
            for (WanDitWeights.Block b : w.blocks()) {
                for (BlockLinear which : BlockLinear.values()) {
                    Linear l = b.linear(which);
                    Shape shape = which.weightShape(TINY);
                    assertTrue(l.isQuantized(), which.toString());
                    assertEquals(DType.F8_E4M3, l.quantized().dtype());
                    assertEquals(shape, l.quantized().shape());
                    assertEquals(Shape.of(shape.dim(0), shape.dim(1) / 64, 1), l.scale().shape());
                    assertEquals("blocks." + b.index() + "." + which.modulePath() + ".weight", l.key());
                    float[] codes = cpu.toFloats(l.quantized());
                    assertStd(codes, 48, which + " codes");
                    double xavier = Math.sqrt(2.0 / (shape.dim(0) + shape.dim(1)));
                    // the scale is σ_w/48 rounded to bf16 (relative error ≤ 2⁻⁹)
                    for (float s : cpu.toFloats(l.scale())) assertEquals(xavier / 48, s, xavier / 48 * 0x1p-8);
                }
                assertArrayEquals(ones(256), cpu.toFloats(b.selfAttnNormQ()));
                assertStd(cpu.toFloats(b.modulation()), 1 / Math.sqrt(256), "modulation");
            }
            // distinct tensors get distinct draws (the stream's offset moves on)
            assertFalse(java.util.Arrays.equals(cpu.toFloats(w.block(0).linear(BlockLinear.SELF_ATTN_Q).quantized()),
                    cpu.toFloats(w.block(0).linear(BlockLinear.SELF_ATTN_K).quantized())));
            assertStd(cpu.toFloats(w.textEmbedding0().weight()), 0.02, "text_embedding.0");
            assertNotAllZero(cpu.toFloats(w.head().bias()), "head bias");
        }
    }

    @Test
    void dequantizedAtLoadIsTheCodesTimesTheScaleAndTheSameSeedRepeats() {
        try (CpuBackend cpu = new CpuBackend();
             WanDitWeights codes = WanDitWeights.random(cpu, TINY, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, BlockSwap.NONE, 7);
             WanDitWeights dense = WanDitWeights.random(cpu, TINY, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, true, BlockSwap.NONE, 7)) {
            Linear q = codes.block(1).linear(BlockLinear.FFN_2);
            Linear d = dense.block(1).linear(BlockLinear.FFN_2);
            assertFalse(d.isQuantized());
            try (Tensor expected = cpu.allocate(DType.BF16, q.weightShape())) {
                cpu.dequantizeFp8(expected, q.quantized(), q.scale());
                assertArrayEquals(cpu.toFloats(expected), cpu.toFloats(d.weight()));
            }
            assertStd(cpu.toFloats(d.weight()), Math.sqrt(2.0 / (256 + 512)), "ffn.2 dequantized");
        }
    }

    @Test
    void bf16WeightsDriveAFiniteForward() {
        try (CpuBackend cpu = new CpuBackend();
             WanDitWeights w = WanDitWeights.random(cpu, TINY, ComputePrecision.BF16_MUSUBI, Quantization.NONE, false, BlockSwap.NONE, 3);
             WanDit dit = new WanDit(cpu, TINY, w, ComputePrecision.BF16_MUSUBI, true);
             Tensor xt = cpu.allocate(DType.F32, Shape.of(1, 16, 1, 4, 4));
             Tensor t = cpu.fromFloats(DType.F32, Shape.of(1), new float[] {500});
             Tensor context = cpu.allocate(DType.BF16, Shape.of(5, 4096))) {
            Linear q = w.block(0).linear(BlockLinear.SELF_ATTN_Q);
            assertFalse(q.isQuantized());
            assertStd(cpu.toFloats(q.weight()), Math.sqrt(2.0 / 512), "self_attn.q");
            cpu.gaussianNoise(xt, 1, 0);
            cpu.gaussianNoise(context, 2, 0);
            float[] pred = cpu.toFloats(dit.forward(xt, t, List.of(context), null));
            for (float v : pred) assertTrue(Float.isFinite(v), "prediction must be finite");
            assertNotAllZero(pred, "prediction");
        }
    }

    private static void assertStd(float[] v, double expected, String what) {
        double sum = 0, squares = 0;
        for (float x : v) {
            assertTrue(Float.isFinite(x), what + " has a non-finite value");
            sum += x;
            squares += (double) x * x;
        }
        double mean = sum / v.length, std = Math.sqrt(squares / v.length - mean * mean);
        double tolerance = v.length >= 65536 ? STD_TOLERANCE : 5 / Math.sqrt(2.0 * v.length); // five σ for small tensors
        assertEquals(expected, std, expected * tolerance, what + " standard deviation");
    }

    private static void assertNotAllZero(float[] v, String what) {
        for (float x : v) if (x != 0) return;
        fail(what + " is all zeros");
    }

    private static float[] ones(int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, 1);
        return v;
    }
}
