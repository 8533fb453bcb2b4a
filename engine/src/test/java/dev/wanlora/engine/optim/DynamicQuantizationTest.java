package dev.wanlora.engine.optim;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DynamicQuantizationTest {

    @Test
    void mapsHaveBitsandbytesStructure() {
        float[] s = DynamicQuantization.signedMap();
        float[] u = DynamicQuantization.unsignedMap();
        assertEquals(256, s.length);
        assertEquals(256, u.length);
        for (int i = 1; i < 256; i++) {
            assertTrue(s[i - 1] < s[i], "signed map strictly increasing at " + i);
            assertTrue(u[i - 1] < u[i], "unsigned map strictly increasing at " + i);
        }
        assertEquals(0f, s[DynamicQuantization.SIGNED_ZERO_CODE], 0f);
        assertEquals(1f, s[255], 0f);
        assertEquals(0f, u[0], 0f);
        assertEquals(1f, u[255], 0f);
        // the signed map is asymmetric: its most negative value is −mean(linspace(0.1,1,65)[0:2]) = −0.99296875
        assertEquals(-0.99296875f, s[0], 1e-7f);
        for (int i = 0; i < 127; i++) assertEquals(-s[254 - i], s[i], 0f, "negatives mirror the positives below 1.0");
        // smallest non-zero magnitudes: 1e-6·mean(0.1, 1) = 5.5e-7 (signed), 1e-6·mean(0.1, 0.55) = 3.25e-7 (unsigned)
        assertEquals(5.5e-7f, s[128], 1e-13f);
        assertEquals(3.25e-7f, u[1], 1e-13f);
        // decade i holds 2^i (signed) or 2^(i+1) (unsigned) values in [0.1, 1]·10^(i−6)
        int[] perDecade = new int[7];
        for (int i = 128; i < 255; i++) perDecade[(int) Math.floor(Math.log10(s[i])) + 7]++;
        assertArrayEquals(new int[] {1, 2, 4, 8, 16, 32, 64}, perDecade);
    }

    @Test
    void linspaceIsTorchsTwoSidedFormula() {
        // linspace(0.1, 1, 3): step = 0.45f; [0.1, 1 − 0.45, 1] — the upper half counts back from the end
        float[] l = DynamicQuantization.linspaceF32(0.1f, 1f, 3);
        assertEquals(0.1f, l[0], 0f);
        assertEquals(Math.fma(-0.45f, 1f, 1f), l[1], 0f);
        assertEquals(1f, l[2], 0f);
    }

    /** quantize must return a nearest map value (ties may go either way): |x − map[q]| ≤ min_k |x − map[k]|. */
    @Test
    void quantizeIsNearestNeighbour() {
        var rng = new SplittableRandom(7);
        for (boolean signed : new boolean[] {true, false}) {
            float[] map = signed ? DynamicQuantization.signedMap() : DynamicQuantization.unsignedMap();
            for (int n = 0; n < 200_000; n++) {
                // log-uniform magnitudes from 1e-8 to 1 exercise every decade of the map
                float x = (float) Math.pow(10, -8 * rng.nextDouble());
                if (signed && rng.nextBoolean()) x = -x;
                int q = DynamicQuantization.quantize(map, x, signed);
                float best = Float.MAX_VALUE;
                for (float v : map) best = Math.min(best, Math.abs(x - v));
                // the midpoint (lower + val)·0.5 is itself rounded: at most half an ulp of the map value away
                assertTrue(Math.abs(x - map[q]) <= best + Math.ulp(map[q]), "x=" + x + " q=" + q);
            }
            for (int c = 0; c < 256; c++) assertEquals(c, DynamicQuantization.quantize(map, map[c], signed), "exact value " + map[c]);
        }
    }

    /** Block-wise round trip: the error of each element is at most half the local gap of the map, times absmax. */
    @Test
    void blockwiseRoundTripErrorBound() {
        var rng = new SplittableRandom(11);
        float[] map = DynamicQuantization.signedMap();
        float[] x = new float[256];
        double worstRelativeToAbsMax = 0;
        for (int trial = 0; trial < 200; trial++) {
            float absMax = 0;
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) (rng.nextGaussian() * Math.pow(10, -3 * rng.nextDouble()));
                absMax = Math.max(absMax, Math.abs(x[i]));
            }
            for (float v : x) {
                float normalized = v / absMax;
                int q = DynamicQuantization.quantizeKeepingSign(normalized, v);
                float back = map[q] * absMax;
                // sign bit kept (a tiny positive value may become +0; a tiny negative one never becomes +0)
                assertEquals(v < 0, Float.floatToRawIntBits(back) < 0, "sign kept: " + v);
                // largest gap of the signed map is in the top decade: 0.9/64 = 0.0140625, half of it 0.00703
                double err = Math.abs(back - v) / absMax;
                worstRelativeToAbsMax = Math.max(worstRelativeToAbsMax, err);
                assertTrue(err <= 0.0140625 / 2 + 1e-6, "err " + err + " for " + v);
            }
        }
        System.out.printf("dynamic map blockwise round trip: worst |err|/absmax = %.5f (bound 0.00703)%n", worstRelativeToAbsMax);
    }

    @Test
    void signFixMovesTinyValuesOffTheWrongSign() {
        // −1e-9 of absmax 1 rounds to the +0 code (127, sign bit clear): the kernel moves it to 126 (−5.5e-7)
        assertEquals(127, DynamicQuantization.quantize(DynamicQuantization.signedMap(), -1e-9f, true));
        assertEquals(126, DynamicQuantization.quantizeKeepingSign(-1e-9f, -1e-9f));
        assertEquals(127, DynamicQuantization.quantizeKeepingSign(1e-9f, 1e-9f));
        assertEquals(126, DynamicQuantization.quantizeKeepingSign(-0f, -0f), "−0.0 has the sign bit set");
        // a zero absmax gives 0/0 = NaN: the walk ends at code 0 (negative), and for +0.0 the fix wraps to 255
        assertEquals(0, DynamicQuantization.quantize(DynamicQuantization.signedMap(), Float.NaN, true));
        assertEquals(255, DynamicQuantization.quantizeKeepingSign(Float.NaN, 0f));
        assertEquals(0, DynamicQuantization.quantizeUnsigned(Float.NaN));
    }
}
