package dev.wanlora.engine.optim;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Adafactor on the CPU reference: hand values, transformers' loop transcribed, musubi's settings, an exact resume. */
class AdafactorTest {
    private final CpuBackend cpu = new CpuBackend();

    private Tensor tensor(Shape shape, float... v) {
        return cpu.fromFloats(DType.F32, shape, v);
    }

    private float[] stepOnce(List<String> args, Shape shape, float[] p, float[] g, float lr) {
        var param = new TrainableParameter("p", tensor(shape, p), tensor(shape, g));
        try (var opt = Optimizer.create(cpu, OptimizerConfig.fromFlags("adafactor", args), List.of(param))) {
            opt.step(1, lr, tensor(Shape.of(1), 1f));
            return cpu.toFloats(param.value());
        }
    }

    @Test
    void factoredFirstStepHandValues() {
        // p = 1 (2×2, RMS 1), g = [[3, 4], [0, 0]], step 1, musubi's default relative_step: lr = max(1e-3, 1)·min(1e-2,
        // 1/√1) = 1e-2; β2t = 1 − 1^−0.8 = 0, so row = mean_j(g² + 1e-30) = (12.5, 1e-30), col = (4.5, 8), mean(row) =
        // 6.25; u = g/√(row_i/6.25)/√col_j = [[3/√2/√4.5, 4/√2/√8], [0, 0]] = [[1, 1], [0, 0]]; RMS(u) = √0.5 < 1.
        float[] p = stepOnce(List.of(), Shape.of(2, 2), new float[] {1, 1, 1, 1}, new float[] {3, 4, 0, 0}, 0f);
        assertArrayEquals(new float[] {0.99f, 0.99f, 1, 1}, p, 1e-7f);
        // clip_threshold 0.5: u /= √0.5/0.5 = √2, so the step is 1e-2/√2 = 0.0070710678
        p = stepOnce(List.of("clip_threshold=0.5"), Shape.of(2, 2), new float[] {1, 1, 1, 1}, new float[] {3, 4, 0, 0}, 0f);
        assertArrayEquals(new float[] {1 - 0.0070710678f, 1 - 0.0070710678f, 1, 1}, p, 1e-7f);
        // relative_step=False, scale_parameter=False: the scheduled lr 0.1 as given, weight decay 0.5: p·(1 − 0.05) − 0.1
        p = stepOnce(List.of("relative_step=False", "scale_parameter=False", "weight_decay=0.5"), Shape.of(2, 2),
                new float[] {1, 1, 1, 1}, new float[] {3, 4, 0, 0}, 0.1f);
        assertArrayEquals(new float[] {0.85f, 0.85f, 0.95f, 0.95f}, p, 1e-7f);
    }

    @Test
    void vectorFirstStepHandValues() {
        // a 1-D parameter keeps v whole: p = (2, 2), RMS 2, so lr = 2·1e-2; v = g² + 1e-30 = 1, u = g/√v = (1, −1),
        // RMS(u) = 1: p = (2 − 0.02, 2 + 0.02)
        float[] p = stepOnce(List.of(), Shape.of(2), new float[] {2, 2}, new float[] {1, -1}, 0f);
        assertArrayEquals(new float[] {1.98f, 2.02f}, p, 2e-7f);
    }

