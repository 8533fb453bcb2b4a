package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.Backend.AdafactorStep;
import dev.wanlora.engine.backend.Backend.ProdigyStep;
import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.F32;

/**
 * CUDA vs CPU for Prodigy's three passes and Adafactor, over several steps on a ragged shape and LoRA shapes of the
 * 14B model (rank 16 × 5120 and 5120 × 16, rank 16 × 13824).
 *
 * <p>Tolerance: the kernels repeat the CPU's float64 elementwise arithmetic with correctly rounded intrinsics; only the
 * order of the float64 sums differs (fixed grid vs the CPU's chunks), ≲ 1e-15 relative, which changes a rounded F32
 * scalar (d, d_numerator, a row factor, the RMS) by at most 1 ulp (6e-8) now and then. Each such flip moves the
 * values it scales by 6e-8 relative, so relL2 ≤ 1e-6 over 4 steps leaves ≥ 4× headroom; a wrong index or formula is
 * O(1).
 */
@RequiresCuda
class CudaProdigyAdafactorParityTest {
    private static final double BOUND = 1e-6;

    @Test
    void prodigyMatchesCpu() {
        for (Shape s : new Shape[] {Shape.of(77), Shape.of(16, 5120), Shape.of(5120, 16)}) {
            for (boolean variant : new boolean[] {false, true}) {
                Pair p = random(F32, s, 6, 0.02), p0 = zeros(F32, s), m = zeros(F32, s), v = zeros(F32, s), sum = zeros(F32, s);
                Pair state = of(F32, Shape.of(Backend.PRODIGY_STATE_SIZE), new float[] {1e-6f, 1e-6f, 0, 0, 0, 0, 0, 0});
                Pair scale = of(F32, Shape.of(1), new float[] {0.7f});
                // defaults, or: coupled weight decay, bias correction, safeguard warm-up, d_coef 2, growth 1.5
                ProdigyStep h = variant
                        ? new ProdigyStep(1f, 0.9f, 0.99f, (float) Math.sqrt(0.99), 1e-8f, 0.01f, false, true, true, 1e-6f, 2f, 1.5f)
                        : new ProdigyStep(1f, 0.9f, 0.999f, (float) Math.sqrt(0.999), 1e-8f, 0f, true, false, false, 1e-6f, 1f,
                        Float.POSITIVE_INFINITY);
                for (int step = 1; step <= 4; step++) {
                    Pair g = random(F32, s, 7 + step, 0.01);
                    CPU.prodigyAccumulate(p.cpu(), g.cpu(), p0.cpu(), m.cpu(), v.cpu(), sum.cpu(), scale.cpu(), state.cpu(), h);
                    CPU.prodigyAdapt(state.cpu(), h);
                    CPU.prodigyUpdate(p.cpu(), g.cpu(), m.cpu(), v.cpu(), scale.cpu(), state.cpu(), h);
                    cuda().prodigyAccumulate(p.cuda(), g.cuda(), p0.cuda(), m.cuda(), v.cuda(), sum.cuda(), scale.cuda(),
                            state.cuda(), h);
                    cuda().prodigyAdapt(state.cuda(), h);
                    cuda().prodigyUpdate(p.cuda(), g.cuda(), m.cuda(), v.cuda(), scale.cuda(), state.cuda(), h);
                    closeAll(g);
                }
                String tag = variant ? "prodigy(4 steps, variant)" : "prodigy(4 steps)";
                check(label(tag + ".param", F32, "p", s), p, BOUND);
                check(label(tag + ".exp_avg", F32, "p", s), m, BOUND);
                check(label(tag + ".exp_avg_sq", F32, "p", s), v, BOUND);
                check(label(tag + ".s", F32, "p", s), sum, BOUND);
                checkExact(label(tag + ".p0", F32, "p", s), p0);
                check(label(tag + ".d,d_max,d_numerator,k", F32, "state", s), state.view(0, Shape.of(4)), BOUND);
                closeAll(p, p0, m, v, sum, state, scale);
            }
        }
    }

    @Test
    void adafactorMatchesCpu() {
        for (Shape s : new Shape[] {Shape.of(77), Shape.of(3, 40), Shape.of(16, 5120), Shape.of(5120, 16), Shape.of(16, 13824)}) {
            for (boolean explicitLr : new boolean[] {false, true}) {
                boolean matrix = s.rank() == 2;
                Pair p = random(F32, s, 16, 0.02), m = explicitLr ? zeros(F32, s) : null;
                Pair row = matrix ? zeros(F32, Shape.of(s.dim(0))) : null, col = matrix ? zeros(F32, Shape.of(s.dim(1))) : null;
                Pair v = matrix ? null : zeros(F32, s), scale = of(F32, Shape.of(1), new float[] {0.7f});
                for (long step = 1; step <= 4; step++) {
                    Pair g = random(F32, s, 17 + step, 0.01);
                    // musubi's default (relative step, parameter scale), or lr 1e-3 with beta1 0.9, weight decay, clip 0.5
                    AdafactorStep h = explicitLr
                            ? new AdafactorStep(1e-3f, step, 1e-30f, 1e-3f, 0.5f, -0.8f, 0.9f, 0.01f, false, false, false)
                            : new AdafactorStep(0f, step, 1e-30f, 1e-3f, 1f, -0.8f, Float.NaN, 0f, true, true, false);
                    CPU.adafactor(p.cpu(), g.cpu(), m == null ? null : m.cpu(), row == null ? null : row.cpu(),
                            col == null ? null : col.cpu(), v == null ? null : v.cpu(), scale.cpu(), h);
                    cuda().adafactor(p.cuda(), g.cuda(), m == null ? null : m.cuda(), row == null ? null : row.cuda(),
                            col == null ? null : col.cuda(), v == null ? null : v.cuda(), scale.cuda(), h);
                    closeAll(g);
                }
                String tag = explicitLr ? "adafactor(4 steps, lr, beta1)" : "adafactor(4 steps, relative)";
                check(label(tag + ".param", F32, "p", s), p, BOUND);
                if (m != null) check(label(tag + ".exp_avg", F32, "p", s), m, BOUND);
                if (row != null) check(label(tag + ".exp_avg_sq_row", F32, "p", s), row, BOUND);
                if (col != null) check(label(tag + ".exp_avg_sq_col", F32, "p", s), col, BOUND);
                if (v != null) check(label(tag + ".exp_avg_sq", F32, "p", s), v, BOUND);
                closeAll(p, m, row, col, v, scale);
            }
        }
    }
}
