package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.*;

/**
 * The attention family of {@link Backend}: Wan's 3D RoPE, flash attention forward and backward, and umT5's attention
 * with a relative-position bias. Contracts, their checks ({@link Checked}, once for every backend) and the hooks a
 * backend implements ({@link Kernels}); the recipe is in {@link Backend}'s class comment.
 */
public interface AttentionOps {

    /** This backend's checked attention ops; the defaults below forward here. */
    Checked<?> attentionOps();

    /**
     * Interleaved-pair rotary embedding (Wan's 3D RoPE; the table is built by {@code Rope3d}): for each token l,
     * head h and pair j, (a, b) = (x[l, h·D + 2j], x[l, h·D + 2j + 1]) becomes
     * (a·cos[l,j] − b·sin[l,j], a·sin[l,j] + b·cos[l,j]). x, out (B, L, N·D) (out may be x); cos, sin (L, D/2) F32.
     */
    default void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int numHeads) {
        attentionOps().rope(out, x, cos, sin, numHeads);
    }

    /** Backward of {@link #rope}: the inverse rotation (angle → −angle) applied to dOut; dx may be dOut. */
    default void ropeBackward(Tensor dx, Tensor dOut, Tensor cos, Tensor sin, int numHeads) {
        attentionOps().ropeBackward(dx, dOut, cos, sin, numHeads);
    }

    /**
     * Multi-head attention without mask: out = softmax(q·kᵀ/√D)·v per batch and head. q, out (B, Lq, N·D);
     * k, v (B, Lk, N·D); lse (B, N, Lq) F32 = log Σ exp(scores) saved for backward (=).
     */
    default void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int numHeads) {
        attentionOps().attention(out, lse, q, k, v, numHeads);
    }

    /** Backward of {@link #attention}: dq, dk, dv overwritten. */
    default void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v,
                                   Tensor out, Tensor lse, int numHeads) {
        attentionOps().attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, numHeads);
    }

    /**
     * T5 attention: softmax over unmasked keys of q·kᵀ + bias, without 1/√D scaling, then ·v, per batch and head:
     * s_ij = q_i·k_j + bias[h, i, j] for keyMask[b, j] ≠ 0; out_i = Σ_j softmax(s_i)_j·v_j (fp32 softmax and
     * accumulation). Masked keys get weight exactly 0 (musubi adds finfo.min, whose exp underflows to 0). A query row
     * whose keys are all masked gets zeros. q, out (B, Lq, N·D); k, v (B, Lk, N·D); bias (N, Lq, Lk), shared by the
     * batch; keyMask (B, Lk) F32, 1 for real tokens and 0 for padding.
     */
    default void attentionWithBias(Tensor out, Tensor q, Tensor k, Tensor v, Tensor bias, Tensor keyMask,
                                   int numHeads) {
        attentionOps().attentionWithBias(out, q, k, v, bias, keyMask, numHeads);
    }

    /** A backend's attention family, called by {@link Checked} with checked arguments of the backend's tensor type. */
    interface Kernels<T extends Tensor> {
        /** {@code inverse}: ropeBackward's rotation by −angle. */
        void rope(T out, T x, T cos, T sin, boolean inverse, AttentionDims dims);
        void attention(T out, T lse, T q, T k, T v, AttentionDims dims);
        void attentionBackward(T dq, T dk, T dv, T dOut, T q, T k, T v, T out, T lse, AttentionDims dims);
        void attentionWithBias(T out, T q, T k, T v, T bias, T keyMask, AttentionDims dims);
    }

    /** The checks of every attention op (shapes, dtypes, heads, ownership, aliasing), then the {@link Kernels}. */
    final class Checked<T extends Tensor> {
        private final CheckedBackend<T> backend;
        private final Kernels<T> kernels;

        public Checked(CheckedBackend<T> backend, Kernels<T> kernels) {
            this.backend = backend;
            this.kernels = kernels;
        }

        public void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int numHeads) {
            rope("rope", out, "out", x, "x", cos, sin, numHeads, false);
        }

        public void ropeBackward(Tensor dx, Tensor dOut, Tensor cos, Tensor sin, int numHeads) {
            rope("ropeBackward", dx, "dx", dOut, "dOut", cos, sin, numHeads, true);
        }

        private void rope(String op, Tensor out, String outName, Tensor x, String xName, Tensor cos, Tensor sin,
                          int numHeads, boolean inverse) {
            requireActivation(op, xName, x);
            requireRank(op, xName, x, 3, "(B, L, N·D)");
            requireActivation(op, outName, out);
            requireSameShape(op, outName, out, xName, x);
            int d = headDimOf(op, xName, x, numHeads);
            if (d % 2 != 0) {
                throw new IllegalArgumentException(op + ": head dim is odd; got " + describe(xName, x) + " with numHeads="
                        + numHeads + " (D=" + d + "), expected an even D (pairs of features are rotated)");
            }
            long l = x.shape().dim(1);
            requireDType(op, "cos", cos, DType.F32);
            requireDType(op, "sin", sin, DType.F32);
            requireShape(op, "cos", cos, Shape.of(l, d / 2));
            requireShape(op, "sin", sin, Shape.of(l, d / 2));
            T to = backend.own(op, outName, out), tx = backend.own(op, xName, x);
            T tc = backend.own(op, "cos", cos), ts = backend.own(op, "sin", sin);
            backend.alias().sameOrDisjoint(op, outName, to, xName, tx);
            backend.alias().disjoint(op, outName, to, "cos", tc);
            backend.alias().disjoint(op, outName, to, "sin", ts);
            kernels.rope(to, tx, tc, ts, inverse, new AttentionDims(x.shape().dim(0), l, l, numHeads, d));
        }

        public void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int numHeads) {
            String op = "attention";
            AttentionDims d = qkv(op, q, k, v, numHeads);
            requireActivation(op, "out", out);
            requireSameShape(op, "out", out, "q", q);
            requireDType(op, "lse", lse, DType.F32);
            requireShape(op, "lse", lse, Shape.of(d.batch(), numHeads, d.queries()));
            T to = backend.own(op, "out", out), tl = backend.own(op, "lse", lse), tq = backend.own(op, "q", q);
            T tk = backend.own(op, "k", k), tv = backend.own(op, "v", v);
            backend.alias().outputs(op, new String[] {"out", "lse"}, array(to, tl), new String[] {"q", "k", "v"},
                    array(tq, tk, tv));
            kernels.attention(to, tl, tq, tk, tv, d);
        }

        public void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v,
                                      Tensor out, Tensor lse, int numHeads) {
            String op = "attentionBackward";
            AttentionDims d = qkv(op, q, k, v, numHeads);
            requireActivation(op, "out", out);
            requireSameShape(op, "out", out, "q", q);
            requireActivation(op, "dOut", dOut);
            requireSameShape(op, "dOut", dOut, "q", q);
            requireActivation(op, "dq", dq);
            requireSameShape(op, "dq", dq, "q", q);
            requireActivation(op, "dk", dk);
            requireSameShape(op, "dk", dk, "k", k);
            requireActivation(op, "dv", dv);
            requireSameShape(op, "dv", dv, "v", v);
            requireDType(op, "lse", lse, DType.F32);
            requireShape(op, "lse", lse, Shape.of(d.batch(), numHeads, d.queries()));
            T tdq = backend.own(op, "dq", dq), tdk = backend.own(op, "dk", dk), tdv = backend.own(op, "dv", dv);
            T tdo = backend.own(op, "dOut", dOut), tq = backend.own(op, "q", q), tk = backend.own(op, "k", k);
            T tv = backend.own(op, "v", v), to = backend.own(op, "out", out), tl = backend.own(op, "lse", lse);
            backend.alias().outputs(op, new String[] {"dq", "dk", "dv"}, array(tdq, tdk, tdv),
                    new String[] {"dOut", "q", "k", "v", "out", "lse"}, array(tdo, tq, tk, tv, to, tl));
            kernels.attentionBackward(tdq, tdk, tdv, tdo, tq, tk, tv, to, tl, d);
        }

        public void attentionWithBias(Tensor out, Tensor q, Tensor k, Tensor v, Tensor bias, Tensor keyMask,
                                      int numHeads) {
            String op = "attentionWithBias";
            AttentionDims d = qkv(op, q, k, v, numHeads);
            requireActivation(op, "out", out);
            requireSameShape(op, "out", out, "q", q);
            requireActivation(op, "bias", bias);
            requireShape(op, "bias", bias, Shape.of(numHeads, d.queries(), d.keys()));
            requireDType(op, "keyMask", keyMask, DType.F32);
            requireShape(op, "keyMask", keyMask, Shape.of(d.batch(), d.keys()));
            T to = backend.own(op, "out", out), tq = backend.own(op, "q", q), tk = backend.own(op, "k", k);
            T tv = backend.own(op, "v", v), tb = backend.own(op, "bias", bias);
            T tm = backend.own(op, "keyMask", keyMask);
            backend.alias().outputs(op, new String[] {"out"}, array(to),
                    new String[] {"q", "k", "v", "bias", "keyMask"}, array(tq, tk, tv, tb, tm));
            kernels.attentionWithBias(to, tq, tk, tv, tb, tm, d);
        }

        private static AttentionDims qkv(String op, Tensor q, Tensor k, Tensor v, int numHeads) {
            requireActivation(op, "q", q);
            requireRank(op, "q", q, 3, "(B, Lq, N·D)");
            requireActivation(op, "k", k);
            requireRank(op, "k", k, 3, "(B, Lk, N·D)");
            requireActivation(op, "v", v);
            requireSameShape(op, "v", v, "k", k);
            int d = headDimOf(op, "q", q, numHeads);
            if (k.shape().dim(0) != q.shape().dim(0) || k.shape().dim(2) != q.shape().dim(2)) {
                throw new IllegalArgumentException(op + ": k does not match q's batch and width; got " + describe("k", k)
                        + " and " + describe("q", q) + ", expected k=(" + q.shape().dim(0) + ", Lk, " + q.shape().dim(2)
                        + ")");
            }
            if (k.shape().dim(1) == 0) {
                throw new IllegalArgumentException(op + ": no keys; got " + describe("k", k) + ", expected Lk >= 1");
            }
            return new AttentionDims(q.shape().dim(0), q.shape().dim(1), k.shape().dim(1), numHeads, d);
        }
    }
}
