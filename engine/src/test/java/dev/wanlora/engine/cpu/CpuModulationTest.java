package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertGradient;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.dotLoss;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.gaussian;
import static dev.wanlora.engine.cpu.CpuTesting.randn;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** adaLN modulation and gated residual, B = 2, L = 7, C = 40, mod with n = 6 vectors as in a Wan block. */
class CpuModulationTest {

    private static final int B = 2, L = 7, C = 40, N = 6;

    @Test
    void handValuesPerSample() {
        // B = 2, L = 1, C = 2, mod (2, 2, 2) = [shift; scale] per sample:
        // sample 0: shift (1, 2), scale (0, 1)   → x (3, 4) → (3·1 + 1, 4·2 + 2) = (4, 10)
        // sample 1: shift (0, 0), scale (−1, 0.5) → x (5, 6) → (5·0 + 0, 6·1.5 + 0) = (0, 9)
        var mod = f32(new float[] {1, 2, 0, 1, 0, 0, -1, 0.5f}, 2, 2, 2);
        var x = f32(new float[] {3, 4, 5, 6}, 2, 1, 2);
        var out = zeros(DType.F32, 2, 1, 2);
        CPU.modulate(out, x, mod, 0, 1);
        assertArrayEquals(new float[] {4, 10, 0, 9}, values(out), 0f);
        // Gated residual with the "scale" rows as gates: x + y·gate with y = out: (3 + 0, 4 + 10) | (5 − 0, 6 + 4.5).
        CPU.gatedResidual(x, out, mod, 1);
        assertArrayEquals(new float[] {3, 14, 5, 10.5f}, values(x), 0f);
        CPU.gatedResidual(x, out, null, -1); // no gate: plain add
        assertArrayEquals(new float[] {7, 24, 5, 19.5f}, values(x), 0f);
    }

    @Test
    void backwardsMatchFiniteDifferences() {
        var mod = randn(1, DType.F32, B, N, C);
        var x = randn(2, DType.F32, B, L, C);
        float[] g = gaussian(3, B * L * C);
        var out = zeros(DType.F32, B, L, C);
        var dOut = f32(g, B, L, C);
        var dx = zeros(DType.F32, B, L, C);
        CPU.modulateBackward(dx, dOut, mod, 4);
        assertGradient("modulateBackward[cpu,f32,x=(2,7,40)]", dx, x, () -> {
            CPU.modulate(out, x, mod, 3, 4);
            return dotLoss(out, g);
        });

        var y = randn(4, DType.F32, B, L, C);
        var residual = zeros(DType.F32, B, L, C);
        for (int gate : new int[] {5, -1}) {
            var dy = zeros(DType.F32, B, L, C);
            CPU.gatedResidualBackward(dy, dOut, mod, gate);
            assertGradient("gatedResidualBackward[cpu,f32,x=(2,7,40),gate=" + gate + "]", dy, y, () -> {
                CPU.fill(residual, 0);
                CPU.gatedResidual(residual, y, mod, gate);
                return dotLoss(residual, g);
            });
        }
    }

    @Test
    void inPlaceAndBf16() {
        var mod = randn(5, DType.F32, B, N, C);
        var x = randn(6, DType.BF16, B, L, C);
        var expected = zeros(DType.F32, B, L, C);
        CPU.modulate(expected, x, mod, 0, 1);
        float[] e = values(expected);
        Bf16.roundInPlace(e);
        CPU.modulate(x, x, mod, 0, 1); // out = x
        assertArrayEquals(e, values(x), 0f);

        var dOut = randn(7, DType.F32, B, L, C);
        var dy = zeros(DType.F32, B, L, C);
        CPU.gatedResidualBackward(dy, dOut, mod, 2);
        CPU.gatedResidualBackward(dOut, dOut, mod, 2); // dy = dx in place
        assertArrayEquals(values(dy), values(dOut), 0f);
    }