    /** transformers' Adafactor.step for 2-D parameters, in float as torch computes it, hyper-parameters as wanlora's F32. */
    private static float[] oracle(OptimizerProblem q, int k, int steps, float lrExternal, float eps1, float eps2,
                                  float clipThreshold, float decayRate, float beta1, float wd, boolean scale,
                                  boolean relative, boolean warmupInit) {
        int rows = (int) q.shapes[k].dim(0), cols = (int) q.shapes[k].dim(1), n = rows * cols;
        float[] x = q.initial(k), row = new float[rows], col = new float[cols], m = new float[n];
        for (int t = 1; t <= steps; t++) {
            float[] g = q.gradientOf(k, x);
            double sumX = 0;
            for (float v : x) sumX += v * v;
            float rms = (float) Math.sqrt((float) sumX) / (float) Math.sqrt(n);
            double rel = lrExternal;
            if (relative) rel = Math.min(warmupInit ? 1e-6 * t : 1e-2, 1.0 / Math.sqrt(t));
            double lr = (scale ? Math.max(eps2, rms) : 1.0) * rel;
            double beta2t = 1.0 - Math.pow(t, decayRate);
            float[] upd = new float[n];
            for (int i = 0; i < n; i++) upd[i] = g[i] * g[i] + eps1;
            for (int r = 0; r < rows; r++) {
                float s = 0;
                for (int c = 0; c < cols; c++) s += upd[r * cols + c];
                row[r] = row[r] * (float) beta2t + (float) (1 - beta2t) * (s / cols);
            }
            for (int c = 0; c < cols; c++) {
                float s = 0;
                for (int r = 0; r < rows; r++) s += upd[r * cols + c];
                col[c] = col[c] * (float) beta2t + (float) (1 - beta2t) * (s / rows);
            }
            float rowMean = 0;
            for (float v : row) rowMean += v;
            rowMean /= rows;
            float sumU = 0;
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    float u = (float) (1 / Math.sqrt(row[r] / rowMean)) * (float) (1 / Math.sqrt(col[c])) * g[r * cols + c];
                    upd[r * cols + c] = u;
                    sumU += u * u;
                }
            }
            float rmsU = (float) Math.sqrt(sumU) / (float) Math.sqrt(n);
            float divisor = Math.max(rmsU / clipThreshold, 1f);
            for (int i = 0; i < n; i++) {
                float u = upd[i] / divisor * (float) lr;
                if (!Float.isNaN(beta1)) {
                    m[i] = m[i] * beta1 + u * (1 - beta1);
                    u = m[i];
                }
                if (wd != 0) x[i] = x[i] + x[i] * (float) (-wd * lr);
                x[i] = x[i] - u;
            }
        }
        return x;
    }

    private void compareWithOracle(String label, List<String> args, float lr, float clip, float beta1, float wd,
                                   boolean scale, boolean relative, boolean warmupInit) {
        var q = new OptimizerProblem(cpu, 3, Shape.of(4, 40), Shape.of(40, 4));
        int steps = 20;
        try (var opt = Optimizer.create(cpu, OptimizerConfig.fromFlags("adafactor", args), q.params)) {
            Tensor one = tensor(Shape.of(1), 1f);
            for (int t = 1; t <= steps; t++) {
                q.gradient();
                opt.step(t, lr, one);
            }
        }
        float[] ours = q.values(), theirs = new float[ours.length];
        // the oracle starts where q started (same seed)
        var fresh = new OptimizerProblem(cpu, 3, Shape.of(4, 40), Shape.of(40, 4));
        for (int k = 0; k < 2; k++) {
            System.arraycopy(oracle(fresh, k, steps, lr, 1e-30f, 1e-3f, clip, -0.8f, beta1, wd, scale, relative, warmupInit),
                    0, theirs, 160 * k, 160);
        }
        float[] start = fresh.values();
        var err = ErrorStats.compare(ours, theirs);
        double moved = ErrorStats.compare(theirs, start).relL2();
        System.out.printf("adafactor[cpu,%s,%d steps] relL2=%.2e of the parameters, moved %.2e (bound 1e-6)%n", label,
                steps, err.relL2(), moved);
        // torch rounds ~15 ops per element per step to fp32 (2⁻²⁴ each) where the reference rounds once per stored value;
        // the updates are lr-sized (≤ 1e-2 of p), so over 20 steps the parameters differ by ≲ 20·15·6e-8·1e-2 relative
        // (~2e-7): 1e-6 (measured ≤ 1.2e-7). A wrong factor or step size moves them by a visible fraction of `moved` (≥ 2e-4 even under warmup_init's 1e-6·t).
        assertTrue(err.relL2() < 1e-6, label + ": " + err);
        assertTrue(moved > 1e-4, label + ": the parameters must move, moved " + moved);
        q.close();
        fresh.close();
    }

    @Test
    void matchesTransformersLoopOverSteps() {
        compareWithOracle("musubi default (relative_step)", List.of(), 0f, 1f, Float.NaN, 0, true, true, false);
        compareWithOracle("warmup_init", List.of("warmup_init=True"), 0f, 1f, Float.NaN, 0, true, true, true);
        compareWithOracle("lr 1e-3, beta1 0.9, wd 0.01, no scaling",
                List.of("relative_step=False", "scale_parameter=False", "beta1=0.9", "weight_decay=0.01"), 1e-3f, 1f, 0.9f,
                0.01f, false, false, false);
        compareWithOracle("lr 1e-3, scaled, clip 0.5", List.of("relative_step=False", "clip_threshold=0.5"), 1e-3f, 0.5f,
                Float.NaN, 0, true, false, false);
    }

    @Test
    void stateRoundTripResumesBitForBit(@TempDir Path dir) {
        var config = OptimizerConfig.fromFlags("adafactor", List.of("relative_step=False", "beta1=0.9", "weight_decay=0.01"));
        var q = new OptimizerProblem(cpu, 9, Shape.of(4, 40), Shape.of(40), Shape.of(40, 4));
        Tensor one = tensor(Shape.of(1), 1f);
        Path file = dir.resolve("optimizer.safetensors");
        float[][] checkpoint = new float[3][];
        float[] expected;
        try (var opt = Optimizer.create(cpu, config, q.params)) {
            for (int t = 1; t <= 3; t++) {
                q.gradient();
                opt.step(t, 1e-3f, one);
            }
            opt.saveState(file);
            for (int k = 0; k < 3; k++) checkpoint[k] = cpu.toFloats(q.params.get(k).value());
            for (int t = 4; t <= 6; t++) {
                q.gradient();
                opt.step(t, 1e-3f, one);
            }
            expected = q.values();
        }
        var resumed = new OptimizerProblem(cpu, 9, Shape.of(4, 40), Shape.of(40), Shape.of(40, 4));
        for (int k = 0; k < 3; k++) {
            try (Tensor t = cpu.fromFloats(DType.F32, resumed.shapes[k], checkpoint[k])) {
                cpu.copy(resumed.params.get(k).value(), t);
            }
        }
        try (var opt = Optimizer.create(cpu, config, resumed.params)) {
            assertEquals(3, opt.loadState(file));
            for (int t = 4; t <= 6; t++) {
                resumed.gradient();
                opt.step(t, 1e-3f, one);
            }
        }
        assertArrayEquals(expected, resumed.values(), 0f);
        try (var other = Optimizer.create(cpu, OptimizerConfig.fromFlags("adafactor", List.of("relative_step=False")),
                new OptimizerProblem(cpu, 9, Shape.of(4, 40), Shape.of(40), Shape.of(40, 4)).params)) {
            var e = assertThrows(IllegalArgumentException.class, () -> other.loadState(file));
            assertTrue(e.getMessage().contains("optimizer state was saved with betas=[0.8999999761581421,0.0]"), e.getMessage());
        }
    }

    @Test
    void stateBytesFactorMatrices() {
        // (R, C) = (16, 5120): row + col = 5136 F32, not 81 920; with beta1 m adds R·C
        assertEquals(5136L * 4, Optimizer.stateBytes(OptimizerConfig.fromFlags("adafactor", List.of()), 16, 5120));
        assertEquals((5136L + 81_920) * 4,
                Optimizer.stateBytes(OptimizerConfig.fromFlags("adafactor", List.of("beta1=0.9")), 16, 5120));
        assertEquals(4L * 81_920 * 4, Optimizer.stateBytes(OptimizerConfig.fromFlags("prodigy", List.of()), 16, 5120));
    }

    @Test
    void settingsFollowMusubi() {
        // musubi adds relative_step=True when it is not given, so it shows in ss_optimizer
        var c = OptimizerConfig.fromFlags("Adafactor", List.of("scale_parameter=False"));
        assertEquals("transformers.optimization.Adafactor(scale_parameter=False,relative_step=True)", c.metadataName());
        assertTrue(c.adafactor().relativeStep());
        assertFalse(c.adafactor().scaleParameter());
        assertFalse(c.adafactor().hasFirstMoment());
        // warmup_init=True turns relative_step on
        assertTrue(OptimizerConfig.fromFlags("adafactor", List.of("relative_step=False", "warmup_init=True")).adafactor()
                .relativeStep());
        var given = OptimizerConfig.fromFlags("adafactor", List.of("relative_step=False", "eps=(1e-30,1e-2)",
                "decay_rate=-0.5", "beta1=0.9", "clip_threshold=2.0")).adafactor();
        assertEquals(1e-2f, given.eps2());
        assertEquals(-0.5f, given.decayRate());
        assertEquals(0.9f, given.beta1());
        assertEquals(2f, given.clipThreshold());
        var e = assertThrows(IllegalArgumentException.class,
                () -> OptimizerConfig.fromFlags("adafactor", List.of("decay_rate=0.8")));
        assertEquals("--optimizer_args: decay_rate has an invalid value; got 0.8, expected a negative number (default -0.8)",
                e.getMessage());
    }
}
