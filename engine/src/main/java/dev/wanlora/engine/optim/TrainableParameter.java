package dev.wanlora.engine.optim;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;

/**
 * One parameter an optimizer updates: its value and its gradient, both F32 of equal shape on the optimizer's
 * backend. {@code name} keys its state in state files (e.g. {@code lora_unet_blocks_0_self_attn_q.lora_down.weight}).
 * {@code learningRateScale} multiplies the scheduled learning rate for this parameter (LoRA+ puts the lora_up
 * parameters in a group with lr × loraplus_lr_ratio; 1 otherwise).
 */
public record TrainableParameter(String name, Tensor value, Tensor grad, float learningRateScale) {

    public TrainableParameter(String name, Tensor value, Tensor grad) {
        this(name, value, grad, 1f);
    }

    public TrainableParameter {
        if (!(learningRateScale > 0) || Float.isInfinite(learningRateScale)) {
            throw new IllegalArgumentException("TrainableParameter " + name + ": learningRateScale must be positive; got "
                    + learningRateScale);
        }
        if (value.dtype() != DType.F32 || grad.dtype() != DType.F32 || !value.shape().equals(grad.shape())) {
            throw new IllegalArgumentException("TrainableParameter " + name + ": value and grad must be F32 of equal shape; got "
                    + value.dtype() + value.shape() + " and " + grad.dtype() + grad.shape());
        }
    }
}
