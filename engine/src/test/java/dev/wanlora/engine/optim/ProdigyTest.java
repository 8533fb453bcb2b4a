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
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Prodigy on the CPU reference: hand values, prodigy.py's loop transcribed, settings, and an exact resume. */
class ProdigyTest {
    private final CpuBackend cpu = new CpuBackend();

    private Tensor f32(float... v) {
        return cpu.fromFloats(DType.F32, Shape.of(v.length), v);
    }

    @Test
    void firstStepHandValues() {
        // p = (1, −2), g = (0.5, −0.25), lr 1, defaults (β = (0.9, 0.999), eps 1e-8, d0 = 1e-6, no weight decay).
        // Step 1: p0 = p, so Σ g·(p0 − p) = 0 and d̂ = 0: d stays d0. m = d0·0.1·g, v = d0²·0.001·g², s = d0·dlr/d0·g
        // = d0·g, Σ|s| = d0·0.75. The update is dlr·m/(√v + d0·eps) = d0·0.1·g/(√0.001·|g| + eps) ≈ ±3.1623e-6.
        var p = new TrainableParameter("p", f32(1, -2), f32(0.5f, -0.25f));
        try (var opt = Optimizer.create(cpu, OptimizerConfig.fromFlags("prodigyopt.Prodigy", List.of()), List.of(p))) {
            opt.step(1, 1f, f32(1f));
            float[] x = cpu.toFloats(p.value());
            double d0 = 1e-6f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
            double step0 = d0 * (d0 * (1 - b1) * 0.5) / (Math.sqrt(d0 * d0 * (1 - b2) * 0.25) + d0 * eps);
            double step1 = d0 * (d0 * (1 - b1) * 0.25) / (Math.sqrt(d0 * d0 * (1 - b2) * 0.0625) + d0 * eps);
            assertEquals(3.1623e-6, step0, 1e-9);
            assertEquals((float) (1 - step0), x[0], 0f);
            assertEquals((float) (-2 + step1), x[1], 0f);
            float[] scalars = ((Prodigy) opt).scalars(); // d, d_max, d_numerator, k
            assertArrayEquals(new float[] {1e-6f, 1e-6f, 0f, 1f}, scalars, 0f);
            // Step 2 with the same gradient: Σ g·(p0 − p) ≈ 0.5·step0 + 0.25·step1 > 0, so d grows to d̂ =
            // (d/d0)·dlr·Σ g·(p0 − p) / Σ|s| with s = β3·s + d0·g = (1 + √0.999)·d0·g. p0 − p is taken from the stored
            // floats: near 1 their spacing (6e-8) is 2 % of the 3.2e-6 step, so the rounded p matters here.
            opt.step(2, 1f, f32(1f));
            double num = d0 * (0.5 * (1 - (double) x[0]) + -0.25 * (-2 - (double) x[1]));
            double den = (Math.sqrt(0.999f) + 1) * d0 * 0.75;
            assertEquals((float) (num / den), ((Prodigy) opt).scalars()[0], Math.ulp((float) (num / den)) * 4);
        }
    }

    @Test
    void zeroLearningRateSkipsTheStep() {
        // warm-up step 0 has lr 0: upstream skips every group, so nothing moves and k stays 0
        var p = new TrainableParameter("p", f32(1, -2), f32(0.5f, -0.25f));
        try (var opt = Optimizer.create(cpu, OptimizerConfig.fromFlags("prodigy", List.of()), List.of(p))) {
            opt.step(1, 0f, f32(1f));
            assertArrayEquals(new float[] {1, -2}, cpu.toFloats(p.value()), 0f);
            assertArrayEquals(new float[] {1e-6f, 1e-6f, 0f, 0f}, ((Prodigy) opt).scalars(), 0f);
        }
    }

    /**
     * prodigy.py's step, tensors in float (torch fp32), scalars in double (Python floats). The hyper-parameters are
     * the F32 values wanlora passes (1 − 0.999f is 1.3e-5 away from 1 − 0.999, more than everything else compared).
     */
    private static final class Oracle {
        final double lr, b1, b2, b3, eps, wd, d0, dCoef, growth;
        final boolean decouple, biasCorrection, safeguard;
        double d, dMax, dNumerator;
        int k;
        final float[][] x, p0, m, v, s;

