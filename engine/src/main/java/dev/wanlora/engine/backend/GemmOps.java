package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.OpChecks.GemmDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.*;

/**
 * The GEMM family of {@link Backend}: the matrix product, musubi's fp8 block (de)quantization, and the opt-in fp8
 * compute path ({@code --fp8_compute}: per-tensor E4M3 operands and their scaled GEMM). Contracts, their
 * checks ({@link Checked}, once for every backend) and the hooks a backend implements ({@link Kernels}); the recipe
 * is in {@link Backend}'s class comment.
 */
public interface GemmOps {

    /** This backend's checked GEMM ops; the defaults below forward here. */
    Checked<?> gemmOps();

    /**
     * c = alpha·op(a)·op(b) + beta·c (+ bias broadcast over rows when non-null), with op(m) = mᵀ when trans is set.
     * a, b, c are seen as 2-D (rows, cols); op(a) is (M, K), op(b) is (K, N), c is (M, N), bias (N).
     * With beta = 0, c's previous contents are ignored (NaN in c does not propagate). Accumulation is fp32.
     *
     * <p>The three uses in a Linear y = x·wᵀ + b with x (M, K), w (N, K):
     * forward {@code gemm(y, x, false, w, true, 1, 0, b)}; input grad {@code gemm(dx, dy, false, w, false, 1, 0|1, null)};
     * weight grad {@code gemm(dw, dy, true, x, false, 1, 1, null)}.
     */
    default void gemm(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta,
                      Tensor bias) {
        gemmOps().gemm(c, a, transA, b, transB, alpha, beta, bias);
    }

    /**
     * Dequantizes musubi's block-wise fp8 weight (spec §3.2): out[o, i] = bf16(bf16(wq[o, i]) · scale[o, i/64]).
     * wq (O, I) F8_E4M3, scale (O, I/64, 1) BF16 or F32 (the product is rounded to scale's dtype), out (O, I) BF16
     * or F32 (= overwrite).
     */
    default void dequantizeFp8(Tensor out, Tensor wq, Tensor scale) { gemmOps().dequantizeFp8(out, wq, scale); }

    /**
     * musubi's {@code --fp8_scaled} block quantizer, bit for bit {@code Fp8BlockQuantizer} (spec §3.2; its Javadoc has
     * the upstream lines): for each run of 64 input elements of a row, scale = max(dtype(max|w| / 448), dtype(1e-8))
     * computed in w's dtype (a NaN in the block makes the scale NaN, as torch's amax does), and
     * codes = e4m3(clamp(nan→0(w / scale), ±448)) rounded to nearest even. w (O, I) BF16, F16 or F32 with I % 64 == 0;
     * codes (O, I) F8_E4M3 (=); scale (O, I/64, 1) (=), BF16 for a BF16 w, F32 for F16 and F32 (holding the value
     * rounded to w's dtype, exact in F32). {@link #dequantizeFp8} inverts it the way musubi's patched Linear does.
     */
    default void quantizeFp8(Tensor codes, Tensor scale, Tensor w) { gemmOps().quantizeFp8(codes, scale, w); }

    /**
     * Per-tensor E4M3 quantization, the operand format of {@link #gemmFp8} ({@code --fp8_compute}; cuBLASLt's scalar
     * scale mode, which runs on every fp8 tensor-core GPU, compute capability 8.9 and 9.0): amax = max|x| over every
     * element (a NaN element is ignored, as CUDA's fmaxf does), scale = amax / 448 in fp32 (1 when amax is 0), and
     * codes = e4m3(clamp(x / scale, ±448)) rounded to nearest even (IEEE fp32 division; a NaN stays NaN). Saturating:
     * the clamp keeps the fp32 rounding of x / scale from leaving the format. The max is exact in any order, so the
     * result is deterministic. x (R, C) BF16 or F32; codes of x's shape F8_E4M3 (=); scale (1) F32 (=), the
     * dequantization factor: x ≈ scale · codes.
     */
    default void quantizeFp8Tensor(Tensor codes, Tensor scale, Tensor x) { gemmOps().quantizeFp8Tensor(codes, scale, x); }

    /**
     * Inverse of {@link #quantizeFp8Tensor}: out = out.dtype(fp32(codes · scale)) (the fp32 product of an e4m3 value and
     * an fp32 scale, rounded once to fp32 and then to out's dtype). codes F8_E4M3, scale (1) F32, out of codes' shape
     * BF16 or F32 (=).
     */
    default void dequantizeFp8Tensor(Tensor out, Tensor codes, Tensor scale) {
        gemmOps().dequantizeFp8Tensor(out, codes, scale);
    }

