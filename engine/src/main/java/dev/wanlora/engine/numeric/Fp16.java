package dev.wanlora.engine.numeric;

/** IEEE half ↔ float32 conversion (Java's {@link Float#float16ToFloat}, round-to-nearest-even both ways). */
public final class Fp16 {
    private Fp16() {}

    public static short fromFloat(float f) { return Float.floatToFloat16(f); }

    public static float toFloat(short h) { return Float.float16ToFloat(h); }

    public static float round(float f) { return toFloat(fromFloat(f)); }
}
