package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.List;

/**
 * One training step's loss and backward through a {@link WanDit}, for the model's tests: the flow-matching MSE seeded
 * into {@link WanDit#predictionGradient()}, then {@link WanDit#backward}, the ops and order of pipeline's
 * {@code FlowMatchingObjective} (which models cannot import).
 */
final class TrainingSteps {
    private TrainingSteps() {}

    /** Returns the loss (one float); the LoRA gradients are accumulated (+= gradScale·d loss). */
    static float[] lossAndBackward(Backend backend, WanDit dit, Tensor xt, Tensor timesteps, List<Tensor> contexts,
                                   Tensor target, BlockAdapters lora, float gradScale) {
        try (Tensor loss = backend.allocate(DType.F32, Shape.of(1))) {
            Tensor pred = dit.trainingForward(xt, timesteps, contexts, lora);
            backend.mseLoss(loss, dit.predictionGradient(), pred, target, gradScale);
            dit.backward(lora);
            return backend.toFloats(loss);
        }
    }
}
