package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.OpChecks.TokenDims;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.*;

/**
 * The adaLN modulation family of {@link Backend} (Wan's blocks and head): modulate, gated residuals and their
 * backwards. Contracts, their checks ({@link Checked}, once for every backend) and the hooks a backend implements
 * ({@link Kernels}); the recipe is in {@link Backend}'s class comment.
 */
public interface ModulationOps {

    /** This backend's checked modulation ops; the defaults below forward here. */
    Checked<?> modulationOps();

    /**
     * out[b,l,c] = x[b,l,c]·(1 + mod[b,scaleIndex,c]) + mod[b,shiftIndex,c], computed in fp32.
     * x, out (B, L, C); mod (B, n, C) F32.
     */
    default void modulate(Tensor out, Tensor x, Tensor mod, int shiftIndex, int scaleIndex) {
        modulationOps().modulate(out, x, mod, shiftIndex, scaleIndex);
    }

    /** Backward of {@link #modulate} w.r.t. x: dx = dOut·(1 + scale) (=). mod is frozen (no gradient). */
    default void modulateBackward(Tensor dx, Tensor dOut, Tensor mod, int scaleIndex) {
        modulationOps().modulateBackward(dx, dOut, mod, scaleIndex);
    }

    /**
     * In-place gated residual: x[b,l,c] = x + y·mod[b,gateIndex,c], computed in fp32 and rounded to x's dtype.
     * gateIndex &lt; 0 means no gate (a plain residual add, Wan's cross-attention). x, y (B, L, C); mod (B, n, C) F32.
     */
    default void gatedResidual(Tensor x, Tensor y, Tensor mod, int gateIndex) {
        modulationOps().gatedResidual(x, y, mod, gateIndex);
    }

    /**
     * The gated residual into a new stream tensor (issue 11's fusion of the {@code copy} before an in-place
     * {@link #gatedResidual}): out[b,l,c] = x' + y·mod[b,gateIndex,c] with x' = x rounded to out's dtype, computed in
     * fp32 and rounded to out's dtype, so it equals {@code copy(out, x); gatedResidual(out, y, mod, gateIndex)} bit
     * for bit. gateIndex &lt; 0 means no gate. x, y, out (B, L, C); mod (B, n, C) F32. out may be x (then it is
     * gatedResidual); out must not overlap y or mod. Its backward is {@link #gatedResidualBackward} for y, the identity
     * for x.
     */
    default void addGatedResidual(Tensor out, Tensor x, Tensor y, Tensor mod, int gateIndex) {
        modulationOps().addGatedResidual(out, x, y, mod, gateIndex);
    }

    /** Backward of {@link #gatedResidual} w.r.t. y: dy = dx·gate (=), or dy = dx with gateIndex &lt; 0. */
    default void gatedResidualBackward(Tensor dy, Tensor dx, Tensor mod, int gateIndex) {
        modulationOps().gatedResidualBackward(dy, dx, mod, gateIndex);
    }

    /** A backend's modulation family, called by {@link Checked} with checked arguments of the backend's tensor type. */
    interface Kernels<T extends Tensor> {
        void modulate(T out, T x, T mod, int shiftIndex, int scaleIndex, TokenDims dims);
        void modulateBackward(T dx, T dOut, T mod, int scaleIndex, TokenDims dims);
        /** mod is null when gateIndex &lt; 0. */
        void gatedResidual(T x, T y, T mod, int gateIndex, TokenDims dims);
        /** mod is null when gateIndex &lt; 0. */
        void addGatedResidual(T out, T x, T y, T mod, int gateIndex, TokenDims dims);
        /** mod is null when gateIndex &lt; 0. */
        void gatedResidualBackward(T dy, T dx, T mod, int gateIndex, TokenDims dims);
    }

    /** The checks of every modulation op (shapes, dtypes, indices, ownership, aliasing), then the {@link Kernels}. */
    final class Checked<T extends Tensor> {
        private final CheckedBackend<T> backend;
        private final Kernels<T> kernels;

        public Checked(CheckedBackend<T> backend, Kernels<T> kernels) {
            this.backend = backend;
            this.kernels = kernels;
        }

