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
}
