package dev.wanlora.engine.random;

import org.apache.commons.math3.distribution.NormalDistribution;
import org.apache.commons.math3.stat.inference.KolmogorovSmirnovTest;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CounterRngTest {

    /** Random123's tests/kat_vectors, the three "philox4x32 10" lines: counter, key, result. */
    @Test
    void philoxKnownAnswers() {
        int[][][] kat = {
                {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
                {{-1, -1, -1, -1}, {-1, -1}, {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
                {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
                        {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
        };
        for (int[][] v : kat) {
            assertArrayEquals(v[2], CounterRng.philox(v[0].clone(), v[1][0], v[1][1]));
            assertArrayEquals(v[2], straightforwardPhilox(v[0], v[1]));
        }
    }

    /**
     * normal(seed, counter) pinned for the CUDA kernel. The expected doubles come from an independent Python
     * implementation (arbitrary-precision integers, the C library's log/cos); libraries may differ by an ulp or two
     * in log and cos, so doubles agree to 1e-15 relative and the float-rounded values exactly.
     */
    @Test
    void pinnedNormalValues() {
        long[][] args = {{0, 0}, {0, 1}, {2025, 0}, {2025, 123456789}, {-1, (1L << 32) + 5}, {42, Long.MAX_VALUE}};
        double[] expected = {0.9911376799303855, -0.15363823029788248, 0.9440422000266555, -2.7639177714888934,
                2.2119099499344204, -0.12840623286731961};
        for (int i = 0; i < args.length; i++) {
            double z = CounterRng.normal(args[i][0], args[i][1]);
            assertEquals(expected[i], z, 1e-15 * Math.abs(expected[i]), "seed " + args[i][0] + " counter " + args[i][1]);
            assertEquals((float) expected[i], (float) z, 0f);
            assertEquals(straightforwardNormal(args[i][0], args[i][1]), z, 0);
        }
    }

    @Test
    void matchesTheStraightforwardDefinitionEverywhere() {
        for (long seed : new long[] {0, 1, -1, 0x1234_5678_9abc_def0L}) {
            for (long c = -3; c < 3000; c += 7) assertEquals(straightforwardNormal(seed, c), CounterRng.normal(seed, c), 0);
        }
    }

    /**
     * Moments over n = 1e5 draws: the sample mean has standard error 1/√n = 3.2e-3 and the sample variance √(2/n) =
     * 4.5e-3 for a standard normal; 5 standard errors (a 1-in-3.5-million miss for a fixed, deterministic seed) bound
     * them. The Kolmogorov–Smirnov p-value checks the shape.
     */
    @Test
    void isStandardNormal() {
        int n = 100_000;
        double[] z = new double[n];
        double sum = 0, sumSq = 0;
        for (int i = 0; i < n; i++) {
            z[i] = CounterRng.normal(2025, i);
            sum += z[i];
        }
        double mean = sum / n;
        for (double v : z) sumSq += (v - mean) * (v - mean);
        double variance = sumSq / (n - 1);
        System.out.printf("CounterRng n=%d mean=%.2e (bound %.2e) var-1=%.2e (bound %.2e)%n", n, mean,
                5 / Math.sqrt(n), variance - 1, 5 * Math.sqrt(2.0 / n));
        assertTrue(Math.abs(mean) < 5 / Math.sqrt(n), "mean " + mean);
        assertTrue(Math.abs(variance - 1) < 5 * Math.sqrt(2.0 / n), "variance " + variance);
        double p = new KolmogorovSmirnovTest().kolmogorovSmirnovTest(new NormalDistribution(0, 1), z);
        System.out.printf("CounterRng Kolmogorov-Smirnov p=%.3f%n", p);
        assertTrue(p > 1e-3, "KS p-value " + p);
    }

    // ---------------------------------------------------------------- independent transcription (longs, masks)

    private static final long MASK = 0xFFFF_FFFFL;

    private static int[] straightforwardPhilox(int[] counter, int[] key) {
        long c0 = counter[0] & MASK, c1 = counter[1] & MASK, c2 = counter[2] & MASK, c3 = counter[3] & MASK;
        long k0 = key[0] & MASK, k1 = key[1] & MASK;
        for (int round = 0; round < 10; round++) {
            long p0 = 0xD2511F53L * c0, p1 = 0xCD9E8D57L * c2; // < 2^64 as unsigned; >>> keeps the high word
            long n0 = ((p1 >>> 32) ^ c1 ^ k0) & MASK, n1 = p1 & MASK;
            long n2 = ((p0 >>> 32) ^ c3 ^ k1) & MASK, n3 = p0 & MASK;
            c0 = n0; c1 = n1; c2 = n2; c3 = n3;
            k0 = (k0 + 0x9E3779B9L) & MASK;
            k1 = (k1 + 0xBB67AE85L) & MASK;
        }
        return new int[] {(int) c0, (int) c1, (int) c2, (int) c3};
    }

    private static double straightforwardNormal(long seed, long counter) {
        int[] r = straightforwardPhilox(new int[] {(int) counter, (int) (counter >>> 32), 0, 0},
                new int[] {(int) seed, (int) (seed >>> 32)});
        double u1 = ((r[0] & MASK) + 0.5) / 4294967296.0, u2 = ((r[1] & MASK) + 0.5) / 4294967296.0;
        return StrictMath.sqrt(-2 * StrictMath.log(u1)) * StrictMath.cos(2 * Math.PI * u2);
    }
}
