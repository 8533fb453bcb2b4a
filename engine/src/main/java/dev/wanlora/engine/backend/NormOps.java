package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.backend.OpChecks.TokenDims;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.*;

/**
 * The norm family of {@link Backend}: LayerNorm and RMSNorm, forward and backward. Contracts, their checks
 * ({@link Checked}, once for every backend) and the hooks a backend implements ({@link Kernels}); the recipe is in
 * {@link Backend}'s class comment.
 */
public interface NormOps {

    /** This backend's checked norm ops; the defaults below forward here. */
    Checked<?> normOps();

    /**
     * LayerNorm over the last dim: out = (x − mean)·rstd·weight + bias, rstd = 1/sqrt(var + eps) with the biased
     * variance. x, out (R, C); weight, bias (C) or null (no affine); mean, rstd (R) F32 saved for backward (=).
     */
    default void layerNorm(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias, float eps) {
        normOps().layerNorm(out, mean, rstd, x, weight, bias, eps);
    }

    /**
     * Backward of {@link #layerNorm}. dx (R, C): {@code accumulate ? += : =}. dWeight, dBias (C): += when non-null
     * (frozen weights pass null).
     */
    default void layerNormBackward(Tensor dx, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor x, Tensor weight,
                                   Tensor mean, Tensor rstd, boolean accumulate) {
        normOps().layerNormBackward(dx, dWeight, dBias, dOut, x, weight, mean, rstd, accumulate);
    }

    /**
     * Wan's adaLN input in one pass (issue 11's fusion of {@link #layerNorm} without affine and
     * {@link ModulationOps#modulate}): n = LayerNorm(x) (biased variance, rstd = 1/sqrt(var + eps)) rounded to out's
     * dtype, then out[b,l,c] = n·(1 + mod[b,scaleIndex,c]) + mod[b,shiftIndex,c] in fp32, rounded to out's dtype; so
     * it equals {@code layerNorm(n, mean, rstd, x, null, null, eps); modulate(out, n, mod, shiftIndex, scaleIndex)}
     * with n of out's dtype, bit for bit. x, out (B, L, C); mod (B, n, C) F32; mean, rstd (B·L) F32 saved for the
     * backward (=). out must not overlap x, mod, mean or rstd. The backward is today's chain:
     * {@link ModulationOps#modulateBackward}, then {@link #layerNormBackward} with x, mean, rstd.
     */
    default void layerNormModulate(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor mod, int shiftIndex,
                                   int scaleIndex, float eps) {
        normOps().layerNormModulate(out, mean, rstd, x, mod, shiftIndex, scaleIndex, eps);
    }

    /**
     * Backward of {@link #layerNormModulate} w.r.t. x, in one pass: dn = dOut·(1 + mod[b,scaleIndex,c]) rounded to dx's
     * dtype, then dx {@code accumulate ? += : =} rstd·(dn − mean(dn) − x̂·mean(dn·x̂)) with x̂ = (x − mean)·rstd; so it
     * equals {@code modulateBackward(dn, dOut, mod, scaleIndex); layerNormBackward(dx, null, null, dn, x, null, mean,
     * rstd, accumulate)} with dn of dx's dtype, bit for bit. dx, dOut, x (B, L, C); mean, rstd (B·L) F32 as the
     * forward saved them; mod (B, n, C) F32 (frozen). dx must not overlap an input.
     */
    default void layerNormModulateBackward(Tensor dx, Tensor dOut, Tensor x, Tensor mean, Tensor rstd, Tensor mod,
                                           int scaleIndex, boolean accumulate) {
        normOps().layerNormModulateBackward(dx, dOut, x, mean, rstd, mod, scaleIndex, accumulate);
    }

    /**
     * RMSNorm over the last dim as musubi computes it: n = x·rsqrt(mean(x²) + eps) in fp32, rounded to out's dtype,
     * then out = n·weight (weight rounded to out's dtype, product rounded again). x, out (R, C); weight (C);
     * rstd (R) F32 (=).
     */
    default void rmsNorm(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
        normOps().rmsNorm(out, rstd, x, weight, eps);
    }

    /**
     * SiLU after {@link #rmsNorm}, the Wan VAE's RMS_norm → SiLU pair: out = silu(n) with n rmsNorm's output (both
     * roundings to out's dtype), then silu's rounding. Shapes, dtypes and rstd as rmsNorm; out must not overlap x. The
     * CPU reference is the unfused chain, which a backend's fused kernel is tested against.
     */
    default void rmsNormSilu(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
        normOps().rmsNormSilu(out, rstd, x, weight, eps);
    }

