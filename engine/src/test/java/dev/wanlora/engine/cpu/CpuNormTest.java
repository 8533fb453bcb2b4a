package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertGradient;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.dotLoss;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.gaussian;
import static dev.wanlora.engine.cpu.CpuTesting.randn;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** LayerNorm and RMSNorm on the ragged tiny shape R = 3, C = 40, plus hand values. */
class CpuNormTest {

    private static final int R = 3, C = 40;
    private static final float EPS = 1e-6f;

    @Test
    void layerNormHandValues() {
        // x = (1,2,3,4): mean 2.5, biased var (2.25+0.25+0.25+2.25)/4 = 1.25, rstd = 1/√1.25 = 0.894427191 (eps = 0).
        // xhat = (−1.5, −0.5, 0.5, 1.5)·0.894427191; weight (1,2,1,1), bias (0,0,0,1):
        // out = (−1.341640786, −0.894427191, 0.447213595, 2.341640786).
        var x = f32(new float[] {1, 2, 3, 4}, 1, 4);
        var w = f32(new float[] {1, 2, 1, 1}, 4);
        var b = f32(new float[] {0, 0, 0, 1}, 4);
        var out = zeros(DType.F32, 1, 4);
        var mean = zeros(DType.F32, 1);
        var rstd = zeros(DType.F32, 1);
        CPU.layerNorm(out, mean, rstd, x, w, b, 0);
        // 1 ulp of float at |v| ≤ 2.4 is 2.4e-7: the double result is rounded once.
        assertArrayEquals(new float[] {-1.341640786f, -0.894427191f, 0.447213595f, 2.341640786f}, values(out), 2.4e-7f);
        assertArrayEquals(new float[] {2.5f}, values(mean), 0f);
        assertArrayEquals(new float[] {0.894427191f}, values(rstd), 6e-8f);
    }

    @Test
    void backwardHandValues() {
        // LayerNorm, x = (1,2,3,4), no affine, eps 0 (xhat and rstd from layerNormHandValues), dOut = (1,0,0,0):
        // mean(g) = 0.25, mean(g·xhat) = −1.341640786/4 = −0.335410197, dx = rstd·(g − 0.25 + 0.335410197·xhat)
        // = 0.894427191·(0.3, −0.4, −0.1, 0.2) = (0.268328157, −0.357770876, −0.089442719, 0.178885438).
        var x = f32(new float[] {1, 2, 3, 4}, 1, 4);
        var mean = zeros(DType.F32, 1);
        var rstd = zeros(DType.F32, 1);
        CPU.layerNorm(zeros(DType.F32, 1, 4), mean, rstd, x, null, null, 0);
        var dx = zeros(DType.F32, 1, 4);
        CPU.layerNormBackward(dx, null, null, f32(new float[] {1, 0, 0, 0}, 1, 4), x, null, mean, rstd, false);
        // rstd is saved as f32 (relative error ≤ 6e-8), so dx is good to ~1e-7 absolute.
        assertArrayEquals(new float[] {0.268328157f, -0.357770876f, -0.089442719f, 0.178885438f}, values(dx), 1e-7f);

        // RMSNorm, x = (3,4), w = (1,1), eps 0, dOut = (1,0): n = (0.848528137, 1.131370850), mean(dn·n) = 0.424264069,
        // dx = rstd·(dn − n·0.424264069) = 0.282842712·(0.64, −0.48) = (0.181019336, −0.135764502).
        var x2 = f32(new float[] {3, 4}, 1, 2);
        var w2 = f32(new float[] {1, 1}, 2);
        var rstd2 = zeros(DType.F32, 1);
        CPU.rmsNorm(zeros(DType.F32, 1, 2), rstd2, x2, w2, 0);
        var dx2 = zeros(DType.F32, 1, 2);
        var dw2 = zeros(DType.F32, 2);
        CPU.rmsNormBackward(dx2, dw2, f32(new float[] {1, 0}, 1, 2), x2, w2, rstd2);
        assertArrayEquals(new float[] {0.181019336f, -0.135764502f}, values(dx2), 1e-7f);
        assertArrayEquals(new float[] {0.848528137f, 0}, values(dw2), 1e-7f); // dw = dOut·n
    }

