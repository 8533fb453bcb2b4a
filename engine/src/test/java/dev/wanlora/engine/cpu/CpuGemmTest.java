package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertGradient;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.dotLoss;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.gaussian;
import static dev.wanlora.engine.cpu.CpuTesting.randn;
import static dev.wanlora.engine.cpu.CpuTesting.tensor;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** GEMM in its three Linear uses, transposes, beta/bias semantics, rounding, and fp8 dequantization. */
class CpuGemmTest {

    @Test
    void handValuesForEveryTransposeCombination() {
        // a = [[1,2],[3,4]], b = [[5,6],[7,8]]:
        // a·b = [[19,22],[43,50]], aᵀ·b = [[26,30],[38,44]], a·bᵀ = [[17,23],[39,53]], aᵀ·bᵀ = [[23,31],[34,46]].
        var a = f32(new float[] {1, 2, 3, 4}, 2, 2);
        var b = f32(new float[] {5, 6, 7, 8}, 2, 2);
        var c = zeros(DType.F32, 2, 2);
        float[][] expected = {{19, 22, 43, 50}, {17, 23, 39, 53}, {26, 30, 38, 44}, {23, 31, 34, 46}};
        for (int t = 0; t < 4; t++) {
            CPU.gemm(c, a, t >= 2, b, t % 2 == 1, 1, 0, null);
            assertArrayEquals(expected[t], values(c), 0f);
        }
    }

    @Test
    void alphaBetaAndBias() {
        // c = 2·(a·b) + 0.5·c + bias with a·b = [[19,22],[43,50]], c = [[2,4],[6,8]], bias = (1, −1):
        // [[38+1+1, 44+2−1], [86+3+1, 100+4−1]] = [[40,45],[90,103]].
        var a = f32(new float[] {1, 2, 3, 4}, 2, 2);
        var b = f32(new float[] {5, 6, 7, 8}, 2, 2);
        var c = f32(new float[] {2, 4, 6, 8}, 2, 2);
        CPU.gemm(c, a, false, b, false, 2, 0.5f, f32(new float[] {1, -1}, 2));
        assertArrayEquals(new float[] {40, 45, 90, 103}, values(c), 0f);
    }

    @Test
    void betaZeroIgnoresNanInC() {
        var a = f32(new float[] {1, 2, 3, 4}, 2, 2);
        var c = f32(new float[] {Float.NaN, Float.NaN, Float.NaN, Float.NaN}, 2, 2);
        CPU.gemm(c, a, false, a, false, 1, 0, null); // a·a = [[7,10],[15,22]]
        assertArrayEquals(new float[] {7, 10, 15, 22}, values(c), 0f);
    }

    /**
     * The Linear y = x·wᵀ + b of Backend#gemm's Javadoc, with its input and weight gradients checked against finite
     * differences on a ragged shape (M = 3 rows, K = 40, N = 7).
     */
    @Test
    void linearGradientsMatchFiniteDifferences() {
        int m = 3, k = 40, n = 7;
        var x = randn(1, DType.F32, m, k);
        var w = randn(2, DType.F32, n, k);
        var bias = randn(3, DType.F32, n);
        float[] g = gaussian(4, m * n);
        var y = zeros(DType.F32, m, n);
        CpuTesting.Loss loss = () -> {
            CPU.gemm(y, x, false, w, true, 1, 0, bias);
            return dotLoss(y, g);
        };
        var dy = f32(g, m, n);
        var dx = zeros(DType.F32, m, k);
        var dw = randn(5, DType.F32, n, k); // beta = 1: the weight grad accumulates onto what is there
        float[] dwBefore = values(dw);
        CPU.gemm(dx, dy, false, w, false, 1, 0, null);
        CPU.gemm(dw, dy, true, x, false, 1, 1, null);
        float[] dwAdded = values(dw);
        for (int i = 0; i < dwAdded.length; i++) dwAdded[i] -= dwBefore[i];
        assertGradient("gemm.dx[cpu,f32,x=(3,40),w=(7,40)]", dx, x, loss);
        assertGradient("gemm.dw[cpu,f32,x=(3,40),w=(7,40)]", f32(dwAdded, n, k), w, loss);
    }

    @Test
    void bf16OutputIsTheRoundedF32ResultForAnyInputMix() {
        var a = randn(6, DType.BF16, 3, 40);
        var b = randn(7, DType.F32, 7, 40);
        var bias = randn(8, DType.BF16, 7);
        var cF32 = zeros(DType.F32, 3, 7);
        var cBf16 = zeros(DType.BF16, 3, 7);
        CPU.gemm(cF32, a, false, b, true, 1, 0, bias);
        CPU.gemm(cBf16, a, false, b, true, 1, 0, bias);
        float[] expected = values(cF32);
        Bf16.roundInPlace(expected);
        assertArrayEquals(expected, values(cBf16), 0f);
    }