    /** Backward of {@link #rmsNorm}: dx (R, C) overwritten; dWeight (C) += when non-null. */
    default void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dOut, Tensor x, Tensor weight, Tensor rstd) {
        normOps().rmsNormBackward(dx, dWeight, dOut, x, weight, rstd);
    }

    /** A backend's norm family, called by {@link Checked} with checked arguments of the backend's tensor type. */
    interface Kernels<T extends Tensor> {
        void layerNorm(T out, T mean, T rstd, T x, T weight, T bias, float eps, MatrixDims dims);
        void layerNormBackward(T dx, T dWeight, T dBias, T dOut, T x, T weight, T mean, T rstd, boolean accumulate,
                               MatrixDims dims);
        void layerNormModulate(T out, T mean, T rstd, T x, T mod, int shiftIndex, int scaleIndex, float eps,
                               TokenDims dims);
        void layerNormModulateBackward(T dx, T dOut, T x, T mean, T rstd, T mod, int scaleIndex, boolean accumulate,
                                       TokenDims dims);
        void rmsNorm(T out, T rstd, T x, T weight, float eps, MatrixDims dims);
        void rmsNormSilu(T out, T rstd, T x, T weight, float eps, MatrixDims dims);
        void rmsNormBackward(T dx, T dWeight, T dOut, T x, T weight, T rstd, MatrixDims dims);
    }

    /** The checks of every norm op (shapes, dtypes, ownership, aliasing), then the backend's {@link Kernels}. */
    final class Checked<T extends Tensor> {
        private final CheckedBackend<T> backend;
        private final Kernels<T> kernels;

        public Checked(CheckedBackend<T> backend, Kernels<T> kernels) {
            this.backend = backend;
            this.kernels = kernels;
        }

        public void layerNorm(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias, float eps) {
            String op = "layerNorm";
            MatrixDims d = rowwise(op, out, "out", x);
            requireStats(op, mean, "mean", d);
            requireStats(op, rstd, "rstd", d);
            requireOptionalVector(op, "weight", weight, d.cols());
            requireOptionalVector(op, "bias", bias, d.cols());
            T to = backend.own(op, "out", out), tm = backend.own(op, "mean", mean), tr = backend.own(op, "rstd", rstd);
            T tx = backend.own(op, "x", x), tw = backend.own(op, "weight", weight), tb = backend.own(op, "bias", bias);
            backend.alias().outputs(op, new String[] {"out", "mean", "rstd"}, array(to, tm, tr),
                    new String[] {"x", "weight", "bias"}, array(tx, tw, tb));
            kernels.layerNorm(to, tm, tr, tx, tw, tb, eps, d);
        }

        public void layerNormBackward(Tensor dx, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor x, Tensor weight,
                                      Tensor mean, Tensor rstd, boolean accumulate) {
            String op = "layerNormBackward";
            MatrixDims d = rowwise(op, dx, "dx", x);
            requireActivation(op, "dOut", dOut);
            requireSameShape(op, "dOut", dOut, "x", x);
            requireStats(op, mean, "mean", d);
            requireStats(op, rstd, "rstd", d);
            requireOptionalVector(op, "weight", weight, d.cols());
            requireOptionalVector(op, "dWeight", dWeight, d.cols());
            requireOptionalVector(op, "dBias", dBias, d.cols());
            if (dWeight != null && weight == null) {
                throw new IllegalArgumentException(op + ": dWeight given for a LayerNorm without weight; got "
                        + describe("dWeight", dWeight) + " and weight=null, expected dWeight=null");
            }
            T tdx = backend.own(op, "dx", dx), tdw = backend.own(op, "dWeight", dWeight);
            T tdb = backend.own(op, "dBias", dBias), tdo = backend.own(op, "dOut", dOut), tx = backend.own(op, "x", x);
            T tw = backend.own(op, "weight", weight), tm = backend.own(op, "mean", mean);
            T tr = backend.own(op, "rstd", rstd);
            backend.alias().outputs(op, new String[] {"dx", "dWeight", "dBias"}, array(tdx, tdw, tdb),
                    new String[] {"dOut", "x", "weight", "mean", "rstd"}, array(tdo, tx, tw, tm, tr));
            kernels.layerNormBackward(tdx, tdw, tdb, tdo, tx, tw, tm, tr, accumulate, d);
        }

        public void layerNormModulate(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor mod, int shiftIndex,
                                      int scaleIndex, float eps) {
            String op = "layerNormModulate";
            TokenDims d = tokens(op, "x", x, mod);
            requireActivation(op, "out", out);
            requireSameShape(op, "out", out, "x", x);
            MatrixDims rows = new MatrixDims(x.shape().rows(), x.shape().cols());
            requireStats(op, mean, "mean", rows);
            requireStats(op, rstd, "rstd", rows);
            requireIndex(op, "shiftIndex", shiftIndex, mod.shape().dim(1));
            requireIndex(op, "scaleIndex", scaleIndex, mod.shape().dim(1));
            T to = backend.own(op, "out", out), tm = backend.own(op, "mean", mean), tr = backend.own(op, "rstd", rstd);
            T tx = backend.own(op, "x", x), tmod = backend.own(op, "mod", mod);
            backend.alias().outputs(op, new String[] {"out", "mean", "rstd"}, array(to, tm, tr),
                    new String[] {"x", "mod"}, array(tx, tmod));
            kernels.layerNormModulate(to, tm, tr, tx, tmod, shiftIndex, scaleIndex, eps, d);
        }

        public void layerNormModulateBackward(Tensor dx, Tensor dOut, Tensor x, Tensor mean, Tensor rstd, Tensor mod,
                                              int scaleIndex, boolean accumulate) {
            String op = "layerNormModulateBackward";
            TokenDims d = tokens(op, "dOut", dOut, mod);
            requireActivation(op, "x", x);
            requireSameShape(op, "x", x, "dOut", dOut);
            requireActivation(op, "dx", dx);
            requireSameShape(op, "dx", dx, "dOut", dOut);
            MatrixDims rows = new MatrixDims(x.shape().rows(), x.shape().cols());
            requireStats(op, mean, "mean", rows);
            requireStats(op, rstd, "rstd", rows);
            requireIndex(op, "scaleIndex", scaleIndex, mod.shape().dim(1));
            T tdx = backend.own(op, "dx", dx), tdo = backend.own(op, "dOut", dOut), tx = backend.own(op, "x", x);
            T tm = backend.own(op, "mean", mean), tr = backend.own(op, "rstd", rstd), tmod = backend.own(op, "mod", mod);
            backend.alias().outputs(op, new String[] {"dx"}, array(tdx),
                    new String[] {"dOut", "x", "mean", "rstd", "mod"}, array(tdo, tx, tm, tr, tmod));
            kernels.layerNormModulateBackward(tdx, tdo, tx, tm, tr, tmod, scaleIndex, accumulate, d);
        }

        public void rmsNorm(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
            String op = "rmsNorm";
            MatrixDims d = checkRmsNorm(op, out, rstd, x, weight);
            T to = backend.own(op, "out", out), tr = backend.own(op, "rstd", rstd), tx = backend.own(op, "x", x);
            T tw = backend.own(op, "weight", weight);
            backend.alias().outputs(op, new String[] {"out", "rstd"}, array(to, tr), new String[] {"x", "weight"},
                    array(tx, tw));
            kernels.rmsNorm(to, tr, tx, tw, eps, d);
        }

        public void rmsNormSilu(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
            String op = "rmsNormSilu";
            MatrixDims d = checkRmsNorm("rmsNorm", out, rstd, x, weight);
            T to = backend.own(op, "out", out), tr = backend.own(op, "rstd", rstd), tx = backend.own(op, "x", x);
            T tw = backend.own(op, "weight", weight);
            backend.alias().outputs(op, new String[] {"out", "rstd"}, array(to, tr), new String[] {"x", "weight"},
                    array(tx, tw));
            kernels.rmsNormSilu(to, tr, tx, tw, eps, d);
        }

        public void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dOut, Tensor x, Tensor weight, Tensor rstd) {
            String op = "rmsNormBackward";
            MatrixDims d = rowwise(op, dx, "dx", x);
            requireActivation(op, "dOut", dOut);
            requireSameShape(op, "dOut", dOut, "x", x);
            requireStats(op, rstd, "rstd", d);
            requireNonNull(op, "weight", weight);
            requireOptionalVector(op, "weight", weight, d.cols());
            requireOptionalVector(op, "dWeight", dWeight, d.cols());
            T tdx = backend.own(op, "dx", dx), tdw = backend.own(op, "dWeight", dWeight);
            T tdo = backend.own(op, "dOut", dOut), tx = backend.own(op, "x", x), tw = backend.own(op, "weight", weight);
            T tr = backend.own(op, "rstd", rstd);
            backend.alias().outputs(op, new String[] {"dx", "dWeight"}, array(tdx, tdw),
                    new String[] {"dOut", "x", "weight", "rstd"}, array(tdo, tx, tw, tr));
            kernels.rmsNormBackward(tdx, tdw, tdo, tx, tw, tr, d);
        }

        /** The messages name "rmsNorm" for rmsNormSilu too (its checks are rmsNorm's). */
        private static MatrixDims checkRmsNorm(String op, Tensor out, Tensor rstd, Tensor x, Tensor weight) {
            MatrixDims d = rowwise(op, out, "out", x);
            requireStats(op, rstd, "rstd", d);
            requireNonNull(op, "weight", weight);
            requireOptionalVector(op, "weight", weight, d.cols());
            return d;
        }
    }
}
