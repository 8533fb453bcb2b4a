package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.optim.AdamW8bit;
import dev.wanlora.engine.optim.DynamicQuantization;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Hand values of bitsandbytes' 8-bit AdamW step on the CPU reference. */
class CpuAdamW8bitTest {
    private static final CpuBackend CPU = new CpuBackend();
    private static final int N = 600; // two full blocks of 256 and a partial one of 88

    private record State(Tensor p, Tensor g, Tensor m, Tensor mAbs, Tensor v, Tensor vAbs, Tensor scale) {}

    private static State state(float[] p, float[] g) {
        Shape blocks = Shape.of((p.length + AdamW8bit.BLOCK_SIZE - 1) / AdamW8bit.BLOCK_SIZE);
        return new State(CPU.fromFloats(DType.F32, Shape.of(p.length), p), CPU.fromFloats(DType.F32, Shape.of(g.length), g),
                CPU.allocate(DType.U8, Shape.of(p.length)), CPU.allocate(DType.F32, blocks),
                CPU.allocate(DType.U8, Shape.of(p.length)), CPU.allocate(DType.F32, blocks),
                CPU.fromFloats(DType.F32, Shape.of(1), new float[] {1f}));
    }

    private static void step(State s, float lr, float wd, long t) {
        CPU.adamw8bit(s.p, s.g, s.m, s.mAbs, s.v, s.vAbs, s.scale, new Backend.AdamWStep(lr, 0.9f, 0.999f, 1e-8f, wd, t));
    }

    @Test
    void firstStepFromZeroStateIsSignDescentThenDecay() {
        var rng = new SplittableRandom(1);
        float[] p0 = new float[N], g = new float[N];
        for (int i = 0; i < N; i++) {
            p0[i] = (float) rng.nextGaussian();
            g[i] = (float) (rng.nextGaussian() * Math.pow(10, -3 * rng.nextDouble()));
        }
        var s = state(p0, g);
        float lr = 1e-3f, wd = 0.01f;
        step(s, lr, wd, 1);
        float[] p1 = CPU.toFloats(s.p);
        // t = 1: m = (1−β1)g, v = (1−β2)g², c1 = 1−β1, c2 = √(1−β2): the Adam step is −lr·g/(|g| + eps);
        // then p ·= (1 − lr·wd). Float rounding of the ~8 operations: ≤ 1e-6 relative of the step, plus p's ulp.
        for (int i = 0; i < N; i++) {
            double expected = (p0[i] - lr * g[i] / (Math.abs(g[i]) + 1e-8)) * (1 - (double) lr * wd);
            assertEquals(expected, p1[i], 1e-6 * lr + 2 * Math.ulp(p1[i]), "element " + i);
        }
        // the largest |m| of each block is stored as ±1 (code 255, or code 0 = −0.99296875 for a negative maximum)
        float[] mCodes = CPU.toFloats(s.m), mAbs = CPU.toFloats(s.mAbs), vCodes = CPU.toFloats(s.v), vAbs = CPU.toFloats(s.vAbs);
        for (int b = 0; b < 3; b++) {
            int arg = b * 256;
            for (int i = b * 256; i < Math.min(N, b * 256 + 256); i++) if (Math.abs(g[i]) > Math.abs(g[arg])) arg = i;
            assertEquals((float) ((1 - 0.9f) * Math.abs(g[arg])), mAbs[b], 1e-6f * mAbs[b]);
            assertEquals(g[arg] > 0 ? 255 : 0, (int) mCodes[arg]);
            assertEquals(255, (int) vCodes[arg], "v's block maximum is 1.0");
            assertEquals((float) ((1 - 0.999f) * g[arg] * g[arg]), vAbs[b], 1e-5f * vAbs[b]);
        }
    }

    @Test
    void nonFiniteGradientZeroesTheMomentsAndKeepsTheParameter() {
        float[] p0 = new float[N], g = new float[N];
        for (int i = 0; i < N; i++) {
            p0[i] = 1f;
            g[i] = 0.5f + i * 1e-3f;
        }
        var s = state(p0, g);
        step(s, 1e-2f, 0f, 1);
        float[] g2 = g.clone();
        g2[10] = Float.NaN;
        g2[300] = Float.POSITIVE_INFINITY;
        CPU.copy(s.g, CPU.fromFloats(DType.F32, Shape.of(N), g2));
        float[] before = CPU.toFloats(s.p);
        step(s, 1e-2f, 0f, 2);
        float[] after = CPU.toFloats(s.p);
        float[] mCodes = CPU.toFloats(s.m), vCodes = CPU.toFloats(s.v);
        for (int k : new int[] {10, 300}) {
            assertEquals(before[k], after[k], 0f, "p unchanged at " + k);
            assertEquals(0f, DynamicQuantization.signedValue((int) mCodes[k]), 0f, "m reset to 0 at " + k);
            assertEquals(0f, DynamicQuantization.unsignedValue((int) vCodes[k]), 0f, "v reset to 0 at " + k);
        }
        assertTrue(after[11] < before[11], "finite neighbours still step");
    }

    @Test
    void gradScaleMultipliesTheGradient() {
        float[] g = new float[N];
        for (int i = 0; i < N; i++) g[i] = (i % 7 - 3) * 0.25f;
        var b = state(new float[N], g);
        for (int i = 0; i < N; i++) g[i] *= 0.5f; // exact in float
        var half = state(new float[N], g);
        CPU.fill(b.scale, 0.5f);
        step(b, 1e-3f, 0f, 1);
        step(half, 1e-3f, 0f, 1);
        assertEquals(java.util.Arrays.toString(CPU.toFloats(half.p)), java.util.Arrays.toString(CPU.toFloats(b.p)));
        assertEquals(java.util.Arrays.toString(CPU.toFloats(half.m)), java.util.Arrays.toString(CPU.toFloats(b.m)));
    }

    @Test
    void checksItsArguments() {
        var s = state(new float[N], new float[N]);
        var e = assertThrows(IllegalArgumentException.class, () -> CPU.adamw8bit(s.p, s.g, s.m, s.mAbs, s.v,
                CPU.allocate(DType.F32, Shape.of(2)), s.scale, new Backend.AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1)));
        assertTrue(e.getMessage().startsWith("adamw8bit: "), e.getMessage());
    }
}
