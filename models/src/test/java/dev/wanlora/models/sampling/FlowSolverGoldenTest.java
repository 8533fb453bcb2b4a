package dev.wanlora.models.sampling;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Our solvers against musubi's {@code FlowUniPCMultistepScheduler} and {@code FlowMatchDiscreteScheduler} on the fake
 * model outputs of {@code testdata/golden/sampling-tiny/unipc.safetensors} (runs s20_fs5, s8_fs3, s20_fs14p5).
 *
 * <p>Bounds (README "Measured spreads"): a float64 numpy solver written from the spec lands at ≤ 2.5e-7 relL2 on every
 * prev_sample (the golden itself is float32, so that is the golden's own rounding) and ≤ 1.4e-7 for Euler. float64:
 * 1e-6 = 4× that. Our float32 path runs torch's float32 operations in torch's order; it differs from the golden only
 * where torch fuses or reorders (linalg.solve's LU vs our 2×2 formula, linspace's ulp): 1e-5, the bound.
 */
class FlowSolverGoldenTest {

    private static final List<String> RUNS = List.of("s20_fs5", "s8_fs3", "s20_fs14p5");
    private static final double FLOAT64_BOUND = 1e-6;
    private static final double FLOAT32_BOUND = 1e-5;

    @Test
    void uniPcMatchesEveryStepOfEveryRun() {
        try (SafeTensors g = SafeTensors.open(Golden.dir("sampling-tiny").resolve("unipc.safetensors"))) {
            for (String run : RUNS) {
                for (SolverPrecision precision : SolverPrecision.values()) {
                    double bound = precision == SolverPrecision.FLOAT64 ? FLOAT64_BOUND : FLOAT32_BOUND;
                    long[] timesteps = longs(g, run + ".timesteps");
                    int n = timesteps.length;
                    double shift = shiftOf(run);
                    UniPcFlowSolver solver = new UniPcFlowSolver(n, shift, precision);
                    long[] ours = new long[n];
                    for (int k = 0; k < n; k++) ours[k] = solver.timestep(k);
                    assertArrayEquals(timesteps, ours, run + " timesteps");
                    float[] sigmas = g.floats(run + ".sigmas");
                    for (int k = 0; k <= n; k++) assertEquals(sigmas[k], (float) solver.sigma(k), run + " sigma " + k);

                    long[] order = longs(g, run + ".order"), corrector = longs(g, run + ".corrector_order");
                    float[] v = g.floats(run + ".model_output"), x0 = g.floats(run + ".x0_pred");
                    float[] corrected = g.floats(run + ".corrected"), prev = g.floats(run + ".prev_sample");
                    float[] x = g.floats(run + ".sample0");
                    int size = x.length;
                    double worst = 0;
                    for (int k = 0; k < n; k++) {
                        float[] next = solver.step(slice(v, k, size), x);
                        assertEquals(order[k], solver.lastPredictorOrder(), run + " order at step " + k);
                        assertEquals(corrector[k], solver.lastCorrectorOrder(), run + " corrector order at step " + k);
                        check(run + " " + precision + " x0_pred " + k, toFloats(solver.lastX0Prediction()), slice(x0, k, size), bound);
                        check(run + " " + precision + " corrected " + k, toFloats(solver.lastCorrectedSample()),
                                slice(corrected, k, size), bound);
                        worst = Math.max(worst, check(run + " " + precision + " prev_sample " + k, next, slice(prev, k, size), bound));
                        x = slice(prev, k, size); // each step from the golden's own sample, so errors do not compound
                    }
                    System.out.printf("UniPC %s %s: worst prev_sample relL2 %.2e (bound %.0e)%n", run, precision, worst, bound);
                }
            }
        }
    }

    @Test
    void eulerMatchesEveryStepOfEveryRun() {
        try (SafeTensors g = SafeTensors.open(Golden.dir("sampling-tiny").resolve("unipc.safetensors"))) {
            for (String run : RUNS) {
                for (SolverPrecision precision : SolverPrecision.values()) {
                    double bound = precision == SolverPrecision.FLOAT64 ? FLOAT64_BOUND : FLOAT32_BOUND;
                    float[] timesteps = g.floats(run + ".euler.timesteps");
                    int n = timesteps.length;
                    EulerFlowSolver solver = new EulerFlowSolver(n, shiftOf(run), precision);
                    float[] sigmas = g.floats(run + ".euler.sigmas");
                    float[] ourSigmas = new float[n + 1], ourTimesteps = new float[n];
                    for (int k = 0; k <= n; k++) ourSigmas[k] = (float) solver.sigma(k);
                    for (int k = 0; k < n; k++) ourTimesteps[k] = solver.modelTimestep(k);
                    // linspace may differ by one float32 ulp (spec §10.4): 2.4e-7 relative
                    assertTrue(ErrorStats.compare(ourSigmas, sigmas).maxRel() <= 2.4e-7, run + " euler sigmas");
                    assertTrue(ErrorStats.compare(ourTimesteps, timesteps).maxRel() <= 2.4e-7, run + " euler timesteps");
                    float[] v = g.floats(run + ".model_output"), prev = g.floats(run + ".euler.prev_sample");
                    float[] x = g.floats(run + ".sample0");
                    for (int k = 0; k < n; k++) {
                        check(run + " " + precision + " euler " + k, solver.step(slice(v, k, x.length), x),
                                slice(prev, k, x.length), bound);
                        x = slice(prev, k, x.length);
                    }
                }
            }
        }
    }

    @Test
    void lastStepReturnsTheX0PredictionAndSingleStepIsOneEulerMove() {
        UniPcFlowSolver one = new UniPcFlowSolver(1, 3.0, SolverPrecision.FLOAT64);
        float[] x = {1f, -2f}, v = {0.5f, 0.25f};
        float[] out = one.step(v, x);
        double s0 = one.sigma(0);
        assertEquals((float) (1 - s0 * 0.5), out[0]);
        assertEquals((float) (-2 - s0 * 0.25), out[1]);
        assertEquals(0.0, one.sigma(1));
    }

    @Test
    void rejectsSchedulesMusubiCannotRun() {
        // spec §10.4: from N = 76 at fs 14.5, t_1 = t_0 = 999
        var e = assertThrows(IllegalArgumentException.class, () -> new UniPcFlowSolver(76, 14.5, SolverPrecision.FLOAT32));
        assertTrue(e.getMessage().contains("fewer steps"), e.getMessage());
        new UniPcFlowSolver(75, 14.5, SolverPrecision.FLOAT32);
        assertThrows(IllegalArgumentException.class, () -> new UniPcFlowSolver(0, 5, SolverPrecision.FLOAT32));
        assertEquals(FlowSolver.Kind.EULER, FlowSolver.Kind.parse("Euler"));
        assertThrows(IllegalArgumentException.class, () -> FlowSolver.Kind.parse("dpm++"));
    }

    private static double check(String what, float[] ours, float[] expected, double bound) {
        ErrorStats s = ErrorStats.compare(ours, expected);
        assertTrue(s.nonFinite() == 0 && s.relL2() <= bound, what + ": " + s.describe(bound));
        return s.relL2();
    }

    static double shiftOf(String run) {
        return Double.parseDouble(run.substring(run.indexOf("_fs") + 3).replace('p', '.'));
    }

    static long[] longs(SafeTensors g, String key) {
        return g.data(key).toArray(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN));
    }

    static float[] slice(float[] stacked, int k, int size) {
        return Arrays.copyOfRange(stacked, k * size, (k + 1) * size);
    }

    private static float[] toFloats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < f.length; i++) f[i] = (float) d[i];
        return f;
    }
}
