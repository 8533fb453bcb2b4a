package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.Backend.ConvGeometry;
import dev.wanlora.engine.backend.OpChecks.ConvDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.*;

/**
 * The video family of {@link Backend} (the Wan VAE): the causal 3D convolution, nearest upsampling and the
 * attention's softmax. Contracts, their checks ({@link Checked}, once for every backend) and the hooks a backend
 * implements ({@link Kernels}); the recipe is in {@link Backend}'s class comment.
 */
public interface VideoOps {

    /** This backend's checked video ops; the defaults below forward here. */
    Checked<?> videoOps();

    /**
     * Convolution over channels-last frames, the Wan VAE's CausalConv3d / Conv2d with its feature cache. The input
     * stream is in = concat(cache, x) along frames (Tin = Tc + Tx), and
     * out[t, h, w, o] = bias[o] + Σ_{dt, dh, dw, i} weight[o, dt, dh, dw, i] · in[t·st + dt, h·ss + dh − pb, w·ss + dw − pb, i]
     * with in = 0 outside the H×W image (st, ss, pb = geometry's timeStride, spaceStride, padBefore). Accumulation is
     * fp32 or wider; out is overwritten (=).
     *
     * <p>Shapes: cache (Tc, H, W, Cin) or null (Tc = 0); x (Tx, H, W, Cin); weight (Cout, KT, KH, KW, Cin) (the
     * checkpoint's (Cout, Cin, KT, KH, KW) with Cin moved last); bias (Cout) or null; out (To, Ho, Wo, Cout) with
     * To = (Tin − KT)/st + 1, Ho = (H + pb + pa − KH)/ss + 1 (pa = padAfter; the division must be exact), likewise Wo.
     * cache and x share a dtype; out must not overlap an input.
     */
    default void conv3d(Tensor out, Tensor cache, Tensor x, Tensor weight, Tensor bias, ConvGeometry geometry) {
        videoOps().conv3d(out, cache, x, weight, bias, geometry);
    }

    /**
     * Nearest 2× spatial upsampling of channels-last frames: out[t, 2h + a, 2w + b, c] = x[t, h, w, c] for a, b ∈ {0, 1}
     * (torch's "nearest" and "nearest-exact" agree at factor 2). x (T, H, W, C), out (T, 2H, 2W, C) (=).
     */
    default void upsampleNearest2x(Tensor out, Tensor x) { videoOps().upsampleNearest2x(out, x); }

    /**
     * Softmax over the last dim: out[r, c] = exp(s·x[r, c] − m) / Σ_c' exp(s·x[r, c'] − m), m = max_c s·x[r, c], in
     * fp32 or wider (s = scale). x, out (R, C) (=); out may be x.
     */
    default void softmax(Tensor out, Tensor x, float scale) { videoOps().softmax(out, x, scale); }

    /** A backend's video family, called by {@link Checked} with checked arguments of the backend's tensor type. */
    interface Kernels<T extends Tensor> {
        /** cache and bias are null when absent. */
        void conv3d(T out, T cache, T x, T weight, T bias, ConvDims dims);
        void upsampleNearest2x(T out, T x, ConvDims dims);
        void softmax(T out, T x, float scale, MatrixDims dims);
    }

    /** The checks of every video op (shapes, dtypes, geometry, ownership, aliasing), then the {@link Kernels}. */
    final class Checked<T extends Tensor> {
        private final CheckedBackend<T> backend;
        private final Kernels<T> kernels;

        public Checked(CheckedBackend<T> backend, Kernels<T> kernels) {
            this.backend = backend;
            this.kernels = kernels;
        }

