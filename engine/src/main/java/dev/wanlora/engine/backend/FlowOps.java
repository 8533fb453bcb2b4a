package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.*;

/**
 * The flow-matching and loss family of {@link Backend}: noise, the flow-matching input and target, the MSE loss.
 * Contracts, their checks ({@link Checked}, once for every backend) and the hooks a backend implements
 * ({@link Kernels}); the recipe is in {@link Backend}'s class comment.
 */
public interface FlowOps {

    /** This backend's checked flow-matching ops; the defaults below forward here. */
    Checked<?> flowOps();

    /**
     * Standard normal noise from a counter-based generator (see {@code CounterRng}): element i of out is
     * normal(seed, offset + i), rounded to out's dtype. The same (seed, offset) gives the same values on every
     * backend.
     */
    default void gaussianNoise(Tensor out, long seed, long offset) { flowOps().gaussianNoise(out, seed, offset); }

    /**
     * Flow-matching input and target per sample b (spec §4): xt = (1 − t[b])·x0 + t[b]·noise and
     * target = noise − x0, in fp32. x0, noise, xt, target (B, …); t (B) F32.
     */
    default void flowMatchingInput(Tensor xt, Tensor target, Tensor x0, Tensor noise, Tensor t) {
        flowOps().flowMatchingInput(xt, target, x0, noise, t);
    }

    /**
     * Mean squared error: loss (1) F32 (=) = mean((pred − target)²) with an fp32 (or wider) reduction;
     * dPred (=) = gradScale·2·(pred − target)/n. pred, target, dPred of equal shape.
     */
    default void mseLoss(Tensor loss, Tensor dPred, Tensor pred, Tensor target, float gradScale) {
        flowOps().mseLoss(loss, dPred, pred, target, gradScale);
    }

    /** A backend's flow family, called by {@link Checked} with checked arguments of the backend's tensor type. */
    interface Kernels<T extends Tensor> {
        void gaussianNoise(T out, long seed, long offset);
        void flowMatchingInput(T xt, T target, T x0, T noise, T t, MatrixDims dims);
        /** n: pred's element count. */
        void mseLoss(T loss, T dPred, T pred, T target, float gradScale, long n);
    }

    /** The checks of every flow op (shapes, dtypes, ownership, aliasing), then the backend's {@link Kernels}. */
    final class Checked<T extends Tensor> {
        private final CheckedBackend<T> backend;
        private final Kernels<T> kernels;

        public Checked(CheckedBackend<T> backend, Kernels<T> kernels) {
            this.backend = backend;
            this.kernels = kernels;
        }

        public void gaussianNoise(Tensor out, long seed, long offset) {
            requireActivation("gaussianNoise", "out", out);
            kernels.gaussianNoise(backend.own("gaussianNoise", "out", out), seed, offset);
        }

        public void flowMatchingInput(Tensor xt, Tensor target, Tensor x0, Tensor noise, Tensor t) {
            String op = "flowMatchingInput";
            requireActivation(op, "x0", x0);
            requireActivation(op, "noise", noise);
            requireSameShape(op, "noise", noise, "x0", x0);
            requireActivation(op, "xt", xt);
            requireSameShape(op, "xt", xt, "x0", x0);
            requireActivation(op, "target", target);
            requireSameShape(op, "target", target, "x0", x0);
            requireDType(op, "t", t, DType.F32);
            if (x0.shape().rank() == 0) {
                throw new IllegalArgumentException(op + ": x0 has no batch dim; got " + describe("x0", x0)
                        + ", expected x0=(B, …)");
            }
            long b = x0.shape().dim(0);
            requireElements(op, "t", t, b);
            T txt = backend.own(op, "xt", xt), ttg = backend.own(op, "target", target);
            T tx0 = backend.own(op, "x0", x0), tn = backend.own(op, "noise", noise), tt = backend.own(op, "t", t);
            AliasChecks<T> alias = backend.alias();
            alias.disjoint(op, "xt", txt, "target", ttg);
            for (int i = 0; i < 2; i++) {
                String name = i == 0 ? "xt" : "target";
                T o = i == 0 ? txt : ttg;
                alias.sameOrDisjoint(op, name, o, "x0", tx0);
                alias.sameOrDisjoint(op, name, o, "noise", tn);
                alias.disjoint(op, name, o, "t", tt);
            }
            kernels.flowMatchingInput(txt, ttg, tx0, tn, tt, new MatrixDims(b, b == 0 ? 0 : x0.numElements() / b));
        }

        public void mseLoss(Tensor loss, Tensor dPred, Tensor pred, Tensor target, float gradScale) {
            String op = "mseLoss";
            requireScalarF32(op, "loss", loss);
            requireActivation(op, "pred", pred);
            requireActivation(op, "target", target);
            requireSameShape(op, "target", target, "pred", pred);
            requireActivation(op, "dPred", dPred);
            requireSameShape(op, "dPred", dPred, "pred", pred);
            if (pred.numElements() == 0) {
                throw new IllegalArgumentException(op + ": empty prediction; got " + describe("pred", pred)
                        + ", expected at least one element");
            }
            T tl = backend.own(op, "loss", loss), td = backend.own(op, "dPred", dPred);
            T tp = backend.own(op, "pred", pred), tt = backend.own(op, "target", target);
            AliasChecks<T> alias = backend.alias();
            alias.disjoint(op, "loss", tl, "dPred", td);
            alias.disjoint(op, "loss", tl, "pred", tp);
            alias.disjoint(op, "loss", tl, "target", tt);
            alias.sameOrDisjoint(op, "dPred", td, "pred", tp);
            alias.sameOrDisjoint(op, "dPred", td, "target", tt);
            kernels.mseLoss(tl, td, tp, tt, gradScale, pred.numElements());
        }
    }
}
