package dev.wanlora.engine.tensor;

import java.util.Locale;

/**
 * Element types wanlora stores. Names and sizes follow the safetensors dtype strings, so a header's dtype maps
 * here with {@link #fromSafetensors(String)}; {@link #torchName()} is the short torch name musubi puts in cache
 * keys ({@code latents_21x60x104_bfloat16}).
 */
public enum DType {
    F64("F64", "float64", 8, true),
    F32("F32", "float32", 4, true),
    F16("F16", "float16", 2, true),
    BF16("BF16", "bfloat16", 2, true),
    F8_E4M3("F8_E4M3", "float8_e4m3fn", 1, true),
    F8_E5M2("F8_E5M2", "float8_e5m2", 1, true),
    I64("I64", "int64", 8, false),
    I32("I32", "int32", 4, false),
    I16("I16", "int16", 2, false),
    I8("I8", "int8", 1, false),
    U8("U8", "uint8", 1, false),
    BOOL("BOOL", "bool", 1, false);

    private final String safetensorsName;
    private final String torchName;
    private final int sizeBytes;
    private final boolean isFloatingPoint;

    DType(String safetensorsName, String torchName, int sizeBytes, boolean isFloatingPoint) {
        this.safetensorsName = safetensorsName;
        this.torchName = torchName;
        this.sizeBytes = sizeBytes;
        this.isFloatingPoint = isFloatingPoint;
    }

    public String safetensorsName() { return safetensorsName; }

    public String torchName() { return torchName; }

    public int sizeBytes() { return sizeBytes; }

    public boolean isFloatingPoint() { return isFloatingPoint; }

    /** The dtype for a safetensors header string, or null when the string is not one of ours. */
    public static DType fromSafetensors(String name) {
        for (DType t : values()) {
            if (t.safetensorsName.equals(name)) return t;
        }
        return null;
    }

    /** The dtype for a torch short name as used in musubi cache keys ("bfloat16", "float32", ...), or null. */
    public static DType fromTorchName(String name) {
        String n = name.toLowerCase(Locale.ROOT);
        for (DType t : values()) {
            if (t.torchName.equals(n)) return t;
        }
        return switch (n) {
            case "float", "fp32" -> F32;
            case "half", "fp16" -> F16;
            case "bf16" -> BF16;
            default -> null;
        };
    }
}
