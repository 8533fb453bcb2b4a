package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.List;

/**
 * Global-norm gradient clipping as {@code torch.nn.utils.clip_grad_norm_} (musubi's {@code --max_grad_norm},
 * default 1.0, 0 disables), computed on the device without a host synchronization: the squared L2 norm over all
 * gradients, then the coefficient min(1, maxNorm/(‖g‖ + 1e-6)) that the optimizer multiplies every gradient by
 * (its {@code gradScale}). With maxNorm ≤ 0 the coefficient is 1; the norm is still computed for logging.
 */
public final class GradClip implements AutoCloseable {
    private final Backend backend;
    private final float maxNorm;
    private final Tensor normSquared; // (1) F32: Σ g² over every gradient of the last call
    private final Tensor coefficient; // (1) F32: the clip factor of the last call

    public GradClip(Backend backend, float maxNorm) {
        this.backend = backend;
        this.maxNorm = maxNorm;
        this.normSquared = backend.allocate(DType.F32, Shape.of(1));
        this.coefficient = backend.allocate(DType.F32, Shape.of(1));
    }

    /** Computes ‖g‖² over {@code grads} and the clip coefficient; returns the coefficient (1) F32 to pass as gradScale. */
    public Tensor coefficient(List<Tensor> grads) {
        backend.fill(normSquared, 0f);
        for (Tensor g : grads) backend.sumOfSquares(normSquared, g);
        backend.clipCoefficient(coefficient, normSquared, maxNorm);
        return coefficient;
    }

    /** Σ g² of the last {@link #coefficient} call, (1) F32; the pre-clip norm is its square root. */
    public Tensor normSquared() {
        return normSquared;
    }

    @Override
    public void close() {
        normSquared.close();
        coefficient.close();
    }
}
