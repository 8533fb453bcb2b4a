package dev.wanlora.models.lora;

import dev.wanlora.engine.tensor.DType;

import java.util.Locale;

/**
 * musubi's {@code --save_precision} (choices float, fp32, fp16, bf16; default fp32, the precision LoRA weights are
 * trained in): the dtype of every tensor of a saved LoRA, alpha included (musubi {@code networks/lora.py}
 * {@code save_weights} converts the whole state dict).
 */
public enum SavePrecision {
    FP32(DType.F32),
    FP16(DType.F16),
    BF16(DType.BF16);

    private final DType dtype;

    SavePrecision(DType dtype) {
        this.dtype = dtype;
    }

    public DType dtype() {
        return dtype;
    }

    /** Parses a {@code --save_precision} value; null means the default fp32. */
    public static SavePrecision fromFlag(String value) {
        if (value == null) return FP32;
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "float", "fp32" -> FP32;
            case "fp16" -> FP16;
            case "bf16" -> BF16;
            default -> throw new IllegalArgumentException("--save_precision: unsupported value; got '" + value
                    + "', expected one of float, fp32, fp16, bf16");
        };
    }
}