        public void modulate(Tensor out, Tensor x, Tensor mod, int shiftIndex, int scaleIndex) {
            String op = "modulate";
            TokenDims d = tokens(op, "x", x, mod);
            requireActivation(op, "out", out);
            requireSameShape(op, "out", out, "x", x);
            requireIndex(op, "shiftIndex", shiftIndex, mod.shape().dim(1));
            requireIndex(op, "scaleIndex", scaleIndex, mod.shape().dim(1));
            T to = backend.own(op, "out", out), tx = backend.own(op, "x", x), tm = backend.own(op, "mod", mod);
            backend.alias().sameOrDisjoint(op, "out", to, "x", tx);
            backend.alias().disjoint(op, "out", to, "mod", tm);
            kernels.modulate(to, tx, tm, shiftIndex, scaleIndex, d);
        }

        public void modulateBackward(Tensor dx, Tensor dOut, Tensor mod, int scaleIndex) {
            String op = "modulateBackward";
            TokenDims d = tokens(op, "dOut", dOut, mod);
            requireActivation(op, "dx", dx);
            requireSameShape(op, "dx", dx, "dOut", dOut);
            requireIndex(op, "scaleIndex", scaleIndex, mod.shape().dim(1));
            T tdx = backend.own(op, "dx", dx), tdo = backend.own(op, "dOut", dOut), tm = backend.own(op, "mod", mod);
            backend.alias().sameOrDisjoint(op, "dx", tdx, "dOut", tdo);
            backend.alias().disjoint(op, "dx", tdx, "mod", tm);
            kernels.modulateBackward(tdx, tdo, tm, scaleIndex, d);
        }

        public void gatedResidual(Tensor x, Tensor y, Tensor mod, int gateIndex) {
            String op = "gatedResidual";
            TokenDims d = gated(op, "x", x, "y", y, mod, gateIndex);
            T tx = backend.own(op, "x", x), ty = backend.own(op, "y", y);
            T tm = gateIndex < 0 ? null : backend.own(op, "mod", mod);
            backend.alias().disjoint(op, "x", tx, "y", ty);
            backend.alias().disjoint(op, "x", tx, "mod", tm);
            kernels.gatedResidual(tx, ty, tm, gateIndex, d);
        }

        public void addGatedResidual(Tensor out, Tensor x, Tensor y, Tensor mod, int gateIndex) {
            String op = "addGatedResidual";
            TokenDims d = gated(op, "x", x, "y", y, mod, gateIndex);
            requireActivation(op, "out", out);
            requireSameShape(op, "out", out, "x", x);
            T to = backend.own(op, "out", out), tx = backend.own(op, "x", x), ty = backend.own(op, "y", y);
            T tm = gateIndex < 0 ? null : backend.own(op, "mod", mod);
            backend.alias().sameOrDisjoint(op, "out", to, "x", tx);
            backend.alias().disjoint(op, "out", to, "y", ty);
            backend.alias().disjoint(op, "out", to, "mod", tm);
            kernels.addGatedResidual(to, tx, ty, tm, gateIndex, d);
        }

        public void gatedResidualBackward(Tensor dy, Tensor dx, Tensor mod, int gateIndex) {
            String op = "gatedResidualBackward";
            TokenDims d = gated(op, "dx", dx, "dy", dy, mod, gateIndex);
            T tdy = backend.own(op, "dy", dy), tdx = backend.own(op, "dx", dx);
            T tm = gateIndex < 0 ? null : backend.own(op, "mod", mod);
            backend.alias().sameOrDisjoint(op, "dy", tdy, "dx", tdx);
            backend.alias().disjoint(op, "dy", tdy, "mod", tm);
            kernels.gatedResidualBackward(tdy, tdx, tm, gateIndex, d);
        }

        /** For gatedResidual (x, y) and its backward (dx, dy). mod may be null when gateIndex &lt; 0 (no gate). */
        private static TokenDims gated(String op, String xName, Tensor x, String yName, Tensor y, Tensor mod,
                                       int gateIndex) {
            requireActivation(op, xName, x);
            requireRank(op, xName, x, 3, "(B, L, C)");
            requireActivation(op, yName, y);
            requireSameShape(op, yName, y, xName, x);
            TokenDims d = new TokenDims(x.shape().dim(0), x.shape().dim(1), x.shape().dim(2));
            if (gateIndex >= 0) {
                tokens(op, xName, x, mod);
                requireIndex(op, "gateIndex", gateIndex, mod.shape().dim(1));
            }
            return d;
        }
    }
}