        public void conv3d(Tensor out, Tensor cache, Tensor x, Tensor weight, Tensor bias, ConvGeometry g) {
            String op = "conv3d";
            if (g == null || g.timeStride() < 1 || g.spaceStride() < 1 || g.padBefore() < 0 || g.padAfter() < 0) {
                throw new IllegalArgumentException(op + ": invalid geometry; got " + g
                        + ", expected strides >= 1 and paddings >= 0");
            }
            requireActivation(op, "x", x);
            requireRank(op, "x", x, 4, "(T, H, W, Cin)");
            long tx = x.shape().dim(0), h = x.shape().dim(1), w = x.shape().dim(2), cin = x.shape().dim(3);
            long tc = 0;
            if (cache != null) {
                requireDType(op, "cache", cache, x.dtype());
                requireRank(op, "cache", cache, 4, "(Tc, H, W, Cin)");
                tc = cache.shape().dim(0);
                requireShape(op, "cache", cache, Shape.of(tc, h, w, cin));
            }
            requireActivation(op, "weight", weight);
            requireRank(op, "weight", weight, 5, "(Cout, KT, KH, KW, Cin)");
            long cout = weight.shape().dim(0), kt = weight.shape().dim(1), kh = weight.shape().dim(2);
            long kw = weight.shape().dim(3);
            if (weight.shape().dim(4) != cin || cout < 1 || kt < 1 || kh < 1 || kw < 1) {
                throw new IllegalArgumentException(op + ": weight does not fit x; got " + describe("weight", weight)
                        + " for " + describe("x", x) + ", expected weight=(Cout, KT, KH, KW, " + cin
                        + ") with positive sizes");
            }
            if (bias != null) {
                requireActivation(op, "bias", bias);
                requireElements(op, "bias", bias, cout);
            }
            long tin = tc + tx, st = g.timeStride(), ss = g.spaceStride();
            long hp = h + g.padBefore() + g.padAfter() - kh, wp = w + g.padBefore() + g.padAfter() - kw;
            if (tin < kt || hp < 0 || wp < 0 || (tin - kt) % st != 0 || hp % ss != 0 || wp % ss != 0) {
                throw new IllegalArgumentException(op + ": the kernel does not tile the input exactly; got "
                        + describe("x", x) + (cache == null ? "" : " after " + describe("cache", cache))
                        + " with kernel (" + kt + "," + kh + "," + kw + ") and " + g
                        + ", expected (Tc + Tx − KT) % timeStride = 0 and (H + pads − KH) % spaceStride = 0");
            }
            Shape expected = Shape.of((tin - kt) / st + 1, hp / ss + 1, wp / ss + 1, cout);
            requireActivation(op, "out", out);
            requireShape(op, "out", out, expected);
            ConvDims d = new ConvDims(tc, tx, h, w, cin, kt, kh, kw, expected.dim(0), expected.dim(1), expected.dim(2),
                    cout, g);
            T to = backend.own(op, "out", out), tcache = backend.own(op, "cache", cache), tx0 = backend.own(op, "x", x);
            T tw = backend.own(op, "weight", weight), tb = backend.own(op, "bias", bias);
            AliasChecks<T> alias = backend.alias();
            alias.disjoint(op, "out", to, "cache", tcache);
            alias.disjoint(op, "out", to, "x", tx0);
            alias.disjoint(op, "out", to, "weight", tw);
            alias.disjoint(op, "out", to, "bias", tb);
            kernels.conv3d(to, tcache, tx0, tw, tb, d);
        }

        public void upsampleNearest2x(Tensor out, Tensor x) {
            String op = "upsampleNearest2x";
            requireActivation(op, "x", x);
            requireRank(op, "x", x, 4, "(T, H, W, C)");
            long t = x.shape().dim(0), h = x.shape().dim(1), w = x.shape().dim(2), c = x.shape().dim(3);
            requireActivation(op, "out", out);
            requireShape(op, "out", out, Shape.of(t, 2 * h, 2 * w, c));
            T to = backend.own(op, "out", out), tx = backend.own(op, "x", x);
            backend.alias().disjoint(op, "out", to, "x", tx);
            kernels.upsampleNearest2x(to, tx, new ConvDims(0, t, h, w, c, 1, 1, 1, t, 2 * h, 2 * w, c,
                    ConvGeometry.same(0)));
        }

        public void softmax(Tensor out, Tensor x, float scale) {
            String op = "softmax";
            MatrixDims d = rowwise(op, out, "out", x);
            T to = backend.own(op, "out", out), tx = backend.own(op, "x", x);
            backend.alias().sameOrDisjoint(op, "out", to, "x", tx);
            kernels.softmax(to, tx, scale, d);
        }
    }
}