        Oracle(OptimizerProblem q, double lr, double b1, double b2, double wd, boolean decouple, boolean biasCorrection,
               boolean safeguard, double dCoef, double growth) {
            this.lr = (float) lr;
            this.b1 = (float) b1;
            this.b2 = (float) b2;
            this.b3 = (float) Math.sqrt(b2);
            this.eps = 1e-8f;
            this.wd = (float) wd;
            this.decouple = decouple;
            this.biasCorrection = biasCorrection;
            this.safeguard = safeguard;
            this.d0 = 1e-6f;
            this.dCoef = (float) dCoef;
            this.growth = (float) growth;
            d = dMax = d0;
            int n = q.shapes.length;
            x = new float[n][];
            p0 = new float[n][];
            m = new float[n][];
            v = new float[n][];
            s = new float[n][];
            for (int j = 0; j < n; j++) {
                x[j] = q.initial(j);
                m[j] = new float[x[j].length];
                v[j] = new float[x[j].length];
                s[j] = new float[x[j].length];
            }
        }

        void step(OptimizerProblem q) {
            double bias = biasCorrection ? Math.sqrt(1 - Math.pow(b2, k + 1)) / (1 - Math.pow(b1, k + 1)) : 1;
            double dlr = d * lr * bias;
            double dNum = dNumerator * b3, delta = 0, dDenom = 0;
            float[][] grads = new float[x.length][];
            for (int j = 0; j < x.length; j++) {
                float[] g = q.gradientOf(j, x[j]);
                if (wd != 0 && !decouple) for (int i = 0; i < g.length; i++) g[i] = g[i] + (float) wd * x[j][i];
                grads[j] = g;
                if (p0[j] == null) p0[j] = x[j].clone();
                double dot = 0;
                for (int i = 0; i < g.length; i++) dot += (double) g[i] * (float) (p0[j][i] - x[j][i]);
                delta += (d / d0) * dlr * (float) dot;
                float mAlpha = (float) (d * (1 - b1)), vAlpha = (float) (d * d * (1 - b2));
                float sAlpha = (float) ((d / d0) * (safeguard ? d : dlr));
                double abs = 0;
                for (int i = 0; i < g.length; i++) {
                    m[j][i] = m[j][i] * (float) b1 + mAlpha * g[i];
                    v[j][i] = v[j][i] * (float) b2 + vAlpha * g[i] * g[i];
                    s[j][i] = s[j][i] * (float) b3 + sAlpha * g[i];
                    abs += Math.abs(s[j][i]);
                }
                dDenom += (float) abs;
            }
            double num = dNum + delta;
            double dHat = dCoef * num / dDenom;
            if (d == d0) d = Math.max(d, dHat);
            dMax = Math.max(dMax, dHat);
            d = Math.min(dMax, d * growth);
            dNumerator = num;
            for (int j = 0; j < x.length; j++) {
                for (int i = 0; i < x[j].length; i++) {
                    float denom = (float) Math.sqrt(v[j][i]) + (float) (d * eps);
                    if (decouple && wd != 0) x[j][i] = x[j][i] + (float) (-wd * dlr) * x[j][i];
                    x[j][i] = b1 > 0 ? x[j][i] + (float) (-dlr) * (m[j][i] / denom)
                            : x[j][i] + (float) (-dlr * d) * (grads[j][i] / denom);
                }
            }
            k++;
        }
    }

