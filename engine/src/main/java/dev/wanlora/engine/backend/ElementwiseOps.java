package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.*;

/**
 * The elementwise family of {@link Backend}: activations, sums and scaling. Contracts, their checks ({@link Checked},
 * once for every backend) and the hooks a backend implements ({@link Kernels}); the recipe is in {@link Backend}'s
 * class comment.
 */
public interface ElementwiseOps {

    /** This backend's checked elementwise ops; the defaults below forward here. */
    Checked<?> elementwiseOps();

    /** out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (torch GELU approximate="tanh"). out may be x. */
    default void geluTanh(Tensor out, Tensor x) { elementwiseOps().geluTanh(out, x); }

    /** dx = dOut·gelu'(x) (=). dx may be dOut. */
    default void geluTanhBackward(Tensor dx, Tensor dOut, Tensor x) { elementwiseOps().geluTanhBackward(dx, dOut, x); }

    /** out = x·sigmoid(x). out may be x. */
    default void silu(Tensor out, Tensor x) { elementwiseOps().silu(out, x); }

    /** out = a + b, elementwise, equal element counts. out may alias a or b. */
    default void add(Tensor out, Tensor a, Tensor b) { elementwiseOps().add(out, a, b); }

    /** out[r, c] = x[r, c] + v[c]: a row vector broadcast over rows. out may be x. */
    default void addRowVector(Tensor out, Tensor x, Tensor v) { elementwiseOps().addRowVector(out, x, v); }

    /** out = alpha·x. out may be x. */
    default void scale(Tensor out, Tensor x, float alpha) { elementwiseOps().scale(out, x, alpha); }

    /**
     * T5's gated-GELU product: out = x·g with g = gelu_tanh(gate) rounded to out's dtype first (musubi's bf16 path
     * stores the GELU before multiplying), the product rounded again. Equal element counts; out may be x or gate.
     */
    default void gatedGelu(Tensor out, Tensor gate, Tensor x) { elementwiseOps().gatedGelu(out, gate, x); }

    /** A backend's elementwise family, called by {@link Checked} with checked arguments of the backend's tensor type. */
    interface Kernels<T extends Tensor> {
        void geluTanh(T out, T x);
        void geluTanhBackward(T dx, T dOut, T x);
        void silu(T out, T x);
        void add(T out, T a, T b);
        void addRowVector(T out, T x, T v, MatrixDims dims);
        void scale(T out, T x, float alpha);
        void gatedGelu(T out, T gate, T x);
    }

    /** The checks of every elementwise op (counts, dtypes, ownership, aliasing), then the backend's {@link Kernels}. */
    final class Checked<T extends Tensor> {
        private final CheckedBackend<T> backend;
        private final Kernels<T> kernels;

        public Checked(CheckedBackend<T> backend, Kernels<T> kernels) {
            this.backend = backend;
            this.kernels = kernels;
        }

        public void geluTanh(Tensor out, Tensor x) {
            String op = "geluTanh";
            sameCount(op, "out", out, "x", x);
            T to = backend.own(op, "out", out), tx = backend.own(op, "x", x);
            backend.alias().sameOrDisjoint(op, "out", to, "x", tx);
            kernels.geluTanh(to, tx);
        }

        public void geluTanhBackward(Tensor dx, Tensor dOut, Tensor x) {
            String op = "geluTanhBackward";
            sameCount(op, "dx", dx, "x", x);
            sameCount(op, "dOut", dOut, "x", x);
            T tdx = backend.own(op, "dx", dx), tdo = backend.own(op, "dOut", dOut), tx = backend.own(op, "x", x);
            backend.alias().sameOrDisjoint(op, "dx", tdx, "dOut", tdo);
            backend.alias().sameOrDisjoint(op, "dx", tdx, "x", tx);
            kernels.geluTanhBackward(tdx, tdo, tx);
        }

        public void silu(Tensor out, Tensor x) {
            String op = "silu";
            sameCount(op, "out", out, "x", x);
            T to = backend.own(op, "out", out), tx = backend.own(op, "x", x);
            backend.alias().sameOrDisjoint(op, "out", to, "x", tx);
            kernels.silu(to, tx);
        }

        public void add(Tensor out, Tensor a, Tensor b) {
            String op = "add";
            sameCount(op, "out", out, "a", a);
            sameCount(op, "out", out, "b", b);
            T to = backend.own(op, "out", out), ta = backend.own(op, "a", a), tb = backend.own(op, "b", b);
            backend.alias().sameOrDisjoint(op, "out", to, "a", ta);
            backend.alias().sameOrDisjoint(op, "out", to, "b", tb);
            kernels.add(to, ta, tb);
        }

        public void addRowVector(Tensor out, Tensor x, Tensor v) {
            String op = "addRowVector";
            requireActivation(op, "x", x);
            requireActivation(op, "out", out);
            requireSameShape(op, "out", out, "x", x);
            requireActivation(op, "v", v);
            requireElements(op, "v", v, x.shape().cols());
            T to = backend.own(op, "out", out), tx = backend.own(op, "x", x), tv = backend.own(op, "v", v);
            backend.alias().sameOrDisjoint(op, "out", to, "x", tx);
            backend.alias().disjoint(op, "out", to, "v", tv);
            kernels.addRowVector(to, tx, tv, new MatrixDims(x.shape().rows(), x.shape().cols()));
        }

        public void scale(Tensor out, Tensor x, float alpha) {
            String op = "scale";
            sameCount(op, "out", out, "x", x);
            T to = backend.own(op, "out", out), tx = backend.own(op, "x", x);
            backend.alias().sameOrDisjoint(op, "out", to, "x", tx);
            kernels.scale(to, tx, alpha);
        }

        public void gatedGelu(Tensor out, Tensor gate, Tensor x) {
            String op = "gatedGelu";
            sameCount(op, "out", out, "x", x);
            sameCount(op, "out", out, "gate", gate);
            T to = backend.own(op, "out", out), tg = backend.own(op, "gate", gate), tx = backend.own(op, "x", x);
            backend.alias().sameOrDisjoint(op, "out", to, "x", tx);
            backend.alias().sameOrDisjoint(op, "out", to, "gate", tg);
            kernels.gatedGelu(to, tg, tx);
        }
    }
}
