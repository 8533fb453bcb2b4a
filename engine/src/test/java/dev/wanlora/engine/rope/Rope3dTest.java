package dev.wanlora.engine.rope;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Wan's 3D RoPE tables (spec §1.4) for D = 128 and a ragged grid F = 3, H' = 4, W' = 5. */
class Rope3dTest {

    private static final int F = 3, H = 4, W = 5, D = 128, HALF = 64;

    @Test
    void pairsSplit22_21_21WithTheirOwnBases() {
        double[] a = Rope3d.angles(F, H, W, D);
        assertEquals((long) F * H * W * HALF, a.length);
        // Token (f, h, w) = (2, 3, 4) is row (2·4 + 3)·5 + 4 = 59.
        int row = 59 * HALF;
        for (int j = 0; j < 22; j++) assertEquals(2 * Math.pow(10000, -2.0 * j / 44), a[row + j], 1e-15);
        for (int j = 0; j < 21; j++) {
            assertEquals(3 * Math.pow(10000, -2.0 * j / 42), a[row + 22 + j], 1e-15);
            assertEquals(4 * Math.pow(10000, -2.0 * j / 42), a[row + 43 + j], 1e-15);
        }
        // Boundary pairs by hand: pair 0 = f; pair 21 = f·10000^(−42/44) = 2·1.5199e-4; pair 22 = h; pair 43 = w;
        // pair 63 = w·10000^(−40/42) = 4·1.5505e-4.
        assertEquals(2, a[row], 0);
        assertEquals(2 * 1.519911082952933e-4, a[row + 21], 1e-18);
        assertEquals(3, a[row + 22], 0);
        assertEquals(4, a[row + 43], 0);
        assertEquals(4 * 1.5505157798326253e-4, a[row + 63], 1e-18);
        // Token (0, 0, 0) has no rotation at all: positions start at 0.
        for (int j = 0; j < HALF; j++) assertEquals(0, a[j], 0);
    }

    /**
     * Re-derivation the way upstream writes it: one [1024, 64] table = concat(rope_params(1024, 44),
     * rope_params(1024, 42), rope_params(1024, 42)), split into column groups [22, 21, 21], and token (f, h, w) takes
     * row f of group 0, row h of group 1 and row w of group 2.
     */
    @Test
    void matchesUpstreamsConcatenatedTable() {
        double[][] freqs = new double[1024][HALF];
        int[] dims = {44, 42, 42}, starts = {0, 22, 43};
        for (int p = 0; p < 1024; p++) {
            for (int g = 0; g < 3; g++) {
                for (int j = 0; j < dims[g] / 2; j++) {
                    freqs[p][starts[g] + j] = p * (1.0 / Math.pow(10000, (double) (2 * j) / dims[g]));
                }
            }
        }
        double[] a = Rope3d.angles(F, H, W, D);
        for (int f = 0; f < F; f++) {
            for (int h = 0; h < H; h++) {
                for (int w = 0; w < W; w++) {
                    int row = ((f * H + h) * W + w) * HALF;
                    for (int j = 0; j < HALF; j++) {
                        int pos = j < 22 ? f : j < 43 ? h : w;
                        assertEquals(freqs[pos][j], a[row + j], 0, "token " + f + "," + h + "," + w + " pair " + j);
                    }
                }
            }
        }
    }

    @Test
    void tablesRotateLikeComplexMultiplication() {
        var cpu = new CpuBackend();
        try (var t = Rope3d.build(cpu, F, H, W, D)) {
            assertEquals(Shape.of(F * H * W, HALF), t.cos().shape());
            assertEquals(DType.F32, t.sin().dtype());
            double[] a = Rope3d.angles(F, H, W, D);
            float[] cos = cpu.toFloats(t.cos()), sin = cpu.toFloats(t.sin());
            for (int i = 0; i < a.length; i++) {
                assertEquals((float) Math.cos(a[i]), cos[i], 0f);
                assertEquals((float) Math.sin(a[i]), sin[i], 0f);
            }
            // Two heads of D = 128: each pair (x[2j], x[2j+1]) as a complex number times e^{iθ}, in double. The F32
            // tables carry ≤ 2⁻²⁴ relative error and the output one more rounding: 1e-6 absolute for |x| ≲ 4.
            int l = F * H * W;
            float[] x = new float[l * 2 * D];
            Random r = new Random(1);
            for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
            var in = cpu.fromFloats(DType.F32, Shape.of(1, l, 2 * D), x);
            var out = cpu.allocate(DType.F32, Shape.of(1, l, 2 * D));
            cpu.rope(out, in, t.cos(), t.sin(), 2);
            float[] o = cpu.toFloats(out), expected = new float[o.length];
            for (int tok = 0; tok < l; tok++) {
                for (int h = 0; h < 2; h++) {
                    for (int j = 0; j < HALF; j++) {
                        int i = tok * 2 * D + h * D + 2 * j;
                        double theta = a[tok * HALF + j], re = x[i], im = x[i + 1];
                        expected[i] = (float) (re * Math.cos(theta) - im * Math.sin(theta));
                        expected[i + 1] = (float) (re * Math.sin(theta) + im * Math.cos(theta));
                    }
                }
            }
            assertArrayEquals(expected, o, 1e-6f);
        }
    }

    @Test
    void smallHeadDimsSplitTheSameWay() {
        // D = 8: c = 4 pairs, ⌊c/3⌋ = 1 → frame pairs 0-1 (base 4), height pair 2 (base 2), width pair 3 (base 2).
        double[] a = Rope3d.angles(2, 2, 2, 8);
        int row = 7 * 4; // token (1, 1, 1)
        assertArrayEquals(new double[] {1, Math.pow(10000, -0.5), 1, 1}, java.util.Arrays.copyOfRange(a, row, row + 4), 0);
        var e = assertThrows(IllegalArgumentException.class, () -> Rope3d.angles(1, 1, 1, 7));
        assertEquals("Rope3d: invalid grid or head dim; got frames=1, height=1, width=1, headDim=7, expected "
                + "non-negative sizes and a positive even head dim", e.getMessage());
    }
}
