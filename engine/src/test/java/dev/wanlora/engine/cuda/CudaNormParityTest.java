package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;

/**
 * CUDA vs CPU for LayerNorm and RMSNorm, forward and backward, over ragged tiny rows (3×40), odd rows (5×37, the
 * scalar path), the real 14B shape (3744×5120) and, for the LayerNorm forward, the largest bucket's 32760×5120.
 * Statistics and parameter gradients are F32 (bound 1e-5: row sums over ≤ 8192 terms and column sums over ≤ 32760
 * rows in fp32 stay ≲ 1e-6 relative); activations use their dtype's bound (see {@link Parity}).
 */
@RequiresCuda
class CudaNormParityTest {
    private static final DType[][] IO = {{BF16, BF16}, {F32, F32}, {BF16, F32}};
    private static final Shape[] ROWS = {Shape.of(3, 40), Shape.of(5, 37), Shape.of(3744, 5120)};
    private static final float EPS = 1e-6f;

    @Test
    void layerNorm() {
        for (DType[] io : IO) {
            for (Shape s : ROWS) {
                for (DType affine : new DType[] {null, BF16, F32}) {
                    String tag = affine == null ? ",no affine" : ",affine " + affine;
                    Pair x = random(io[0], s, 1, 2), out = output(io[1], s);
                    Pair w = affine == null ? null : random(affine, Shape.of(s.cols()), 2, 1);
                    Pair b = affine == null ? null : random(affine, Shape.of(s.cols()), 3, 1);
                    Pair mean = output(F32, Shape.of(s.rows())), rstd = output(F32, Shape.of(s.rows()));
                    CPU.layerNorm(out.cpu(), mean.cpu(), rstd.cpu(), x.cpu(), w == null ? null : w.cpu(), b == null ? null : b.cpu(), EPS);
                    cuda().layerNorm(out.cuda(), mean.cuda(), rstd.cuda(), x.cuda(), w == null ? null : w.cuda(),
                            b == null ? null : b.cuda(), EPS);
                    check(label("layerNorm", io[1], "x", s) + tag, out);
                    check(label("layerNorm.mean", F32, "x", s), mean);
                    check(label("layerNorm.rstd", F32, "x", s), rstd);

                    // Backward from each backend's own saved statistics (equal to ~1e-7), accumulating into dx and into f32 parameter grads.
                    Pair dOut = random(io[0], s, 4, 1), dx = random(io[1], s, 5, 1);
                    Pair dw = affine == null ? null : random(F32, Shape.of(s.cols()), 6, 1);
                    Pair db = affine == null ? null : random(F32, Shape.of(s.cols()), 7, 1);
                    CPU.layerNormBackward(dx.cpu(), dw == null ? null : dw.cpu(), db == null ? null : db.cpu(), dOut.cpu(), x.cpu(),
                            w == null ? null : w.cpu(), mean.cpu(), rstd.cpu(), true);
                    cuda().layerNormBackward(dx.cuda(), dw == null ? null : dw.cuda(), db == null ? null : db.cuda(), dOut.cuda(),
                            x.cuda(), w == null ? null : w.cuda(), mean.cuda(), rstd.cuda(), true);
                    check(label("layerNormBackward.dx(+=)", io[1], "x", s) + tag, dx);
                    if (dw != null) {
                        check(label("layerNormBackward.dWeight", F32, "x", s), dw);
                        check(label("layerNormBackward.dBias", F32, "x", s), db);
                    }
                    closeAll(x, out, w, b, mean, rstd, dOut, dx, dw, db);
                }
            }
        }
    }

    @Test
    void layerNormLargestBucket() {
        Shape s = Shape.of(32760, 5120);
        Pair x = random(BF16, s, 8, 3), out = output(BF16, s);
        Pair mean = output(F32, Shape.of(s.rows())), rstd = output(F32, Shape.of(s.rows()));
        CPU.layerNorm(out.cpu(), mean.cpu(), rstd.cpu(), x.cpu(), null, null, EPS);
        cuda().layerNorm(out.cuda(), mean.cuda(), rstd.cuda(), x.cuda(), null, null, EPS);
        check(label("layerNorm", BF16, "x", s), out);
        check(label("layerNorm.rstd", F32, "x", s), rstd);
        closeAll(x, out, mean, rstd);
    }

    @Test
    void rmsNorm() {
        for (DType[] io : IO) {
            for (Shape s : ROWS) {
                for (DType wType : new DType[] {BF16, F32}) {
                    Pair x = random(io[0], s, 11, 2), w = random(wType, Shape.of(s.cols()), 12, 1), out = output(io[1], s);
                    Pair rstd = output(F32, Shape.of(s.rows()));
                    CPU.rmsNorm(out.cpu(), rstd.cpu(), x.cpu(), w.cpu(), EPS);
                    cuda().rmsNorm(out.cuda(), rstd.cuda(), x.cuda(), w.cuda(), EPS);
                    check(label("rmsNorm", io[1], "x", s) + ",w=" + wType, out);
                    check(label("rmsNorm.rstd", F32, "x", s), rstd);

                    Pair dOut = random(io[0], s, 13, 1), dx = output(io[1], s), dw = random(F32, Shape.of(s.cols()), 14, 1);
                    CPU.rmsNormBackward(dx.cpu(), dw.cpu(), dOut.cpu(), x.cpu(), w.cpu(), rstd.cpu());
                    cuda().rmsNormBackward(dx.cuda(), dw.cuda(), dOut.cuda(), x.cuda(), w.cuda(), rstd.cuda());
                    check(label("rmsNormBackward.dx", io[1], "x", s), dx);
                    check(label("rmsNormBackward.dWeight(+=)", F32, "x", s), dw);
                    // Frozen weight: no dWeight, one row per block.
                    cuda().rmsNormBackward(dx.cuda(), null, dOut.cuda(), x.cuda(), w.cuda(), rstd.cuda());
                    check(label("rmsNormBackward.dx(frozen w)", io[1], "x", s), dx);
                    closeAll(x, w, out, rstd, dOut, dx, dw);
                }
            }
        }
    }
}