    @Test
    void layerNormBackwardMatchesFiniteDifferences() {
        var x = randn(1, DType.F32, R, C);
        var w = randn(2, DType.F32, C);
        var b = randn(3, DType.F32, C);
        float[] g = gaussian(4, R * C);
        var out = zeros(DType.F32, R, C);
        var mean = zeros(DType.F32, R);
        var rstd = zeros(DType.F32, R);
        CpuTesting.Loss loss = () -> {
            CPU.layerNorm(out, mean, rstd, x, w, b, EPS);
            return dotLoss(out, g);
        };
        loss.eval();
        var dOut = f32(g, R, C);
        var dx = zeros(DType.F32, R, C);
        var dw = zeros(DType.F32, C);
        var db = zeros(DType.F32, C);
        CPU.layerNormBackward(dx, dw, db, dOut, x, w, mean, rstd, false);
        assertGradient("layerNormBackward.dx[cpu,f32,x=(3,40)]", dx, x, loss);
        assertGradient("layerNormBackward.dWeight[cpu,f32,x=(3,40)]", dw, w, loss);
        assertGradient("layerNormBackward.dBias[cpu,f32,x=(3,40)]", db, b, loss);
    }

    @Test
    void layerNormBackwardAccumulatesWhereTheContractSays() {
        // dx: = without accumulate, += with it; dWeight, dBias always +=. Start every gradient at 1 and compare
        // against a fresh computation: the difference must be exactly the fresh value (+1 rounds once in float).
        var x = randn(5, DType.F32, R, C);
        var w = randn(6, DType.F32, C);
        var dOut = randn(7, DType.F32, R, C);
        var out = zeros(DType.F32, R, C);
        var mean = zeros(DType.F32, R);
        var rstd = zeros(DType.F32, R);
        CPU.layerNorm(out, mean, rstd, x, w, null, EPS);
        var dx = zeros(DType.F32, R, C);
        var dw = zeros(DType.F32, C);
        CPU.layerNormBackward(dx, dw, null, dOut, x, w, mean, rstd, false);
        float[] freshDx = values(dx), freshDw = values(dw);

        for (boolean accumulate : new boolean[] {false, true}) {
            CPU.fill(dx, 1);
            CPU.fill(dw, 1);
            CPU.layerNormBackward(dx, dw, null, dOut, x, w, mean, rstd, accumulate);
            float[] expectedDx = freshDx.clone(), expectedDw = freshDw.clone();
            for (int i = 0; i < expectedDw.length; i++) expectedDw[i] += 1;
            if (accumulate) for (int i = 0; i < expectedDx.length; i++) expectedDx[i] += 1;
            // dx is computed in double and added to 1 before one rounding; fresh + 1 rounds twice: ≤ 1 ulp apart.
            assertArrayEquals(expectedDx, values(dx), 5e-7f);
            assertArrayEquals(expectedDw, values(dw), 5e-7f);
        }
    }

    @Test
    void rmsNormHandValues() {
        // x = (3,4): mean(x²) = 12.5, rstd = 1/√12.5 = 0.282842712 (eps = 0); n = (0.848528137, 1.131370850);
        // weight (2, 0.5): out = (1.697056275, 0.565685425).
        var x = f32(new float[] {3, 4}, 1, 2);
        var w = f32(new float[] {2, 0.5f}, 2);
        var out = zeros(DType.F32, 1, 2);
        var rstd = zeros(DType.F32, 1);
        CPU.rmsNorm(out, rstd, x, w, 0);
        assertArrayEquals(new float[] {1.697056275f, 0.565685425f}, values(out), 2.4e-7f);
        assertArrayEquals(new float[] {0.282842712f}, values(rstd), 3e-8f);
    }

    @Test
    void rmsNormBf16RoundsTheNormalizedValueThenTheProduct() {
        // musubi: n = x·rstd in fp32, cast to bf16, times weight cast to bf16, product rounded to bf16.
        var x = randn(8, DType.BF16, R, C);
        var w = randn(9, DType.F32, C);
        var out = zeros(DType.BF16, R, C);
        var rstd = zeros(DType.F32, R);
        CPU.rmsNorm(out, rstd, x, w, EPS);
        float[] xv = values(x), wv = values(w), expected = new float[R * C];
        for (int r = 0; r < R; r++) {
            double sq = 0;
            for (int c = 0; c < C; c++) sq += (double) xv[r * C + c] * xv[r * C + c];
            double rs = 1 / Math.sqrt(sq / C + EPS);
            for (int c = 0; c < C; c++) {
                float n = Bf16.round((float) (xv[r * C + c] * rs));
                expected[r * C + c] = Bf16.round(n * Bf16.round(wv[c]));
            }
        }
        assertArrayEquals(expected, values(out), 0f);
    }