    @Test
    void argumentChecksNameTheProblem() {
        var x = zeros(DType.F32, B, L, C);
        var mod = zeros(DType.F32, B, N, C);
        assertMessage("modulate: scaleIndex out of range; got scaleIndex=6, expected 0 <= scaleIndex < 6",
                () -> CPU.modulate(x, x, mod, 0, 6));
        var mod16 = zeros(DType.BF16, B, N, C);
        assertMessage("gatedResidual: unsupported dtype of mod; got mod=(2,6,40) bf16, expected f32",
                () -> CPU.gatedResidual(x, zeros(DType.F32, B, L, C), mod16, 2));
        var modB1 = zeros(DType.F32, 1, N, C);
        assertMessage("modulate: mod does not match x's batch and channels; got mod=(1,6,40) f32 and x=(2,7,40) f32, "
                + "expected mod=(2, n, 40)", () -> CPU.modulate(x, x, modB1, 0, 1));
        assertMessage("gatedResidualBackward: dx must have rank 3; got dx=(14,40) f32, expected dx=(B, L, C)",
                () -> CPU.gatedResidualBackward(zeros(DType.F32, 14, 40), zeros(DType.F32, 14, 40), mod, 2));
        assertMessage("gatedResidual (cpu): x overlaps y; got CpuTensor(2,7,40) f32 and CpuTensor(2,7,40) f32, "
                + "expected disjoint storage", () -> CPU.gatedResidual(x, x, mod, 2));
    }

    /**
     * addGatedResidual is the fused copy + gatedResidual (issue 11): the same bits as the chain for every dtype mix of
     * stream and branch, with and without a gate, into a new tensor and in place (out = x).
     */
    @Test
    void addGatedResidualIsTheChainBitForBit() {
        var mod = randn(31, DType.F32, B, N, C);
        for (DType stream : new DType[] {DType.F32, DType.BF16}) {
            for (DType branch : new DType[] {DType.F32, DType.BF16}) {
                for (int gate : new int[] {2, 5, -1}) {
                    var x = randn(32, stream, B, L, C);
                    var y = randn(33, branch, B, L, C);
                    var chain = zeros(stream, B, L, C);
                    CPU.copy(chain, x);
                    CPU.gatedResidual(chain, y, mod, gate);
                    var fused = zeros(stream, B, L, C);
                    CPU.addGatedResidual(fused, x, y, mod, gate);
                    String label = "addGatedResidual x=" + stream + " y=" + branch + " gate=" + gate;
                    assertArrayEquals(bits(chain), bits(fused), label);
                    CPU.addGatedResidual(x, x, y, mod, gate); // in place: gatedResidual itself
                    assertArrayEquals(bits(chain), bits(x), label + " in place");
                }
            }
        }
        // A stream of another dtype than out: x is rounded to out's dtype first, as the chain's copy does.
        var x = randn(34, DType.F32, B, L, C);
        var y = randn(35, DType.BF16, B, L, C);
        var chain = zeros(DType.BF16, B, L, C);
        CPU.copy(chain, x);
        CPU.gatedResidual(chain, y, mod, 2);
        var fused = zeros(DType.BF16, B, L, C);
        CPU.addGatedResidual(fused, x, y, mod, 2);
        assertArrayEquals(bits(chain), bits(fused), "addGatedResidual x=F32 out=BF16");
    }

    @Test
    void addGatedResidualChecks() {
        var mod = zeros(DType.F32, B, N, C);
        var x = zeros(DType.BF16, B, L, C);
        assertMessage("addGatedResidual: out shape does not match x; got out=(2,7,41) bf16, expected out=(2,7,40) "
                + "(as x=(2,7,40) bf16)", () -> CPU.addGatedResidual(zeros(DType.BF16, B, L, C + 1), x, x, mod, 2));
        assertMessage("addGatedResidual (cpu): out overlaps y; got " + x + " and " + x + ", expected disjoint storage",
                () -> CPU.addGatedResidual(x, zeros(DType.BF16, B, L, C), x, mod, 2));
        assertMessage("addGatedResidual: gateIndex out of range; got gateIndex=6, expected 0 <= gateIndex < 6",
                () -> CPU.addGatedResidual(zeros(DType.BF16, B, L, C), x, zeros(DType.BF16, B, L, C), mod, 6));
    }

    /** Each element's float bits: equal arrays mean bit-identical tensors. */
    static int[] bits(dev.wanlora.engine.tensor.Tensor t) {
        float[] v = values(t);
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Float.floatToRawIntBits(v[i]);
        return b;
    }
}