    @Test
    void dequantizeFp8RoundsTheProductToTheScaleDtype() {
        // One row of 128 inputs: two blocks of 64. Codes 0x38 (= 1.0) and 0x39 (= 1.125) times bf16 scales.
        // 1.125 · 0.3 in bf16: 0.3 → bf16 0.30078125; product 0.33837890625 → bf16 0.337890625 (8 significant bits).
        byte[] codes = new byte[128];
        for (int i = 0; i < 128; i++) codes[i] = (byte) (i % 2 == 0 ? 0x38 : 0x39);
        float[] wq = new float[128];
        for (int i = 0; i < 128; i++) wq[i] = Fp8.e4m3ToFloat(codes[i]);
        var w = tensor(DType.F8_E4M3, wq, 1, 128);
        var scale = tensor(DType.BF16, new float[] {0.3f, 2}, 1, 2, 1);
        var out = zeros(DType.BF16, 1, 128);
        CPU.dequantizeFp8(out, w, scale);
        float[] v = values(out);
        assertArrayEquals(new float[] {0.30078125f, 0.337890625f}, new float[] {v[0], v[1]}, 0f);
        assertArrayEquals(new float[] {2f, 2.25f}, new float[] {v[64], v[65]}, 0f);
        for (int i = 0; i < 128; i++) {
            float s = values(scale)[i / 64];
            assertArrayEquals(new float[] {Bf16.round(Bf16.round(wq[i] * s))}, new float[] {v[i]}, 0f);
        }
    }

    /**
     * A parallel-sized case (64·50 outputs of K = 300) against a plain triple loop. Both sum the products in double in
     * the same k order, so every transpose combination must agree exactly.
     */
    @Test
    void parallelRowsMatchATripleLoopExactly() {
        int m = 64, n = 50, k = 300;
        for (int t = 0; t < 4; t++) {
            boolean ta = t >= 2, tb = t % 2 == 1;
            var a = ta ? randn(20 + t, DType.BF16, k, m) : randn(20 + t, DType.BF16, m, k);
            var b = tb ? randn(30 + t, DType.F32, n, k) : randn(30 + t, DType.F32, k, n);
            var c = zeros(DType.F32, m, n);
            CPU.gemm(c, a, ta, b, tb, 1, 0, null);
            float[] av = values(a), bv = values(b), expected = new float[m * n];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) {
                        s += (double) (ta ? av[p * m + i] : av[i * k + p]) * (tb ? bv[j * k + p] : bv[p * n + j]);
                    }
                    expected[i * n + j] = (float) s;
                }
            }
            assertArrayEquals(expected, values(c), 0f, "transA=" + ta + " transB=" + tb);
        }
    }

    @Test
    void viewsAtOffsetsReadAndWriteOnlyTheirRange() {
        // c is a (2, 2) view at offset 3 of a NaN-filled buffer; a and b are views at odd offsets of one buffer.
        var buffer = zeros(DType.F32, 10);
        CPU.fill(buffer, Float.NaN);
        var c = buffer.view(3, Shape.of(2, 2));
        var inputs = f32(new float[] {9, 1, 2, 3, 4, 9, 5, 6, 7, 8, 9}, 11);
        var a = inputs.view(1, Shape.of(2, 2));
        var b = inputs.view(6, Shape.of(2, 2));
        CPU.gemm(c, a, false, b, false, 1, 0, null); // [[1,2],[3,4]]·[[5,6],[7,8]] = [[19,22],[43,50]]
        float n = Float.NaN;
        assertArrayEquals(new float[] {n, n, n, 19, 22, 43, 50, n, n, n}, values(buffer), 0f);
    }

    @Test
    void dequantizeFp8WithF32Scale() {
        // f32 scale: the product is rounded once to f32, then to out's dtype. 1.125 · 0.3f = 0.33750001 in f32.
        byte[] codes = new byte[64];
        Arrays.fill(codes, (byte) 0x39);
        var w = CPU.fromBytes(DType.F8_E4M3, Shape.of(1, 64), MemorySegment.ofArray(codes));
        var out = zeros(DType.F32, 1, 64);
        CPU.dequantizeFp8(out, w, f32(new float[] {0.3f}, 1, 1, 1));
        assertArrayEquals(new float[] {1.125f * 0.3f}, new float[] {values(out)[63]}, 0f);
        var outBf16 = zeros(DType.BF16, 1, 64);
        CPU.dequantizeFp8(outBf16, w, f32(new float[] {0.3f}, 1, 1, 1));
        assertArrayEquals(new float[] {Bf16.round(1.125f * 0.3f)}, new float[] {values(outBf16)[0]}, 0f);
    }

    @Test
    void argumentChecksNameTheProblem() {
        var a = zeros(DType.F32, 3, 40);
        var b = zeros(DType.F32, 7, 41);
        var c = zeros(DType.F32, 3, 7);
        assertMessage("gemm: inner dims differ; got a=(3,40) f32 (K=40) and b=(7,41) f32ᵀ (K=41), expected equal K",
                () -> CPU.gemm(c, a, false, b, true, 1, 0, null));
        var w = zeros(DType.F32, 7, 40);
        var c2 = zeros(DType.F32, 3, 8);
        assertMessage("gemm: wrong shape of c; got c=(3,8) f32, expected c=(3,7) for a=(3,40) f32 and b=(7,40) f32ᵀ",
                () -> CPU.gemm(c2, a, false, w, true, 1, 0, null));
        var f16 = CPU.allocate(DType.F16, Shape.of(3, 40));
        assertMessage("gemm: unsupported dtype of a; got a=(3,40) f16, expected one of f32, bf16",
                () -> CPU.gemm(c, f16, false, w, true, 1, 0, null));
        var wq = zeros(DType.F8_E4M3, 2, 96);
        assertMessage("dequantizeFp8: input dim is not a multiple of the block size 64; got wq=(2,96) f8_e4m3, "
                + "expected I % 64 == 0", () -> CPU.dequantizeFp8(zeros(DType.BF16, 2, 96), wq, zeros(DType.BF16, 2, 1, 1)));
    }
}