    private void compareWithOracle(String label, List<String> args, double lr, double b1, double b2, double wd,
                                   boolean decouple, boolean bias, boolean safeguard, double dCoef, double growth) {
        var q = new OptimizerProblem(cpu, 5, Shape.of(4, 40), Shape.of(40, 4));
        var oracle = new Oracle(q, lr, b1, b2, wd, decouple, bias, safeguard, dCoef, growth);
        int steps = 25;
        try (var opt = Optimizer.create(cpu, OptimizerConfig.fromFlags("prodigyopt.Prodigy", args), q.params)) {
            Tensor one = f32(1f);
            for (int t = 1; t <= steps; t++) {
                q.gradient();
                opt.step(t, (float) lr, one);
                oracle.step(q);
            }
            float[] ours = q.values();
            float[] theirs = new float[ours.length];
            System.arraycopy(oracle.x[0], 0, theirs, 0, 160);
            System.arraycopy(oracle.x[1], 0, theirs, 160, 160);
            float d = ((Prodigy) opt).scalars()[0];
            var err = ErrorStats.compare(ours, theirs);
            double dErr = Math.abs(d - oracle.d) / oracle.d;
            System.out.printf("prodigy[cpu,%s,%d steps] d=%.4g (oracle %.4g, rel %.2e) params relL2=%.2e (bound 1e-5)%n",
                    label, steps, d, oracle.d, dErr, err.relL2());
            // The oracle rounds every tensor op to fp32 as torch does, the reference once per stored value, and keeps
            // d in F32 (2⁻²⁴ per step); 25 steps of d-adaptation compound these to ~1e-6 at most (measured: d ≤ 2.7e-7,
            // parameters ≤ 3.9e-7 relL2), so 1e-5 leaves 25× headroom while a wrong formula shows as O(1e-2) or more.
            assertTrue(dErr < 1e-5, label + ": d " + d + " vs " + oracle.d);
            assertTrue(err.relL2() < 1e-5, label + ": " + err);
            assertTrue(oracle.d > 1e-5, label + ": d must have adapted well above d0, got " + oracle.d);
        }
        q.close();
    }

    @Test
    void matchesProdigyPyOverSteps() {
        compareWithOracle("defaults", List.of(), 1.0, 0.9, 0.999, 0, true, false, false, 1.0, Double.POSITIVE_INFINITY);
        compareWithOracle("decoupled wd, bias correction, safeguard, d_coef 2, growth 1.5",
                List.of("weight_decay=0.01", "use_bias_correction=True", "safeguard_warmup=True", "d_coef=2",
                        "growth_rate=1.5", "betas=(0.9,0.99)"),
                1.0, 0.9, 0.99, 0.01, true, true, true, 2.0, 1.5);
        compareWithOracle("coupled wd, lr 0.5", List.of("weight_decay=0.01", "decouple=False"), 0.5, 0.9, 0.999, 0.01,
                false, false, false, 1.0, Double.POSITIVE_INFINITY);
        compareWithOracle("beta1 0", List.of("betas=(0.0,0.999)"), 1.0, 0.0, 0.999, 0, true, false, false, 1.0,
                Double.POSITIVE_INFINITY);
    }

    @Test
    void contiguousMatchesPerParameter() {
        // one op over the flat buffers vs one op per parameter: the same elementwise math, the sums in another order
        // (double within an op, F32 across ops): d agrees to a few F32 ulps, the parameters to relL2 ≤ 1e-6
        var a = new OptimizerProblem(cpu, 8, Shape.of(4, 40), Shape.of(40, 4));
        var b = new OptimizerProblem(cpu, 8, Shape.of(4, 40), Shape.of(40, 4));
        Tensor flatValue = cpu.allocate(DType.F32, Shape.of(320)), flatGrad = cpu.allocate(DType.F32, Shape.of(320));
        var config = OptimizerConfig.fromFlags("prodigy", List.of());
        try (var perParameter = Optimizer.create(cpu, config, a.params);
             var contiguous = Optimizer.create(cpu, config, b.params, new TrainableParameter("flat", flatValue, flatGrad))) {
            Tensor one = f32(1f);
            for (int t = 1; t <= 10; t++) {
                a.gradient();
                perParameter.step(t, 1f, one);
                b.gradient();
                cpu.copy(flatValue.view(0, Shape.of(160)), b.params.get(0).value());
                cpu.copy(flatValue.view(160, Shape.of(160)), b.params.get(1).value());
                cpu.copy(flatGrad.view(0, Shape.of(160)), b.params.get(0).grad());
                cpu.copy(flatGrad.view(160, Shape.of(160)), b.params.get(1).grad());
                contiguous.step(t, 1f, one);
                cpu.copy(b.params.get(0).value(), flatValue.view(0, Shape.of(160)));
                cpu.copy(b.params.get(1).value(), flatValue.view(160, Shape.of(160)));
            }
            var err = ErrorStats.compare(b.values(), a.values());
            assertTrue(err.relL2() < 1e-6, err.toString());
        }
    }

