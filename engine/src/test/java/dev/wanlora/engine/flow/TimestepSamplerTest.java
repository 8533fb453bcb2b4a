package dev.wanlora.engine.flow;

import dev.wanlora.engine.random.RandomSource;

import org.apache.commons.math3.distribution.NormalDistribution;
import org.apache.commons.math3.distribution.UniformRealDistribution;
import org.apache.commons.math3.stat.inference.KolmogorovSmirnovTest;
import org.junit.jupiter.api.Test;

import java.util.function.DoubleUnaryOperator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Distribution tests: each sample t is mapped through the analytic CDF F of its mode, and F(t) is tested against
 * U(0,1) with Kolmogorov–Smirnov. Seeds are fixed, so each test is deterministic; the acceptance level
 * p &gt; 1e-3 rejects a wrong distribution decisively at n = 20000 (the KS statistic's 1e-3 critical value is
 * 1.95/√n ≈ 0.014, while e.g. shift 3 vs shift 2.5 differ by ≈ 0.05 — see {@link #ksDetectsAWrongShift()}).
 */
class TimestepSamplerTest {
    private static final int N = 20_000;
    private static final double P_MIN = 1e-3;
    private static final NormalDistribution PHI = new NormalDistribution(0, 1);
    private static final KolmogorovSmirnovTest KS = new KolmogorovSmirnovTest();

    private static double logit(double x) {
        return Math.log(x / (1 - x));
    }

    /** P(t' ≤ x) for t' = s·t/(1+(s−1)t), t = sigmoid(c·z): t = x/(s − (s−1)x), so F = Φ(logit(t)/c). */
    private static DoubleUnaryOperator shiftCdf(double s, double c) {
        return x -> PHI.cumulativeProbability(logit(x / (s - (s - 1) * x)) / c);
    }

    private static double[] sampleT(TimestepSampler sampler, int batch) {
        double[] t = new double[N];
        for (int i = 0; i < N; i += batch) {
            float[] b = sampler.sample(batch).t();
            for (int j = 0; j < batch; j++) t[i + j] = b[j];
        }
        return t;
    }

    private static double ksPValue(double[] t, DoubleUnaryOperator cdf) {
        double[] u = new double[t.length];
        for (int i = 0; i < t.length; i++) u[i] = cdf.applyAsDouble(t[i]);
        return KS.kolmogorovSmirnovTest(new UniformRealDistribution(0, 1), u);
    }

    private static void assertDistribution(String what, double[] t, DoubleUnaryOperator cdf) {
        double p = ksPValue(t, cdf);
        System.out.printf("timestep KS[%s] n=%d p=%.3f (min %.0e)%n", what, t.length, p, P_MIN);
        assertTrue(p > P_MIN, what + ": KS p-value " + p);
    }

    private static TimestepSampler sampler(TimestepSampling mode, double shift, double sigmoidScale, int min, int max,
                                           boolean preserve, int buckets, long seed) {
        return new TimestepSampler(new TimestepSampler.Config(mode, shift, sigmoidScale, min, max, preserve, buckets),
                new RandomSource(seed));
    }

    @Test
    void shiftThreeMatchesItsAnalyticCdf() {
        var s = sampler(TimestepSampling.SHIFT, 3.0, 1.0, 0, 1000, false, 0, 2025);
        assertDistribution("shift 3.0", sampleT(s, 4), shiftCdf(3.0, 1.0));
    }

    @Test
    void ksDetectsAWrongShift() {
        var s = sampler(TimestepSampling.SHIFT, 3.0, 1.0, 0, 1000, false, 0, 2025);
        double p = ksPValue(sampleT(s, 4), shiftCdf(2.5, 1.0));
        assertTrue(p < 1e-10, "shift 3 samples must not pass as shift 2.5; p=" + p);
    }

    @Test
    void uniformAndSigmoidMatchTheirCdfs() {
        assertDistribution("uniform", sampleT(sampler(TimestepSampling.UNIFORM, 1, 1, 0, 1000, false, 0, 7), 1),
                x -> x);
        // sigmoid(c·z) ≤ x  ⇔  z ≤ logit(x)/c
        assertDistribution("sigmoid c=1.5", sampleT(sampler(TimestepSampling.SIGMOID, 1, 1.5, 0, 1000, false, 0, 8), 2),
                x -> PHI.cumulativeProbability(logit(x) / 1.5));
        assertDistribution("shift 3.0 c=0.8", sampleT(sampler(TimestepSampling.SHIFT, 3.0, 0.8, 0, 1000, false, 0, 9), 2),
                shiftCdf(3.0, 0.8));
    }

    @Test
    void modelTimestepIsThousandTPlusOne() {
        var s = sampler(TimestepSampling.SHIFT, 3.0, 1.0, 0, 1000, false, 0, 1);
        for (int i = 0; i < 100; i++) {
            var b = s.sample(3);
            for (int j = 0; j < 3; j++) {
                assertEquals(b.t()[j] * 1000f + 1f, b.modelTimestep()[j], 0f);
                assertTrue(b.t()[j] > 0 && b.t()[j] < 1);
            }
        }
    }

    @Test
    void minMaxSqueezeIsAffine() {
        // t ← t·0.6 + 0.2: the squeezed CDF is F((x − 0.2)/0.6)
        double[] t = sampleT(sampler(TimestepSampling.SHIFT, 3.0, 1.0, 200, 800, false, 0, 11), 4);
        for (double v : t) assertTrue(v >= 0.2f && v <= 0.8f, "outside [0.2, 0.8]: " + v);
        DoubleUnaryOperator base = shiftCdf(3.0, 1.0);
        assertDistribution("shift 3.0 squeezed to [0.2,0.8]", t, x -> base.applyAsDouble((x - 0.2) / 0.6));
    }

    @Test
    void preserveShapeRejectsAndKeepsTheConditionalDistribution() {
        // accepted samples follow F conditioned on [a, b]: (F(x) − F(a)) / (F(b) − F(a))
        double a = 0.5, b = 0.9;
        double[] t = sampleT(sampler(TimestepSampling.SHIFT, 3.0, 1.0, 500, 900, true, 0, 12), 4);
        for (double v : t) assertTrue(v >= 0.5f && v <= 0.9f, "outside [0.5, 0.9]: " + v);
        DoubleUnaryOperator f = shiftCdf(3.0, 1.0);
        double fa = f.applyAsDouble(a), fb = f.applyAsDouble(b);
        assertDistribution("shift 3.0 rejection on [0.5,0.9]", t, x -> (f.applyAsDouble(x) - fa) / (fb - fa));
    }

    @Test
    void preserveShapeWithTrainerBucketsStaysInRange() {
        double[] t = sampleT(sampler(TimestepSampling.UNIFORM, 1, 1, 100, 300, true, 10, 13), 5);
        for (double v : t) assertTrue(v >= 0.1f && v <= 0.3f, "outside [0.1, 0.3]: " + v);
        assertDistribution("uniform bucketed, rejection on [0.1,0.3]", t, x -> (x - 0.1) / 0.2);
    }

    @Test
    void impossibleRangeFallsBackToUnconstrainedSamples() {
        // shift 3 puts P(t ≤ 0.001) = Φ(logit(0.001/2.998)) ≈ Φ(−8.0) ≈ 6e-16: 1000 loops never fill the batch
        var s = sampler(TimestepSampling.SHIFT, 3.0, 1.0, 0, 1, true, 0, 14);
        var batch = s.sample(4);
        int outside = 0;
        for (float v : batch.t()) if (v > 0.001f) outside++;
        assertEquals(4, outside, "the fallback returns unconstrained samples");
        assertEquals(TimestepSampler.MAX_REJECTION_LOOPS * 4L * 2, s.state().rng().counter(),
                "1000 whole-batch draws of 4 normals, 2 uniforms each");
    }

    @Test
    void sigmaModeIsDiscreteWithoutOffset() {
        var s = sampler(TimestepSampling.SIGMA, 3.0, 1.0, 100, 200, false, 0, 15);
        boolean[] seen = new boolean[1001];
        for (int i = 0; i < 5000; i++) {
            var b = s.sample(2);
            for (int j = 0; j < 2; j++) {
                float ts = b.modelTimestep()[j];
                assertEquals(Math.rint(ts), ts, 0f, "integral timestep");
                assertTrue(ts >= 801 && ts <= 900, "idx in [100, 200) gives timestep 1000 − idx in [801, 900]: " + ts);
                assertEquals((float) (ts / 1000.0), b.t()[j], 0f, "σ = timestep/1000, no +1, no shift");
                seen[(int) ts] = true;
            }
        }
        for (int ts = 801; ts <= 900; ts++) assertTrue(seen[ts], "timestep " + ts + " never drawn in 10000 samples");
    }

    @Test
    void datasetBucketUniformsDriveTheSample() {
        var s = sampler(TimestepSampling.SHIFT, 3.0, 1.0, 0, 1000, false, 0, 16);
        // u = Φ(z) ⇒ z = Φ⁻¹(u); with u = 0.5, z = 0 and t = sigmoid(0) = 0.5 → 3·0.5/(1 + 2·0.5) = 0.75
        var b = s.sample(2, new float[] {0.5f, 0.5f});
        assertEquals(0.75f, b.t()[0], 0f);
        assertEquals(751f, b.modelTimestep()[1], 0f);
        assertEquals(0, s.state().rng().counter(), "no generator draws when the dataset supplies uniforms");
        var u = sampler(TimestepSampling.UNIFORM, 1, 1, 0, 1000, false, 0, 16).sample(1, new float[] {0.25f});
        assertEquals(0.25f, u.t()[0], 0f);
    }

    @Test
    void epochBucketPoolIsStratified() {
        float[][] pool = TimestepSampler.epochBucketPool(10, 4, 8, new RandomSource(3));
        int[] perStratum = new int[8];
        for (float[] batch : pool) for (float u : batch) perStratum[(int) (u * 8)]++;
        // 40 draws = 5 per stratum, nothing trimmed
        for (int c : perStratum) assertEquals(5, c);
        var e = assertThrows(IllegalArgumentException.class, () -> TimestepSampler.epochBucketPool(1, 1, 1, new RandomSource(0)));
        assertTrue(e.getMessage().startsWith("--num_timestep_buckets:"), e.getMessage());
    }

    @Test
    void stateRestoreContinuesBitForBit() {
        var config = new TimestepSampler.Config(TimestepSampling.SHIFT, 3.0, 1.0, 100, 900, true, 7);
        var a = new TimestepSampler(config, new RandomSource(99));
        for (int i = 0; i < 5; i++) a.sample(3);
        var saved = a.state();
        float[][] expected = new float[5][];
        for (int i = 0; i < 5; i++) expected[i] = a.sample(3).t();
        var b = TimestepSampler.restore(config, saved);
        for (int i = 0; i < 5; i++) assertArrayEquals(expected[i], b.sample(3).t());
    }

    @Test
    void normalQuantileMatchesCommonsMath() {
        // AS 241 is accurate to ~1e-16 relative; Commons Math's Φ (via erf) to ~1e-15, so Φ(Φ⁻¹(p)) ≈ p within 1e-13·p
        for (double p : new double[] {1e-7, 1e-5, 0.01, 0.0749, 0.075, 0.3, 0.5, 0.7, 0.925, 0.99, 1 - 1e-7}) {
            double z = TimestepSampler.normalQuantile(p);
            assertEquals(p, PHI.cumulativeProbability(z), 1e-13 * Math.min(p, 1 - p) + 1e-16, "p=" + p);
        }
    }

    @Test
    void badConfigEndsInOneLine() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> new TimestepSampler.Config(TimestepSampling.SHIFT, 3, 1, 800, 200, false, 0));
        assertEquals("--min_timestep/--max_timestep: invalid range; got 800..200, expected 0 ≤ min < max ≤ 1000", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> TimestepSampling.fromFlag("logsnr"));
        assertTrue(e.getMessage().startsWith("--timestep_sampling: unsupported value; got 'logsnr', expected one of sigma, uniform, sigmoid, shift"));
    }
}
