package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.Backend.AdamWStep;
import dev.wanlora.engine.tensor.DType;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertClose;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.randn;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Gradient norm, clip coefficient and AdamW (torch semantics). */
class CpuOptimTest {

    @Test
    void sumOfSquaresAccumulatesAndClipFollowsTorch() {
        // normSquared starts at 1, g = (3, 4): 1 + 25 = 26. Then with normSquared = 25 (‖g‖ = 5):
        // maxNorm 1 → 1/(5 + 1e-6) = 0.19999996; maxNorm 10 → min(1, 2) = 1; maxNorm 0 → 1 (no clipping).
        var ns = f32(new float[] {1}, 1);
        CPU.sumOfSquares(ns, f32(new float[] {3, 4}, 2));
        assertArrayEquals(new float[] {26}, values(ns), 0f);
        CPU.fill(ns, 25);
        var clip = zeros(DType.F32, 1);
        CPU.clipCoefficient(clip, ns, 1);
        assertArrayEquals(new float[] {0.19999996f}, values(clip), 1.5e-8f);
        CPU.clipCoefficient(clip, ns, 10);
        assertArrayEquals(new float[] {1}, values(clip), 0f);
        CPU.clipCoefficient(clip, ns, 0);
        assertArrayEquals(new float[] {1}, values(clip), 0f);
    }

    @Test
    void adamwFirstStepHandValues() {
        // p = 1, grad = 1 scaled by 0.5 → g = 0.5; lr 0.1, β = (0.9, 0.999), eps 1e-8, wd 0.01, step 1:
        // decay p = 1·(1 − 0.001) = 0.999; m = 0.1·0.5 = 0.05; v = 0.001·0.25 = 2.5e-4;
        // m̂ = 0.05/0.1 = 0.5, √v̂ = √(2.5e-4/0.001) = 0.5; p = 0.999 − 0.1·0.5/(0.5 + 1e-8) = 0.899000002.
        var p = f32(new float[] {1}, 1);
        var m = zeros(DType.F32, 1);
        var v = zeros(DType.F32, 1);
        CPU.adamw(p, f32(new float[] {1}, 1), m, v, f32(new float[] {0.5f}, 1),
                new AdamWStep(0.1f, 0.9f, 0.999f, 1e-8f, 0.01f, 1));
        // The hyper-parameters are floats: 1 − 0.9f = 0.100000024 and 1 − 0.999f = 0.00099998713, so m = 0.050000012 and
        // v = 2.4999678e-4 (both ≤ 1.2e-8 from the decimal values); the bias corrections use the same factors, so
        // m̂ = 0.5 and v̂ = 0.25 nearly exactly and p is within 1 float ulp (6e-8) of the decimal result.
        assertArrayEquals(new float[] {0.899000002f}, values(p), 1.2e-7f);
        assertArrayEquals(new float[] {0.050000012f}, values(m), 0f);
        assertArrayEquals(new float[] {2.4999678e-4f}, values(v), 3e-11f);
    }

    /** Five steps against a straightforward transcription of torch.optim.AdamW's single-tensor loop in fp32. */
    @Test
    void adamwMatchesTorchsLoopOverSteps() {
        int n = 120;
        var p = randn(1, DType.F32, 3, 40);
        var m = zeros(DType.F32, 3, 40);
        var v = zeros(DType.F32, 3, 40);
        float[] ep = values(p), em = new float[n], ev = new float[n];
        float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f, clip = 0.7f;
        for (int step = 1; step <= 5; step++) {
            var grad = randn(100 + step, DType.F32, 3, 40);
            CPU.adamw(p, grad, m, v, f32(new float[] {clip}, 1), new AdamWStep(lr, b1, b2, eps, wd, step));
            float[] g = values(grad);
            float bc1 = (float) (1 - Math.pow(b1, step)), bc2Sqrt = (float) Math.sqrt(1 - Math.pow(b2, step));
            for (int i = 0; i < n; i++) {
                float gi = g[i] * clip;
                ep[i] *= 1 - lr * wd;
                em[i] += (gi - em[i]) * (1 - b1); // torch: exp_avg.lerp_(grad, 1 − β1)
                ev[i] = ev[i] * b2 + (1 - b2) * gi * gi;
                float denom = (float) Math.sqrt(ev[i]) / bc2Sqrt + eps;
                ep[i] -= lr / bc1 * em[i] / denom;
            }
        }
        // torch's fp32 loop rounds every intermediate (~10 roundings per element per step, 2⁻²⁴ each); the update is
        // lr-sized, so p differs by ≲ 5·10·6e-8·lr relative to the step and far less relative to p: relL2 ≤ 1e-6.
        // m and v carry the same per-step roundings relative to themselves: relL2 ≤ 1e-6.
        assertClose("adamw.param[cpu,f32,5 steps]", values(p), ep, 1e-6);
        assertClose("adamw.m[cpu,f32,5 steps]", values(m), em, 1e-6);
        assertClose("adamw.v[cpu,f32,5 steps]", values(v), ev, 1e-6);
    }

    @Test
    void sumOfSquaresOverChunksOfBf16() {
        // 3·5000 bf16 values (several 4096 chunks) against one straight double sum: equal to 1 float ulp.
        var g = randn(9, DType.BF16, 3, 5000);
        var ns = zeros(DType.F32, 1);
        CPU.sumOfSquares(ns, g);
        double s = 0;
        for (float v : values(g)) s += (double) v * v;
        assertEquals((float) s, values(ns)[0], Math.ulp((float) s));
    }

    @Test
    void argumentChecksNameTheProblem() {
        var p = zeros(DType.F32, 4);
        var g = zeros(DType.BF16, 4);
        var one = f32(new float[] {1}, 1);
        var hyper = new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1);
        assertMessage("adamw: unsupported dtype of grad; got grad=(4) bf16, expected f32",
                () -> CPU.adamw(p, g, zeros(DType.F32, 4), zeros(DType.F32, 4), one, hyper));
        assertMessage("adamw: step is 1-based; got step=0, expected >= 1",
                () -> CPU.adamw(p, zeros(DType.F32, 4), zeros(DType.F32, 4), zeros(DType.F32, 4), one,
                        new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0)));
    }
}
