package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertClose;
import static dev.wanlora.engine.cpu.CpuTesting.assertGradient;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.dotLoss;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.gaussian;
import static dev.wanlora.engine.cpu.CpuTesting.randn;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Attention and RoPE on tiny ragged shapes (2 heads × D = 8; Wan uses D = 128, the ops accept any D). */
class CpuAttentionTest {

    @Test
    void softmaxOfLogsGivesTheirProportions() {
        // One query, three keys, D = 4, so scores = q·k/√4 = q·k/2. With q = (2,0,0,0) the scores are k[j][0]:
        // log 3, log 1, log 4 → softmax = 3/8, 1/8, 4/8, and v = identity rows picks them out: out = (3/8, 1/8, 1/2, 0).
        float l3 = (float) Math.log(3), l1 = 0, l4 = (float) Math.log(4);
        var q = f32(new float[] {2, 0, 0, 0}, 1, 1, 4);
        var k = f32(new float[] {l3, 0, 0, 0, l1, 0, 0, 0, l4, 0, 0, 0}, 1, 3, 4);
        var v = f32(new float[] {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0}, 1, 3, 4);
        var out = zeros(DType.F32, 1, 1, 4);
        var lse = zeros(DType.F32, 1, 1, 1);
        CPU.attention(out, lse, q, k, v, 1);
        // The float logs carry relative error ≤ 2⁻²⁴, so the probabilities are exact to ~1e-7.
        assertArrayEquals(new float[] {3 / 8f, 1 / 8f, 0.5f, 0}, values(out), 2e-7f);
        assertEquals(Math.log(8), values(lse)[0], 2e-7); // lse = log(3 + 1 + 4)
    }

    @Test
    void headsAreIndependent() {
        // Two heads of D = 2 in one row: head 0 attends with scores (0, 0) → mean of v; head 1 with q = 0 → mean too,
        // but v differs per head, so each head must read its own columns: out = ((1+3)/2, (2+4)/2 | (5+7)/2, (6+8)/2).
        var q = f32(new float[] {0, 0, 0, 0}, 1, 1, 4);
        var k = f32(new float[] {1, 2, 3, 4, 5, 6, 7, 8}, 1, 2, 4);
        var v = f32(new float[] {1, 2, 5, 6, 3, 4, 7, 8}, 1, 2, 4);
        var out = zeros(DType.F32, 1, 1, 4);
        var lse = zeros(DType.F32, 1, 2, 1);
        CPU.attention(out, lse, q, k, v, 2);
        assertArrayEquals(new float[] {2, 3, 6, 7}, values(out), 0f);
        assertArrayEquals(new float[] {(float) Math.log(2), (float) Math.log(2)}, values(lse), 1e-7f);
    }