    @Test
    void rmsNormBackwardMatchesFiniteDifferences() {
        var x = randn(10, DType.F32, R, C);
        var w = randn(11, DType.F32, C);
        float[] g = gaussian(12, R * C);
        var out = zeros(DType.F32, R, C);
        var rstd = zeros(DType.F32, R);
        CpuTesting.Loss loss = () -> {
            CPU.rmsNorm(out, rstd, x, w, EPS);
            return dotLoss(out, g);
        };
        loss.eval();
        var dx = zeros(DType.F32, R, C);
        var dw = zeros(DType.F32, C);
        CPU.rmsNormBackward(dx, dw, f32(g, R, C), x, w, rstd);
        assertGradient("rmsNormBackward.dx[cpu,f32,x=(3,40)]", dx, x, loss);
        assertGradient("rmsNormBackward.dWeight[cpu,f32,x=(3,40)]", dw, w, loss);
    }

    @Test
    void layerNormBf16OutputIsTheRoundedF32Result() {
        var x = randn(13, DType.BF16, R, C);
        var outF32 = zeros(DType.F32, R, C);
        var outBf16 = zeros(DType.BF16, R, C);
        var mean = zeros(DType.F32, R);
        var rstd = zeros(DType.F32, R);
        CPU.layerNorm(outF32, mean, rstd, x, null, null, EPS);
        CPU.layerNorm(outBf16, mean, rstd, x, null, null, EPS);
        float[] expected = values(outF32);
        Bf16.roundInPlace(expected);
        assertArrayEquals(expected, values(outBf16), 0f);
    }

    @Test
    void layerNormIsStableForLargeMeans() {
        // (1e4+1, …, 1e4+4) are exact in f32 and normalize exactly like (1,2,3,4) (hand values above): the two-pass
        // double variance loses nothing, where a one-pass fp32 E[x²] − E[x]² would lose every digit (ulp(1e8) = 8).
        var x = f32(new float[] {10001, 10002, 10003, 10004}, 1, 4);
        var out = zeros(DType.F32, 1, 4);
        CPU.layerNorm(out, zeros(DType.F32, 1), zeros(DType.F32, 1), x, null, null, 0);
        assertArrayEquals(new float[] {-1.341640786f, -0.447213595f, 0.447213595f, 1.341640786f}, values(out), 2.4e-7f);
    }

    @Test
    void layerNormWithoutAffineAndBf16Statistics() {
        // No weight/bias (Wan's norm1, norm2, head norm), bf16 input and output: the gradient w.r.t. an F32 copy of x.
        var x = randn(14, DType.F32, R, C);
        float[] g = gaussian(15, R * C);
        var out = zeros(DType.F32, R, C);
        var mean = zeros(DType.F32, R);
        var rstd = zeros(DType.F32, R);
        CpuTesting.Loss loss = () -> {
            CPU.layerNorm(out, mean, rstd, x, null, null, EPS);
            return dotLoss(out, g);
        };
        loss.eval();
        var dx = zeros(DType.F32, R, C);
        CPU.layerNormBackward(dx, null, null, f32(g, R, C), x, null, mean, rstd, false);
        assertGradient("layerNormBackward.dx[cpu,f32,x=(3,40),no affine]", dx, x, loss);
        // bf16 dx is the rounded f32 dx.
        var dx16 = zeros(DType.BF16, R, C);
        CPU.layerNormBackward(dx16, null, null, f32(g, R, C), x, null, mean, rstd, false);
        float[] e = values(dx);
        Bf16.roundInPlace(e);
        assertArrayEquals(e, values(dx16), 0f);
    }

    @Test
    void argumentChecksNameTheProblem() {
        var x = zeros(DType.F32, R, C);
        var out = zeros(DType.F32, R, C);
        var rstd = zeros(DType.F32, R);
        var w = zeros(DType.F32, 41);
        assertMessage("rmsNorm: wrong element count of weight; got weight=(41) f32 (41 elements), expected 40 elements",
                () -> CPU.rmsNorm(out, rstd, x, w, EPS));
        var mean = zeros(DType.F32, 4);
        assertMessage("layerNorm: wrong element count of mean; got mean=(4) f32 (4 elements), expected 3 elements",
                () -> CPU.layerNorm(out, mean, rstd, x, null, null, EPS));
        var dw = zeros(DType.F32, C);
        assertMessage("layerNormBackward: dWeight given for a LayerNorm without weight; got dWeight=(40) f32 and "
                + "weight=null, expected dWeight=null",
                () -> CPU.layerNormBackward(out, dw, null, x, x, null, rstd, rstd, false));
    }