    /**
     * The fp8 forward of a Linear, y = (xScale · wScale) · (xCodes · wCodesᵀ) + bias, with the products of the e4m3
     * codes accumulated in fp32 or wider and the result rounded once to y's dtype. xCodes (M, K) and wCodes (N, K)
     * F8_E4M3 with per-tensor F32 scales (1) from {@link #quantizeFp8Tensor}; y (M, N) BF16 or F32 (=; the CUDA backend
     * takes BF16); bias (N) of y's dtype or null. K and N are multiples of 16 (cuBLASLt's fp8 kernels need 16-byte
     * aligned rows).
     */
    default void gemmFp8(Tensor y, Tensor xCodes, Tensor xScale, Tensor wCodes, Tensor wScale, Tensor bias) {
        gemmOps().gemmFp8(y, xCodes, xScale, wCodes, wScale, bias);
    }

    /** A backend's GEMM family, called by {@link Checked} with checked arguments of the backend's tensor type. */
    interface Kernels<T extends Tensor> {
        void gemm(T c, T a, boolean transA, T b, boolean transB, float alpha, float beta, T bias, GemmDims dims);
        void dequantizeFp8(T out, T wq, T scale, MatrixDims dims);
        void quantizeFp8(T codes, T scale, T w, MatrixDims dims);
        void quantizeFp8Tensor(T codes, T scale, T x, MatrixDims dims);
        void dequantizeFp8Tensor(T out, T codes, T scale, MatrixDims dims);
        void gemmFp8(T y, T xCodes, T xScale, T wCodes, T wScale, T bias, GemmDims dims);
    }

    /** The checks of every GEMM op (shapes, dtypes, ownership, aliasing), then the backend's {@link Kernels}. */
    final class Checked<T extends Tensor> {
        private final CheckedBackend<T> backend;
        private final Kernels<T> kernels;

        public Checked(CheckedBackend<T> backend, Kernels<T> kernels) {
            this.backend = backend;
            this.kernels = kernels;
        }

        public void gemm(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta,
                         Tensor bias) {
            String op = "gemm";
            requireActivation(op, "c", c);
            requireActivation(op, "a", a);
            requireActivation(op, "b", b);
            long m = transA ? a.shape().cols() : a.shape().rows();
            long k = transA ? a.shape().rows() : a.shape().cols();
            long kb = transB ? b.shape().cols() : b.shape().rows();
            long n = transB ? b.shape().rows() : b.shape().cols();
            if (k != kb) {
                throw new IllegalArgumentException(op + ": inner dims differ; got " + describe("a", a) + (transA ? "ᵀ" : "")
                        + " (K=" + k + ") and " + describe("b", b) + (transB ? "ᵀ" : "") + " (K=" + kb + "), expected equal K");
            }
            if (c.shape().rows() != m || c.shape().cols() != n) {
                throw new IllegalArgumentException(op + ": wrong shape of c; got " + describe("c", c) + ", expected c=("
                        + m + "," + n + ") for " + describe("a", a) + (transA ? "ᵀ" : "") + " and " + describe("b", b)
                        + (transB ? "ᵀ" : ""));
            }
            if (bias != null) {
                requireActivation(op, "bias", bias);
                requireElements(op, "bias", bias, n);
            }
            T tc = backend.own(op, "c", c), ta = backend.own(op, "a", a), tb = backend.own(op, "b", b);
            T tbias = backend.own(op, "bias", bias);
            AliasChecks<T> alias = backend.alias();
            alias.disjoint(op, "c", tc, "a", ta);
            alias.disjoint(op, "c", tc, "b", tb);
            alias.disjoint(op, "c", tc, "bias", tbias);
            kernels.gemm(tc, ta, transA, tb, transB, alpha, beta, tbias, new GemmDims(m, n, k));
        }

        public void dequantizeFp8(Tensor out, Tensor wq, Tensor scale) {
            String op = "dequantizeFp8";
            requireDType(op, "wq", wq, DType.F8_E4M3);
            requireRank(op, "wq", wq, 2, "(O, I)");
            requireActivation(op, "out", out);
            requireSameShape(op, "out", out, "wq", wq);
            requireDType(op, "scale", scale, DType.BF16, DType.F32);
            long o = wq.shape().dim(0), i = wq.shape().dim(1);
            requireBlocksOf64(op, "wq", wq, i);
            requireShape(op, "scale", scale, Shape.of(o, i / 64, 1));
            T to = backend.own(op, "out", out), tw = backend.own(op, "wq", wq), ts = backend.own(op, "scale", scale);
            backend.alias().disjoint(op, "out", to, "wq", tw);
            backend.alias().disjoint(op, "out", to, "scale", ts);
            kernels.dequantizeFp8(to, tw, ts, new MatrixDims(o, i));
        }

        public void quantizeFp8(Tensor codes, Tensor scale, Tensor w) {
            String op = "quantizeFp8";
            requireDType(op, "w", w, DType.BF16, DType.F16, DType.F32);
            requireRank(op, "w", w, 2, "(O, I)");
            requireDType(op, "codes", codes, DType.F8_E4M3);
            requireSameShape(op, "codes", codes, "w", w);
            long o = w.shape().dim(0), i = w.shape().dim(1);
            requireBlocksOf64(op, "w", w, i);
            requireDType(op, "scale", scale, w.dtype() == DType.BF16 ? DType.BF16 : DType.F32);
            requireShape(op, "scale", scale, Shape.of(o, i / 64, 1));
            T tc = backend.own(op, "codes", codes), ts = backend.own(op, "scale", scale), tw = backend.own(op, "w", w);
            AliasChecks<T> alias = backend.alias();
            alias.disjoint(op, "codes", tc, "w", tw);
            alias.disjoint(op, "scale", ts, "w", tw);
            alias.disjoint(op, "codes", tc, "scale", ts);
            kernels.quantizeFp8(tc, ts, tw, new MatrixDims(o, i));
        }

