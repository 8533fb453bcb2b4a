package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.Backend.AdamWStep;
import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * CUDA vs CPU for the training-step ops: counter-based noise, the flow-matching input, the MSE loss, the gradient
 * norm, the clip coefficient and AdamW. The latent of the largest 14B bucket is 16×21×60×104 (2.1M elements).
 */
@RequiresCuda
class CudaTrainingOpsParityTest {
    private static final Shape[] LATENTS = {Shape.of(1, 3, 77), Shape.of(2, 16, 3, 8, 12), Shape.of(1, 16, 21, 60, 104)};

    /**
     * The noise is a pure function of (seed, counter), so both backends must agree bit for bit except where CUDA's
     * float64 log/cos (≤ 1 ulp) and StrictMath's disagree across a float rounding boundary: ≈ 2⁻²⁷ per element, an
     * expected 0.02 mismatches over 2.1M elements. The test allows none.
     */
    @Test
    void gaussianNoiseMatchesCounterRng() {
        for (DType t : new DType[] {F32, BF16}) {
            for (Shape s : LATENTS) {
                for (long[] so : new long[][] {{2025, 0}, {-1L, (1L << 32) - 5}}) { // the second crosses the counter's 32-bit word
                    Pair out = output(t, s);
                    CPU.gaussianNoise(out.cpu(), so[0], so[1]);
                    cuda().gaussianNoise(out.cuda(), so[0], so[1]);
                    checkExact(label("gaussianNoise(seed=" + so[0] + ",offset=" + so[1] + ")", t, "out", s), out);
                    closeAll(out);
                }
            }
        }
    }

    @Test
    void flowMatchingInputAndLoss() {
        DType[][] io = {{BF16, BF16}, {F32, F32}, {BF16, F32}};
        for (DType[] d : io) {
            for (Shape s : LATENTS) {
                long b = s.dim(0);
                float[] tv = new float[(int) b];
                for (int i = 0; i < b; i++) tv[i] = 0.3f + 0.4f * i;
                Pair x0 = random(d[0], s, 1, 1), noise = random(d[0], s, 2, 1), t = of(F32, Shape.of(b), tv);
                Pair xt = output(d[1], s), target = output(d[1], s);
                CPU.flowMatchingInput(xt.cpu(), target.cpu(), x0.cpu(), noise.cpu(), t.cpu());
                cuda().flowMatchingInput(xt.cuda(), target.cuda(), x0.cuda(), noise.cuda(), t.cuda());
                check(label("flowMatchingInput.xt", d[1], "x0", s), xt);
                check(label("flowMatchingInput.target", d[1], "x0", s), target);

                // loss: fp32 per-thread sums of ≤ 9 squares, an fp32 block tree, float64 over the blocks: ≲ 1e-6 relative.
                Pair loss = output(F32, Shape.of(1)), dPred = output(d[1], s);
                CPU.mseLoss(loss.cpu(), dPred.cpu(), xt.cpu(), target.cpu(), 0.5f);
                cuda().mseLoss(loss.cuda(), dPred.cuda(), xt.cuda(), target.cuda(), 0.5f);
                check(label("mseLoss.loss", F32, "pred", s), loss);
                check(label("mseLoss.dPred", d[1], "pred", s), dPred);
                closeAll(x0, noise, t, xt, target, loss, dPred);
            }
        }
    }

    @Test
    void lossIsDeterministic() {
        Shape s = LATENTS[2];
        Pair pred = random(BF16, s, 3, 1), target = random(BF16, s, 4, 1), dPred = output(BF16, s), loss = output(F32, Shape.of(1));
        float first = Float.NaN;
        for (int run = 0; run < 5; run++) {
            cuda().mseLoss(loss.cuda(), dPred.cuda(), pred.cuda(), target.cuda(), 1);
            float v = cuda().toFloats(loss.cuda())[0];
            if (run == 0) first = v;
            assertEquals(Float.floatToIntBits(first), Float.floatToIntBits(v), "run " + run + " of the same loss");
        }
        System.out.println("mseLoss[cuda] 5 runs bitwise equal: " + first);
        closeAll(pred, target, dPred, loss);
    }

    @Test
    void gradientNormAndClip() {
        for (DType t : new DType[] {F32, BF16}) {
            for (Shape s : new Shape[] {Shape.of(77), Shape.of(32, 5120), Shape.of(3744, 5120)}) {
                Pair g = random(t, s, 5, 0.01), norm = of(F32, Shape.of(1), new float[] {0.25f});
                CPU.sumOfSquares(norm.cpu(), g.cpu());
                cuda().sumOfSquares(norm.cuda(), g.cuda());
                check(label("sumOfSquares(+=)", F32, "g", s), norm);
                for (float maxNorm : new float[] {0f, 0.1f, 1e6f}) {
                    Pair clip = output(F32, Shape.of(1));
                    CPU.clipCoefficient(clip.cpu(), norm.cpu(), maxNorm);
                    cuda().clipCoefficient(clip.cuda(), norm.cuda(), maxNorm);
                    check(label("clipCoefficient(maxNorm=" + maxNorm + ")", F32, "norm", Shape.of(1)), clip);
                    closeAll(clip);
                }
                closeAll(g, norm);
            }
        }
    }

    /** The kernel mirrors CpuOptim.adamw in float64 operation for operation, so three steps agree bit for bit. */
    @Test
    void adamwIsExact() {
        for (Shape s : new Shape[] {Shape.of(77), Shape.of(32, 5120)}) {
            Pair p = random(F32, s, 6, 0.02), m = zeros(F32, s), v = zeros(F32, s), scale = of(F32, Shape.of(1), new float[] {0.7f});
            for (long step = 1; step <= 3; step++) {
                Pair g = random(F32, s, 7 + step, 0.01);
                AdamWStep h = new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, step);
                CPU.adamw(p.cpu(), g.cpu(), m.cpu(), v.cpu(), scale.cpu(), h);
                cuda().adamw(p.cuda(), g.cuda(), m.cuda(), v.cuda(), scale.cuda(), h);
                closeAll(g);
            }
            checkExact(label("adamw(3 steps).param", F32, "p", s), p);
            checkExact(label("adamw(3 steps).m", F32, "p", s), m);
            checkExact(label("adamw(3 steps).v", F32, "p", s), v);
            closeAll(p, m, v, scale);
        }
    }

    @Test
    void adamw8bitSaysWhatIsMissing() {
        var e = org.junit.jupiter.api.Assertions.assertThrows(UnsupportedOperationException.class, () -> {
            CudaTensor p = cuda().allocate(F32, Shape.of(8));
            cuda().adamw8bit(p, p, p, p, p, p, p, new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0, 1));
        });
        assertTrue(e.getMessage().startsWith("adamw8bit (cuda)"), e.getMessage());
    }
}
