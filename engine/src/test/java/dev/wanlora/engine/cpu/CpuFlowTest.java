package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.random.CounterRng;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertGradient;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.randn;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Noise, flow-matching input/target and the MSE loss (spec §4). */
class CpuFlowTest {

    @Test
    void flowMatchingInputHandValues() {
        // x0 = (1,2 | 3,4), noise = (5,6 | 7,8), t = (0.25, 0.5):
        // xt = (0.75·1 + 0.25·5, 0.75·2 + 0.25·6 | 0.5·3 + 0.5·7, 0.5·4 + 0.5·8) = (2, 3 | 5, 6); target = noise − x0 = 4s.
        var x0 = f32(new float[] {1, 2, 3, 4}, 2, 2);
        var noise = f32(new float[] {5, 6, 7, 8}, 2, 2);
        var xt = zeros(DType.F32, 2, 2);
        var target = zeros(DType.F32, 2, 2);
        CPU.flowMatchingInput(xt, target, x0, noise, f32(new float[] {0.25f, 0.5f}, 2));
        assertArrayEquals(new float[] {2, 3, 5, 6}, values(xt), 0f);
        assertArrayEquals(new float[] {4, 4, 4, 4}, values(target), 0f);
        CPU.flowMatchingInput(x0, noise, x0, noise, f32(new float[] {0.25f, 0.5f}, 2)); // in place
        assertArrayEquals(new float[] {2, 3, 5, 6}, values(x0), 0f);
        assertArrayEquals(new float[] {4, 4, 4, 4}, values(noise), 0f);
    }

    @Test
    void mseHandValuesAndGradient() {
        // pred (1,2,3), target 0: loss = (1+4+9)/3 = 14/3; dPred = gradScale·2·pred/3 = (2/3, 4/3, 2) for gradScale 1.
        var pred = f32(new float[] {1, 2, 3}, 3);
        var loss = zeros(DType.F32, 1);
        var dPred = zeros(DType.F32, 3);
        CPU.mseLoss(loss, dPred, pred, zeros(DType.F32, 3), 1);
        assertArrayEquals(new float[] {14f / 3}, values(loss), 0f);
        assertArrayEquals(new float[] {2f / 3, 4f / 3, 2}, values(dPred), 1e-7f);

        var p = randn(1, DType.F32, 3, 40);
        var t = randn(2, DType.F32, 3, 40);
        var d = zeros(DType.F32, 3, 40);
        CPU.mseLoss(loss, d, p, t, 1);
        var scratch = zeros(DType.F32, 3, 40);
        assertGradient("mseLoss.dPred[cpu,f32,pred=(3,40)]", d, p, () -> {
            CPU.mseLoss(loss, scratch, p, t, 1);
            return values(loss)[0];
        });
        CPU.mseLoss(loss, p, p, t, 0.5f); // dPred in place over pred, scaled
        float[] half = values(d);
        for (int i = 0; i < half.length; i++) half[i] *= 0.5f;
        assertArrayEquals(half, values(p), 0f);
    }

    @Test
    void noiseIsAPureFunctionOfSeedAndCounter() {
        var all = zeros(DType.F32, 100);
        CPU.gaussianNoise(all, 2025, 7);
        var tail = zeros(DType.F32, 60);
        CPU.gaussianNoise(tail, 2025, 47);
        float[] a = values(all);
        assertArrayEquals(Arrays.copyOfRange(a, 40, 100), values(tail), 0f);
        for (int i = 0; i < a.length; i++) assertEquals((float) CounterRng.normal(2025, 7 + i), a[i], 0f);
        var bf16 = zeros(DType.BF16, 100);
        CPU.gaussianNoise(bf16, 2025, 7);
        Bf16.roundInPlace(a);
        assertArrayEquals(a, values(bf16), 0f);
        // A chunked parallel fill (beyond one 4096-element chunk) gives the same values as the per-element definition.
        var big = CPU.allocate(DType.F32, Shape.of(3, 5000));
        CPU.gaussianNoise(big, -1, Long.MAX_VALUE - 5);
        float[] b = values(big);
        for (int i : new int[] {0, 5, 6, 4095, 4096, 14999}) {
            assertEquals((float) CounterRng.normal(-1, Long.MAX_VALUE - 5 + i), b[i], 0f);
        }
    }

    /**
     * Beyond one 4096-element chunk the loss is a sum of chunk partials; against one straight double sum the two
     * differ only in double rounding (~1e-16 relative), so the float losses agree to 1 ulp (6e-8 relative).
     */
    @Test
    void chunkedLossMatchesAStraightSum() {
        var pred = randn(5, DType.BF16, 3, 5000);
        var target = randn(6, DType.F32, 3, 5000);
        var loss = zeros(DType.F32, 1);
        var dPred = zeros(DType.BF16, 3, 5000);
        CPU.mseLoss(loss, dPred, pred, target, 3);
        float[] p = values(pred), t = values(target), d = new float[p.length];
        double s = 0;
        for (int i = 0; i < p.length; i++) {
            s += ((double) p[i] - t[i]) * ((double) p[i] - t[i]);
            d[i] = Bf16.round((float) (3.0 * 2 * ((double) p[i] - t[i]) / p.length));
        }
        float expected = (float) (s / p.length);
        assertEquals(expected, values(loss)[0], Math.ulp(expected));
        assertArrayEquals(d, values(dPred), 0f); // bf16 dPred is the rounded f32 value
    }

    @Test
    void bf16FlowMatchingOutputsAreRounded() {
        var x0 = randn(7, DType.BF16, 2, 3, 40);
        var noise = randn(8, DType.BF16, 2, 3, 40);
        var t = f32(new float[] {0.3f, 0.9f}, 2);
        var xt = zeros(DType.F32, 2, 3, 40);
        var target = zeros(DType.F32, 2, 3, 40);
        CPU.flowMatchingInput(xt, target, x0, noise, t);
        var xt16 = zeros(DType.BF16, 2, 3, 40);
        var target16 = zeros(DType.BF16, 2, 3, 40);
        CPU.flowMatchingInput(xt16, target16, x0, noise, t);
        float[] a = values(xt), b = values(target);
        Bf16.roundInPlace(a);
        Bf16.roundInPlace(b);
        assertArrayEquals(a, values(xt16), 0f);
        assertArrayEquals(b, values(target16), 0f);
    }

    @Test
    void argumentChecksNameTheProblem() {
        var x = zeros(DType.F32, 2, 4);
        assertMessage("flowMatchingInput: wrong element count of t; got t=(3) f32 (3 elements), expected 2 elements",
                () -> CPU.flowMatchingInput(zeros(DType.F32, 2, 4), zeros(DType.F32, 2, 4), x, x, zeros(DType.F32, 3)));
        assertMessage("mseLoss: wrong element count of loss; got loss=(2) f32 (2 elements), expected 1 elements",
                () -> CPU.mseLoss(zeros(DType.F32, 2), zeros(DType.F32, 2, 4), x, x, 1));
    }
}