        public void quantizeFp8Tensor(Tensor codes, Tensor scale, Tensor x) {
            String op = "quantizeFp8Tensor";
            requireActivation(op, "x", x);
            requireDType(op, "codes", codes, DType.F8_E4M3);
            requireSameShape(op, "codes", codes, "x", x);
            requireScalarF32(op, "scale", scale);
            T tc = backend.own(op, "codes", codes), ts = backend.own(op, "scale", scale), tx = backend.own(op, "x", x);
            AliasChecks<T> alias = backend.alias();
            alias.disjoint(op, "codes", tc, "x", tx);
            alias.disjoint(op, "scale", ts, "x", tx);
            alias.disjoint(op, "codes", tc, "scale", ts);
            kernels.quantizeFp8Tensor(tc, ts, tx, new MatrixDims(x.shape().rows(), x.shape().cols()));
        }

        public void dequantizeFp8Tensor(Tensor out, Tensor codes, Tensor scale) {
            String op = "dequantizeFp8Tensor";
            requireDType(op, "codes", codes, DType.F8_E4M3);
            requireActivation(op, "out", out);
            requireSameShape(op, "out", out, "codes", codes);
            requireScalarF32(op, "scale", scale);
            T to = backend.own(op, "out", out), tc = backend.own(op, "codes", codes), ts = backend.own(op, "scale", scale);
            backend.alias().disjoint(op, "out", to, "codes", tc);
            backend.alias().disjoint(op, "out", to, "scale", ts);
            kernels.dequantizeFp8Tensor(to, tc, ts, new MatrixDims(codes.shape().rows(), codes.shape().cols()));
        }

        public void gemmFp8(Tensor y, Tensor xCodes, Tensor xScale, Tensor wCodes, Tensor wScale, Tensor bias) {
            String op = "gemmFp8";
            requireDType(op, "xCodes", xCodes, DType.F8_E4M3);
            requireDType(op, "wCodes", wCodes, DType.F8_E4M3);
            requireRank(op, "wCodes", wCodes, 2, "(N, K)");
            requireScalarF32(op, "xScale", xScale);
            requireScalarF32(op, "wScale", wScale);
            requireActivation(op, "y", y);
            long m = xCodes.shape().rows(), k = xCodes.shape().cols(), n = wCodes.shape().dim(0);
            if (wCodes.shape().dim(1) != k) {
                throw new IllegalArgumentException(op + ": inner dims differ; got " + describe("xCodes", xCodes) + " and "
                        + describe("wCodes", wCodes) + ", expected wCodes=(N," + k + ")");
            }
            if (k % 16 != 0 || n % 16 != 0) {
                throw new IllegalArgumentException(op + ": K and N must be multiples of 16 (cuBLASLt's fp8 kernels need"
                        + " 16-byte aligned rows); got " + describe("xCodes", xCodes) + ", " + describe("wCodes", wCodes)
                        + ", expected K % 16 == 0 and N % 16 == 0");
            }
            if (y.shape().rows() != m || y.shape().cols() != n) {
                throw new IllegalArgumentException(op + ": wrong shape of y; got " + describe("y", y) + ", expected y=("
                        + m + "," + n + ") for " + describe("xCodes", xCodes) + " and " + describe("wCodes", wCodes));
            }
            if (bias != null) {
                requireDType(op, "bias", bias, y.dtype());
                requireElements(op, "bias", bias, n);
            }
            T ty = backend.own(op, "y", y), txc = backend.own(op, "xCodes", xCodes), txs = backend.own(op, "xScale", xScale);
            T twc = backend.own(op, "wCodes", wCodes), tws = backend.own(op, "wScale", wScale), tb = backend.own(op, "bias", bias);
            AliasChecks<T> alias = backend.alias();
            alias.disjoint(op, "y", ty, "xCodes", txc);
            alias.disjoint(op, "y", ty, "xScale", txs);
            alias.disjoint(op, "y", ty, "wCodes", twc);
            alias.disjoint(op, "y", ty, "wScale", tws);
            alias.disjoint(op, "y", ty, "bias", tb);
            kernels.gemmFp8(ty, txc, txs, twc, tws, tb, new GemmDims(m, n, k));
        }

        private static void requireBlocksOf64(String op, String name, Tensor t, long inputDim) {
            if (inputDim % 64 != 0) {
                throw new IllegalArgumentException(op + ": input dim is not a multiple of the block size 64; got "
                        + describe(name, t) + ", expected I % 64 == 0");
            }
        }
    }
}
