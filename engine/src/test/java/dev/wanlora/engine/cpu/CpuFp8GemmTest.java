package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.tensor.DType;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.randn;
import static dev.wanlora.engine.cpu.CpuTesting.tensor;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The fp8 compute path's reference (quantizeFp8Tensor, dequantizeFp8Tensor, gemmFp8): hand values and identities. */
class CpuFp8GemmTest {

    @Test
    void quantizeHandValues() {
        // amax 448 → scale 1. 17 is the midpoint of e4m3's 16 and 18 (step 2 in [16, 32)): ties to even → 16.
        // 0.3 lies between 0.28125 and 0.3125 (step 1/32 in [0.25, 0.5)), nearer 0.3125. 2.5 = 1.25·2 is exact.
        var x = f32(new float[] {-448, 17, 0.3f, 2.5f}, 2, 2);
        var codes = zeros(DType.F8_E4M3, 2, 2);
        var scale = zeros(DType.F32, 1);
        CPU.quantizeFp8Tensor(codes, scale, x);
        assertArrayEquals(new float[] {1}, values(scale), 0f);
        assertArrayEquals(new float[] {-448, 16, 0.3125f, 2.5f}, values(codes), 0f);
        // amax 896 → scale 2: 896/2 = 448, −1/2 = −0.5; a NaN is left out of the amax and stays NaN.
        var y = f32(new float[] {896, -1, Float.NaN, 0}, 4);
        var yCodes = zeros(DType.F8_E4M3, 4);
        CPU.quantizeFp8Tensor(yCodes, scale, y);
        assertArrayEquals(new float[] {2}, values(scale), 0f);
        assertArrayEquals(new float[] {448, -0.5f, Float.NaN, 0}, values(yCodes), 0f);
        // all zeros → scale 1 (any scale would do; 1 keeps the dequantized zeros exact)
        CPU.quantizeFp8Tensor(yCodes, scale, zeros(DType.BF16, 4));
        assertArrayEquals(new float[] {1}, values(scale), 0f);
        assertArrayEquals(new float[] {0, 0, 0, 0}, values(yCodes), 0f);
    }

    /** Random data: codes stay within ±448 (the clamp), the largest reaches it, and dequantizing is within e4m3's u. */
    @Test
    void quantizeSaturatesAndRoundTrips() {
        var x = randn(7, DType.BF16, 64, 80);
        var codes = zeros(DType.F8_E4M3, 64, 80);
        var scale = zeros(DType.F32, 1);
        CPU.quantizeFp8Tensor(codes, scale, x);
        float max = 0;
        for (float c : values(codes)) max = Math.max(max, Math.abs(c));
        assertEquals(448f, max, 0f);
        var back = zeros(DType.F32, 64, 80);
        CPU.dequantizeFp8Tensor(back, codes, scale);
        // e4m3 round-to-nearest: relative error ≤ 2⁻⁴ for normal codes; the relL2 over N(0,1) data is ~2⁻⁴/√3 ≈ 0.036.
        ErrorStats e = ErrorStats.compare(values(back), values(x));
        System.out.println("quantizeFp8Tensor round trip (64x80 bf16 N(0,1)): " + e.describe(0.05));
        assertTrue(e.relL2() < 0.05, e.describe(0.05));
    }

    @Test
    void dequantizeRoundsTheFp32ProductToTheOutput() {
        // codes 1.125 and −3 times scale 0.1f: fp32 products, then bf16 (0.1125 → 0.11230469, −0.3 → −0.30078125)
        var codes = tensor(DType.F8_E4M3, new float[] {1.125f, -3}, 2);
        var scale = f32(new float[] {0.1f}, 1);
        var out = zeros(DType.BF16, 2);
        CPU.dequantizeFp8Tensor(out, codes, scale);
        assertArrayEquals(new float[] {0.11230469f, -0.30078125f}, values(out), 0f);
    }

    @Test
    void gemmHandValues() {
        // x = ones (1, 16) with scale 0.5; w (16, 16) = 2·I with scale 3; bias j/4:
        // y_j = 0.5·3·(Σ_k 1·2·δ_jk) + j/4 = 3 + j/4.
        float[] w = new float[16 * 16], b = new float[16], expected = new float[16];
        for (int j = 0; j < 16; j++) {
            w[j * 16 + j] = 2;
            b[j] = j / 4f;
            expected[j] = 3 + j / 4f;
        }
        float[] ones = new float[16];
        java.util.Arrays.fill(ones, 1);
        var y = zeros(DType.BF16, 1, 16);
        CPU.gemmFp8(y, tensor(DType.F8_E4M3, ones, 1, 16), f32(new float[] {0.5f}, 1), tensor(DType.F8_E4M3, w, 16, 16),
                f32(new float[] {3}, 1), tensor(DType.BF16, b, 16));
        assertArrayEquals(expected, values(y), 0f);
    }

    /** gemmFp8 = gemm on the dequantized operands (F32 out: the only difference is fp32 rounding of code·scale). */
    @Test
    void gemmMatchesTheDequantizedGemm() {
        int m = 5, k = 48, n = 32;
        var x = randn(11, DType.BF16, m, k);
        var w = randn(12, DType.BF16, n, k);
        var bias = randn(13, DType.F32, n);
        var xq = zeros(DType.F8_E4M3, m, k);
        var wq = zeros(DType.F8_E4M3, n, k);
        var xs = zeros(DType.F32, 1);
        var ws = zeros(DType.F32, 1);
        CPU.quantizeFp8Tensor(xq, xs, x);
        CPU.quantizeFp8Tensor(wq, ws, w);
        var y = zeros(DType.F32, m, n);
        CPU.gemmFp8(y, xq, xs, wq, ws, bias);
        var xd = zeros(DType.F32, m, k);
        var wd = zeros(DType.F32, n, k);
        CPU.dequantizeFp8Tensor(xd, xq, xs);
        CPU.dequantizeFp8Tensor(wd, wq, ws);
        var reference = zeros(DType.F32, m, n);
        CPU.gemm(reference, xd, false, wd, true, 1, 0, bias);
        ErrorStats e = ErrorStats.compare(values(y), values(reference));
        // each dequantized operand carries one fp32 rounding (u = 2⁻²⁴): relL2 ≲ 1e-7
        assertTrue(e.relL2() < 1e-6, e.describe(1e-6));
    }

    @Test
    void gemmChecksShapes() {
        var xq = zeros(DType.F8_E4M3, 2, 40);
        var wq = zeros(DType.F8_E4M3, 16, 40);
        var s = f32(new float[] {1}, 1);
        assertMessageStarts("gemmFp8: K and N must be multiples of 16", () -> CPU.gemmFp8(zeros(DType.BF16, 2, 16), xq, s, wq, s, null));
        var wq2 = zeros(DType.F8_E4M3, 16, 48);
        assertMessageStarts("gemmFp8: inner dims differ", () -> CPU.gemmFp8(zeros(DType.BF16, 2, 16), zeros(DType.F8_E4M3, 2, 32), s,
                wq2, s, null));
        assertMessageStarts("gemmFp8: unsupported dtype of xCodes", () -> CPU.gemmFp8(zeros(DType.BF16, 2, 16),
                zeros(DType.BF16, 2, 48), s, wq2, s, null));
    }

    private static void assertMessageStarts(String prefix, Runnable call) {
        var e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().startsWith(prefix), e.getMessage());
    }
}