    @Test
    void stateRoundTripResumesBitForBit(@TempDir Path dir) {
        var config = OptimizerConfig.fromFlags("prodigyopt.Prodigy", List.of("weight_decay=0.01", "use_bias_correction=True"));
        var q = new OptimizerProblem(cpu, 9, Shape.of(4, 40), Shape.of(40, 4));
        Tensor one = f32(1f);
        Path file = dir.resolve("optimizer.safetensors");
        float[][] checkpoint = new float[2][];
        float[] expected, expectedScalars;
        try (var opt = Optimizer.create(cpu, config, q.params)) {
            for (int t = 1; t <= 3; t++) {
                q.gradient();
                opt.step(t, 1f, one);
            }
            opt.saveState(file);
            for (int k = 0; k < 2; k++) checkpoint[k] = cpu.toFloats(q.params.get(k).value());
            for (int t = 4; t <= 6; t++) {
                q.gradient();
                opt.step(t, 1f, one);
            }
            expected = q.values();
            expectedScalars = ((Prodigy) opt).scalars();
        }
        var resumed = new OptimizerProblem(cpu, 9, Shape.of(4, 40), Shape.of(40, 4));
        for (int k = 0; k < 2; k++) {
            try (Tensor t = cpu.fromFloats(DType.F32, resumed.shapes[k], checkpoint[k])) {
                cpu.copy(resumed.params.get(k).value(), t);
            }
        }
        try (var opt = Optimizer.create(cpu, config, resumed.params)) {
            assertEquals(3, opt.loadState(file));
            for (int t = 4; t <= 6; t++) {
                resumed.gradient();
                opt.step(t, 1f, one);
            }
            assertArrayEquals(expectedScalars, ((Prodigy) opt).scalars(), 0f);
        }
        assertArrayEquals(expected, resumed.values(), 0f);
        // another d_coef is another optimizer: refused in one line
        try (var other = Optimizer.create(cpu, OptimizerConfig.fromFlags("prodigyopt.Prodigy",
                List.of("weight_decay=0.01", "use_bias_correction=True", "d_coef=2")), new OptimizerProblem(cpu, 9,
                Shape.of(4, 40), Shape.of(40, 4)).params)) {
            var e = assertThrows(IllegalArgumentException.class, () -> other.loadState(file));
            assertTrue(e.getMessage().contains("optimizer state was saved with settings=\"ProdigySettings["), e.getMessage());
        }
    }

    @Test
    void settingsFollowProdigyopt() {
        var c = OptimizerConfig.fromFlags("prodigyopt.Prodigy", List.of());
        assertEquals(0f, c.weightDecay()); // Prodigy's default, not AdamW's 0.01
        assertEquals("prodigyopt.prodigy.Prodigy", c.metadataName());
        var s = c.prodigy();
        assertEquals((float) Math.sqrt(0.999), s.beta3());
        assertEquals(1e-6f, s.d0());
        assertEquals(Float.POSITIVE_INFINITY, s.growthRate());
        assertTrue(s.decouple());
        var given = OptimizerConfig.fromFlags("prodigyopt.Prodigy", List.of("decouple=True", "weight_decay=0.01",
                "use_bias_correction=True", "safeguard_warmup=True", "d_coef=0.5", "betas=(0.9,0.99)"));
        assertEquals(0.5f, given.prodigy().dCoef());
        assertEquals((float) Math.sqrt(0.99), given.prodigy().beta3());
        assertEquals("prodigyopt.prodigy.Prodigy(decouple=True,weight_decay=0.01,use_bias_correction=True,"
                + "safeguard_warmup=True,d_coef=0.5,betas=(0.9, 0.99))", given.metadataName());
        var e = assertThrows(IllegalArgumentException.class,
                () -> OptimizerConfig.fromFlags("prodigyopt.Prodigy", List.of("slice_p=11")));
        assertEquals("--optimizer_args: slice_p=11 is not supported; expected slice_p=1 (wanlora computes Prodigy's"
                + " statistics on every element)", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OptimizerConfig.fromFlags("prodigy", List.of("d0=0")));
        assertEquals("--optimizer_args: d0 has an invalid value; got 0, expected a number > 0 (Prodigy's initial d,"
                + " default 1e-6)", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OptimizerConfig.fromFlags("prodigy", List.of("lr=1")));
        assertTrue(e.getMessage().startsWith("--optimizer_args: prodigyopt.prodigy.Prodigy has no argument 'lr'"), e.getMessage());
    }
}