    /** Self-attention (Lq = Lk = 7) and cross-attention (Lq = 7, Lk = 5), B = 2, N = 2, D = 8. */
    @Test
    void attentionBackwardMatchesFiniteDifferences() {
        for (int lk : new int[] {7, 5}) {
            int b = 2, lq = 7, heads = 2, width = 16;
            var q = randn(1, DType.F32, b, lq, width);
            var k = randn(2, DType.F32, b, lk, width);
            var v = randn(3, DType.F32, b, lk, width);
            float[] g = gaussian(4, b * lq * width);
            var out = zeros(DType.F32, b, lq, width);
            var lse = zeros(DType.F32, b, heads, lq);
            CpuTesting.Loss loss = () -> {
                CPU.attention(out, lse, q, k, v, heads);
                return dotLoss(out, g);
            };
            loss.eval();
            var dOut = f32(g, b, lq, width);
            var dq = zeros(DType.F32, b, lq, width);
            var dk = zeros(DType.F32, b, lk, width);
            var dv = zeros(DType.F32, b, lk, width);
            CPU.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, heads);
            String shape = "[cpu,f32,q=(2,7,16),k=(2," + lk + ",16),N=2]";
            assertGradient("attentionBackward.dq" + shape, dq, q, loss);
            assertGradient("attentionBackward.dk" + shape, dk, k, loss);
            assertGradient("attentionBackward.dv" + shape, dv, v, loss);
        }
    }

    @Test
    void bf16OutputIsTheRoundedF32Result() {
        var q = randn(5, DType.BF16, 1, 7, 16);
        var k = randn(6, DType.BF16, 1, 7, 16);
        var v = randn(7, DType.BF16, 1, 7, 16);
        var outF32 = zeros(DType.F32, 1, 7, 16);
        var outBf16 = zeros(DType.BF16, 1, 7, 16);
        var lse = zeros(DType.F32, 1, 2, 7);
        CPU.attention(outF32, lse, q, k, v, 2);
        CPU.attention(outBf16, lse, q, k, v, 2);
        float[] expected = values(outF32);
        Bf16.roundInPlace(expected);
        assertArrayEquals(expected, values(outBf16), 0f);
    }

    @Test
    void ropeRotatesInterleavedPairs() {
        // One token, one head, D = 4: pair 0 rotated by 90° (cos 0, sin 1): (a, b) → (−b, a); pair 1 by 0°: unchanged.
        var x = f32(new float[] {1, 2, 3, 4}, 1, 1, 4);
        var cos = f32(new float[] {0, 1}, 1, 2);
        var sin = f32(new float[] {1, 0}, 1, 2);
        var out = zeros(DType.F32, 1, 1, 4);
        CPU.rope(out, x, cos, sin, 1);
        assertArrayEquals(new float[] {-2, 1, 3, 4}, values(out), 0f);
        CPU.ropeBackward(out, out, cos, sin, 1); // the inverse rotation, in place
        assertArrayEquals(new float[] {1, 2, 3, 4}, values(out), 0f);
    }

    @Test
    void ropeBackwardMatchesFiniteDifferencesAndInvertsInPlace() {
        int b = 2, l = 7, width = 16, half = 4;
        var x = randn(8, DType.F32, b, l, width);
        float[] angles = gaussian(9, l * half);
        float[] c = new float[angles.length], s = new float[angles.length];
        for (int i = 0; i < angles.length; i++) {
            c[i] = (float) Math.cos(3 * angles[i]);
            s[i] = (float) Math.sin(3 * angles[i]);
        }
        var cos = f32(c, l, half);
        var sin = f32(s, l, half);
        float[] g = gaussian(10, b * l * width);
        var out = zeros(DType.F32, b, l, width);
        var dx = f32(g, b, l, width);
        CPU.ropeBackward(dx, dx, cos, sin, 2); // in place: dx = dOut
        assertGradient("ropeBackward[cpu,f32,x=(2,7,16),N=2]", dx, x, () -> {
            CPU.rope(out, x, cos, sin, 2);
            return dotLoss(out, g);
        });
        // Rotations are orthogonal: rope then its backward, both in place, restores x up to float rounding of two
        // rotations (a few 2⁻²⁴ relative per element).
        float[] before = values(x);
        CPU.rope(x, x, cos, sin, 2);
        CPU.ropeBackward(x, x, cos, sin, 2);
        assertClose("rope∘ropeBackward[cpu,f32]", values(x), before, 1e-6);
    }

    /**
     * Forward against an explicit re-derivation that builds each (Lq, Lk) score matrix and normalizes it with the
     * textbook softmax (no max subtraction; scores are O(3) here, so exp cannot overflow). Only the order of the
     * double sums differs; the outputs are rounded once to f32, so relL2 ≤ 1e-6 (a few 2⁻²⁴ per element) holds.
     */
    @Test
    void forwardMatchesExplicitSoftmaxMatrices() {
        int b = 2, lq = 7, lk = 5, heads = 2, dim = 8, width = heads * dim;
        var q = randn(11, DType.BF16, b, lq, width);
        var k = randn(12, DType.BF16, b, lk, width);
        var v = randn(13, DType.BF16, b, lk, width);
        var out = zeros(DType.F32, b, lq, width);
        var lse = zeros(DType.F32, b, heads, lq);
        CPU.attention(out, lse, q, k, v, heads);
        float[] qv = values(q), kv = values(k), vv = values(v);
        double[] expectedOut = new double[b * lq * width], expectedLse = new double[b * heads * lq];
        for (int bi = 0; bi < b; bi++) {
            for (int h = 0; h < heads; h++) {
                double[][] s = new double[lq][lk];
                for (int i = 0; i < lq; i++) {
                    double z = 0;
                    for (int j = 0; j < lk; j++) {
                        for (int e = 0; e < dim; e++) {
                            s[i][j] += (double) qv[(bi * lq + i) * width + h * dim + e] * kv[(bi * lk + j) * width + h * dim + e];
                        }
                        s[i][j] = Math.exp(s[i][j] / Math.sqrt(dim));
                        z += s[i][j];
                    }
                    expectedLse[(bi * heads + h) * lq + i] = Math.log(z);
                    for (int e = 0; e < dim; e++) {
                        double o = 0;
                        for (int j = 0; j < lk; j++) o += s[i][j] / z * vv[(bi * lk + j) * width + h * dim + e];
                        expectedOut[(bi * lq + i) * width + h * dim + e] = o;
                    }
                }
            }
        }
        assertClose("attention[cpu,bf16 in,q=(2,7,16),k=(2,5,16)] vs explicit softmax", values(out), expectedOut, 1e-6);
        assertClose("attention.lse[cpu] vs explicit softmax", values(lse), expectedLse, 1e-6);
    }

    @Test
    void oneKeyPassesItsValueThrough() {
        // softmax over a single key is 1, whatever the score: out = v, lse = the score q·k/√D = (1·2 + 2·3)/√2.
        var q = f32(new float[] {1, 2}, 1, 1, 2);
        var k = f32(new float[] {2, 3}, 1, 1, 2);
        var v = f32(new float[] {-7, 0.25f}, 1, 1, 2);
        var out = zeros(DType.F32, 1, 1, 2);
        var lse = zeros(DType.F32, 1, 1, 1);
        CPU.attention(out, lse, q, k, v, 1);
        assertArrayEquals(new float[] {-7, 0.25f}, values(out), 0f);
        assertArrayEquals(new float[] {(float) (8 / Math.sqrt(2))}, values(lse), 0f);
    }

    @Test
    void argumentChecksNameTheProblem() {
        var q = zeros(DType.F32, 1, 7, 16);
        var k = zeros(DType.F32, 1, 5, 12);
        var out = zeros(DType.F32, 1, 7, 16);
        var lse = zeros(DType.F32, 1, 2, 7);
        assertMessage("attention: k does not match q's batch and width; got k=(1,5,12) f32 and q=(1,7,16) f32, "
                + "expected k=(1, Lk, 16)", () -> CPU.attention(out, lse, q, k, k, 2));
        assertMessage("attention: last dim of q is not a multiple of numHeads; got q=(1,7,16) f32 with numHeads=3, "
                + "expected last dim = numHeads·D", () -> CPU.attention(out, lse, q, q, q, 3));
        var lse16 = zeros(DType.BF16, 1, 2, 7);
        assertMessage("attention: unsupported dtype of lse; got lse=(1,2,7) bf16, expected f32",
                () -> CPU.attention(out, lse16, q, q, q, 2));
        assertMessage("attention (cpu): out overlaps q; got CpuTensor(1,7,16) f32 and CpuTensor(1,7,16) f32, "
                + "expected disjoint storage", () -> CPU.attention(q, lse, q, q, q, 2));
        var cos = zeros(DType.F32, 7, 3);
        assertMessage("rope: wrong shape of cos; got cos=(7,3) f32, expected cos=(7,4)",
                () -> CPU.rope(out, q, cos, cos, 2));
    }
}
