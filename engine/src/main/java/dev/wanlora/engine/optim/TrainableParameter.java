package dev.wanlora.engine.optim;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;

/**
 * One parameter an optimizer updates: its value and its gradient, both F32 of equal shape on the optimizer's
 * backend. {@code name} keys its state in state files (e.g. {@code lora_unet_blocks_0_self_attn_q.lora_down.weight}).
 */
public record TrainableParameter(String name, Tensor value, Tensor grad) {
    public TrainableParameter {
        if (value.dtype() != DType.F32 || grad.dtype() != DType.F32 || !value.shape().equals(grad.shape())) {
            throw new IllegalArgumentException("TrainableParameter " + name + ": value and grad must be F32 of equal shape; got "
                    + value.dtype() + value.shape() + " and " + grad.dtype() + grad.shape());
        }
    }
}
