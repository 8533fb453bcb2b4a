package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;

/**
 * cuBLASLt GEMM vs the CPU's float64 GEMM on the same (bf16 or f32) inputs. f32 × f32 runs in true fp32 (no TF32):
 * K ≤ 5120 products summed in fp32 give ≲ √K·2⁻²⁴ ≈ 4e-6 relative, under the F32 bound 1e-5. bf16 inputs with fp32
 * accumulation: an f32 output sees the same ≲ 4e-6; a bf16 output adds one rounding on each side (BF16 bound).
 * The real-size GEMMs (a 14B block's q/k/v/o and ffn at L = 3744) run in full on the GPU; the CPU recomputes 64
 * rows of them, taken from a row view of the activation, which is also the GPU's input.
 */
@RequiresCuda
class CudaGemmParityTest {
    private static final DType[][] TYPES = {{BF16, BF16}, {BF16, F32}, {F32, F32}}; // {a and b, c}

    /** c = alpha·op(a)·op(b) + beta·c (+ bias) for every transpose combination on a ragged tiny problem. */
    @Test
    void tinyAllLayouts() {
        int m = 3, k = 40, n = 77;
        for (DType[] t : TYPES) {
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    for (boolean withBias : new boolean[] {false, true}) {
                        Pair a = random(t[0], ta ? Shape.of(k, m) : Shape.of(m, k), 1, 1);
                        Pair b = random(t[0], tb ? Shape.of(n, k) : Shape.of(k, n), 2, 1);
                        Pair c = random(t[1], Shape.of(m, n), 3, 1);
                        Pair bias = withBias ? random(t[1], Shape.of(n), 4, 1) : null;
                        CPU.gemm(c.cpu(), a.cpu(), ta, b.cpu(), tb, 0.5f, 0.75f, bias == null ? null : bias.cpu());
                        cuda().gemm(c.cuda(), a.cuda(), ta, b.cuda(), tb, 0.5f, 0.75f, bias == null ? null : bias.cuda());
                        check(label("gemm" + (ta ? "T" : "N") + (tb ? "T" : "N") + (withBias ? "+bias" : ""), t[1], "a", a.shape())
                                + "(" + t[0] + ")", c);
                        closeAll(a, b, c, bias);
                    }
                }
            }
        }
    }

    /** beta = 0 ignores c, even when it holds NaN. */
    @Test
    void betaZeroIgnoresNaN() {
        Pair a = random(BF16, Shape.of(64, 128), 5, 1), b = random(BF16, Shape.of(96, 128), 6, 1), c = output(BF16, Shape.of(64, 96));
        CPU.gemm(c.cpu(), a.cpu(), false, b.cpu(), true, 1, 0, null);
        cuda().gemm(c.cuda(), a.cuda(), false, b.cuda(), true, 1, 0, null);
        check(label("gemmNT(beta=0,c=NaN)", BF16, "a", a.shape()), c);
        closeAll(a, b, c);
    }

    /** The Linear layers of a Wan2.1-14B block at L = 3744: forward y = x·wᵀ (+ b), input grad dx = dy·w. */
    @Test
    void realBlockShapes() {
        long l = 3744, rows = 64;
        long[][] kn = {{5120, 5120}, {5120, 13824}, {13824, 5120}}; // q/k/v/o, ffn.0, ffn.2
        for (long[] s : kn) {
            long k = s[0], n = s[1];
            Pair x = random(BF16, Shape.of(l, k), 11, 1), w = random(BF16, Shape.of(n, k), 12, 1 / Math.sqrt(k));
            Pair bias = random(BF16, Shape.of(n), 13, 0.1);
            CudaTensor y = cuda().allocate(BF16, Shape.of(l, n));
            cuda().gemm(y, x.cuda(), false, w.cuda(), true, 1, 0, bias.cuda());
            Pair yRows = output(BF16, Shape.of(rows, n));
            cuda().copy(yRows.cuda(), y.view(0, Shape.of(rows, n)));
            CPU.gemm(yRows.cpu(), x.cpu().view(0, Shape.of(rows, k)), false, w.cpu(), true, 1, 0, bias.cpu());
            check(label("gemmNT+bias(first " + rows + " rows)", BF16, "x", x.shape()) + ",w=" + w.shape(), yRows);
            // dx = dy·w: dy (L, n) · w (n, k).
            Pair dy = random(BF16, Shape.of(l, n), 14, 1);
            CudaTensor dx = cuda().allocate(BF16, Shape.of(l, k));
            cuda().gemm(dx, dy.cuda(), false, w.cuda(), false, 1, 0, null);
            Pair dxRows = output(BF16, Shape.of(rows, k));
            cuda().copy(dxRows.cuda(), dx.view(0, Shape.of(rows, k)));
            CPU.gemm(dxRows.cpu(), dy.cpu().view(0, Shape.of(rows, n)), false, w.cpu(), false, 1, 0, null);
            check(label("gemmNN(first " + rows + " rows)", BF16, "dy", dy.shape()) + ",w=" + w.shape(), dxRows);
            y.close();
            dx.close();
            closeAll(x, w, bias, yRows, dy, dxRows);
        }
    }

    /** A LoRA weight gradient: dA (r, k) += dHᵀ (r, L) · x (L, k) with f32 accumulation into an f32 gradient. */
    @Test
    void loraWeightGradient() {
        long l = 3744, r = 32, k = 5120;
        Pair dh = random(F32, Shape.of(l, r), 21, 1), x = random(F32, Shape.of(l, k), 22, 1), dA = random(F32, Shape.of(r, k), 23, 1);
        CPU.gemm(dA.cpu(), dh.cpu(), true, x.cpu(), false, 1, 1, null);
        cuda().gemm(dA.cuda(), dh.cuda(), true, x.cuda(), false, 1, 1, null);
        check(label("gemmTN(+=)", F32, "dH", dh.shape()), dA);
        closeAll(dh, x, dA);
    }
}
