package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
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

class CpuElementwiseTest {

    @Test
    void geluAndSiluHandValues() {
        // gelu_tanh(0) = 0; gelu_tanh(1) = 0.5·(1 + tanh(√(2/π)·1.044715)) = 0.841191991;
        // gelu_tanh(−1) = −1 + gelu_tanh(1) = −0.158808009 (gelu(x) − gelu(−x) = x).
        // silu(1) = 1/(1 + e⁻¹) = 0.731058579; silu(−2) = −2/(1 + e²) = −0.238405844.
        var x = f32(new float[] {0, 1, -1}, 3);
        var out = zeros(DType.F32, 3);
        CPU.geluTanh(out, x);
        assertArrayEquals(new float[] {0, 0.841191991f, -0.158808009f}, values(out), 6e-8f);
        var s = f32(new float[] {1, -2}, 2);
        CPU.silu(s, s); // in place
        assertArrayEquals(new float[] {0.731058579f, -0.238405844f}, values(s), 6e-8f);
    }

    @Test
    void geluBackwardMatchesFiniteDifferences() {
        var x = randn(1, DType.F32, 3, 40);
        float[] g = gaussian(2, 120);
        var out = zeros(DType.F32, 3, 40);
        var dx = f32(g, 3, 40);
        CPU.geluTanhBackward(dx, dx, x); // dx = dOut in place
        assertGradient("geluTanhBackward[cpu,f32,x=(3,40)]", dx, x, () -> {
            CPU.geluTanh(out, x);
            return dotLoss(out, g);
        });
    }

    @Test
    void addScaleAndRowVector() {
        // add: (1,2,3) + (10,20,30) = (11,22,33); scale by −0.5: (−5.5,−11,−16.5);
        // addRowVector on [[1,2],[3,4]] with v = (10, 20): [[11,22],[13,24]].
        var a = f32(new float[] {1, 2, 3}, 3);
        var b = f32(new float[] {10, 20, 30}, 3);
        CPU.add(a, a, b);
        assertArrayEquals(new float[] {11, 22, 33}, values(a), 0f);
        CPU.scale(a, a, -0.5f);
        assertArrayEquals(new float[] {-5.5f, -11, -16.5f}, values(a), 0f);
        var m = f32(new float[] {1, 2, 3, 4}, 2, 2);
        CPU.addRowVector(m, m, f32(new float[] {10, 20}, 2));
        assertArrayEquals(new float[] {11, 22, 13, 24}, values(m), 0f);
    }

    @Test
    void bf16OutputsAreTheRoundedF32Results() {
        var x = randn(3, DType.F32, 3, 40);
        var y = randn(4, DType.F32, 3, 40);
        var f = zeros(DType.F32, 3, 40);
        var h = zeros(DType.BF16, 3, 40);
        Runnable[][] pairs = {
                {() -> CPU.geluTanh(f, x), () -> CPU.geluTanh(h, x)},
                {() -> CPU.silu(f, x), () -> CPU.silu(h, x)},
                {() -> CPU.add(f, x, y), () -> CPU.add(h, x, y)},
                {() -> CPU.scale(f, x, 0.1f), () -> CPU.scale(h, x, 0.1f)},
                {() -> CPU.geluTanhBackward(f, y, x), () -> CPU.geluTanhBackward(h, y, x)},
        };
        for (Runnable[] p : pairs) {
            p[0].run();
            p[1].run();
            float[] e = values(f);
            Bf16.roundInPlace(e);
            assertArrayEquals(e, values(h), 0f);
        }
    }

    @Test
    void argumentChecksNameTheProblem() {
        var x = zeros(DType.F32, 3, 40);
        assertMessage("add: element counts differ; got out=(3,40) f32 and b=(3,41) f32, expected equal element counts",
                () -> CPU.add(x, x, zeros(DType.F32, 3, 41)));
        var owner = zeros(DType.F32, 200);
        var view = owner.view(1, Shape.of(3, 40));
        var other = owner.view(0, Shape.of(3, 40));
        assertMessage("scale (cpu): out partially overlaps x; got CpuTensor(3,40) f32 view@1 and CpuTensor(3,40) f32 "
                + "view@0, expected the same elements or disjoint storage", () -> CPU.scale(view, other, 2));
    }
}