    /**
     * layerNormModulate is the fused LayerNorm (no affine) + modulate of Wan's adaLN (issue 11): the same bits as the
     * chain through an intermediate of out's dtype, for every x/out dtype mix, mean and rstd included. B = 2, L = 3,
     * C = 40 (ragged), mod (2, 6, 40) as a block's and the head's (2, 2, 40).
     */
    @Test
    void layerNormModulateIsTheChainBitForBit() {
        int b = 2, l = 3;
        for (int n : new int[] {6, 2}) {
            var mod = randn(41, DType.F32, b, n, C);
            int shift = n == 6 ? 3 : 0, scale = n == 6 ? 4 : 1;
            for (DType in : new DType[] {DType.F32, DType.BF16}) {
                for (DType outType : new DType[] {DType.F32, DType.BF16}) {
                    var x = randn(42, in, b, l, C);
                    var norm = zeros(outType, b, l, C);
                    var chain = zeros(outType, b, l, C);
                    var chainMean = zeros(DType.F32, b * l);
                    var chainRstd = zeros(DType.F32, b * l);
                    CPU.layerNorm(norm, chainMean, chainRstd, x, null, null, 1e-6f);
                    CPU.modulate(chain, norm, mod, shift, scale);
                    var fused = zeros(outType, b, l, C);
                    var mean = zeros(DType.F32, b * l);
                    var rstd = zeros(DType.F32, b * l);
                    CPU.layerNormModulate(fused, mean, rstd, x, mod, shift, scale, 1e-6f);
                    String label = "layerNormModulate x=" + in + " out=" + outType + " n=" + n;
                    assertArrayEquals(CpuModulationTest.bits(chain), CpuModulationTest.bits(fused), label);
                    assertArrayEquals(CpuModulationTest.bits(chainMean), CpuModulationTest.bits(mean), label + " mean");
                    assertArrayEquals(CpuModulationTest.bits(chainRstd), CpuModulationTest.bits(rstd), label + " rstd");
                }
            }
        }
    }

    /** layerNormModulateBackward is the fused modulateBackward + layerNormBackward: the chain's bits, = and +=. */
    @Test
    void layerNormModulateBackwardIsTheChainBitForBit() {
        int b = 2, l = 3;
        var mod = randn(43, DType.F32, b, 6, C);
        for (DType in : new DType[] {DType.F32, DType.BF16}) {
            for (DType grad : new DType[] {DType.F32, DType.BF16}) {
                for (boolean accumulate : new boolean[] {false, true}) {
                    var x = randn(44, in, b, l, C);
                    var mean = zeros(DType.F32, b * l);
                    var rstd = zeros(DType.F32, b * l);
                    CPU.layerNormModulate(zeros(in, b, l, C), mean, rstd, x, mod, 3, 4, 1e-6f);
                    var dOut = randn(45, in, b, l, C);
                    var chain = randn(46, grad, b, l, C);
                    var dn = zeros(grad, b, l, C);
                    CPU.modulateBackward(dn, dOut, mod, 4);
                    CPU.layerNormBackward(chain, null, null, dn, x, null, mean, rstd, accumulate);
                    var fused = randn(46, grad, b, l, C);
                    CPU.layerNormModulateBackward(fused, dOut, x, mean, rstd, mod, 4, accumulate);
                    String label = "layerNormModulateBackward x=" + in + " dx=" + grad + " accumulate=" + accumulate;
                    assertArrayEquals(CpuModulationTest.bits(chain), CpuModulationTest.bits(fused), label);
                }
            }
        }
    }

    @Test
    void layerNormModulateChecks() {
        var x = zeros(DType.BF16, 2, 3, C);
        var mod = zeros(DType.F32, 2, 6, C);
        var stats = zeros(DType.F32, 6);
        assertMessage("layerNormModulate: wrong element count of rstd; got rstd=(5) f32 (5 elements), expected 6 elements",
                () -> CPU.layerNormModulate(zeros(DType.BF16, 2, 3, C), stats, zeros(DType.F32, 5), x, mod, 0, 1, EPS));
        assertMessage("layerNormModulate: scaleIndex out of range; got scaleIndex=6, expected 0 <= scaleIndex < 6",
                () -> CPU.layerNormModulate(zeros(DType.BF16, 2, 3, C), stats, zeros(DType.F32, 6), x, mod, 0, 6, EPS));
        assertMessage("layerNormModulate (cpu): out overlaps x; got " + x + " and " + x + ", expected disjoint storage",
                () -> CPU.layerNormModulate(x, stats, zeros(DType.F32, 6), x, mod, 0, 1, EPS));
    }
}
