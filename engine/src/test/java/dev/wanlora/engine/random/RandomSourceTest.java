package dev.wanlora.engine.random;

import org.apache.commons.math3.distribution.NormalDistribution;
import org.apache.commons.math3.stat.inference.KolmogorovSmirnovTest;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RandomSourceTest {
    private static final int N = 20_000;
    /** Fixed seed, so deterministic; p > 1e-3 rejects a wrong distribution decisively at n = 20000. */
    private static final double P_MIN = 1e-3;

    @Test
    void randomSourceIsSplitMix64AndResumable() {
        var ours = new RandomSource(42);
        var reference = new SplittableRandom(42); // same gamma and mix: draw i = mix64(seed + i·γ)
        for (int i = 0; i < 1000; i++) assertEquals(reference.nextLong(), ours.nextLong());
        var state = ours.state();
        long next = ours.nextLong();
        assertEquals(next, RandomSource.restore(state).nextLong());
        double[] z = new double[N];
        var g = new RandomSource(5);
        for (int i = 0; i < N; i++) z[i] = g.nextGaussian();
        double p = new KolmogorovSmirnovTest().kolmogorovSmirnovTest(new NormalDistribution(0, 1), z);
        System.out.printf("RandomSource.nextGaussian KS p=%.3f%n", p);
        assertTrue(p > P_MIN);
    }

    @Test
    void nextIntIsUnbiasedAndShuffleIsAPermutation() {
        var r = new RandomSource(3);
        int[] counts = new int[3];
        for (int i = 0; i < 30_000; i++) counts[r.nextInt(3)]++;
        // binomial sd = √(30000·⅓·⅔) ≈ 82: ±500 is > 6 sd
        for (int c : counts) assertTrue(Math.abs(c - 10_000) < 500, "count " + c);
        int[] a = {0, 1, 2, 3, 4, 5, 6, 7};
        r.shuffle(a);
        assertEquals(28, java.util.Arrays.stream(a).sum());
        assertEquals(8, java.util.Arrays.stream(a).distinct().count());
    }
}
