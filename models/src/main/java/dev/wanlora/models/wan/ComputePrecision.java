package dev.wanlora.models.wan;

import dev.wanlora.engine.tensor.DType;

/**
 * Where the DiT rounds. The op sequence is the same in both policies; only the storage dtype of activations (and
 * therefore where values are rounded, since every {@code Backend} op computes in fp32 and rounds on store) differs.
 */
public enum ComputePrecision {
    /**
     * Everything in float32: weights widened to F32 (exact), every activation and activation gradient F32. This is the
     * math of {@code golden/wan-tiny/fp32.safetensors}; used to prove the implementation, and by the CPU backend.
     */
    FP32(DType.F32),
    /**
     * musubi's bf16 training path (spec §1.7): bf16 weights, bf16 residual stream re-rounded after every sub-block,
     * LayerNorm output rounded to bf16 and the modulated input rounded again before each Linear, RMSNorm's double
     * rounding, bf16 attention and head input; time embedding, modulation, norm statistics, RoPE factors, LoRA
     * parameters and gradients stay fp32. Matches {@code golden/wan-tiny/bf16.safetensors}.
     */
    BF16_MUSUBI(DType.BF16);

    private final DType activationDType;

    ComputePrecision(DType activationDType) {
        this.activationDType = activationDType;
    }

    /** Storage dtype of activations, activation gradients and (non-fp8) weights. */
    public DType activationDType() { return activationDType; }
}
