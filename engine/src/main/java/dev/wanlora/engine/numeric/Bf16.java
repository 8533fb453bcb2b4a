package dev.wanlora.engine.numeric;

/**
 * bfloat16 ↔ float32 conversion, the one place it is written (STYLE.md §10). Narrowing rounds to nearest even
 * like torch's {@code .to(torch.bfloat16)}; NaN stays NaN (quiet), ±Inf and overflow behave as IEEE rounding does.
 */
public final class Bf16 {
    private Bf16() {}

    /** The bf16 bit pattern nearest to f (round to nearest even). */
    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x0040); // NaN: keep sign and payload top, force quiet bit
        }
        int lsb = (bits >>> 16) & 1;
        bits += 0x7fff + lsb;
        return (short) (bits >>> 16);
    }

    /** The float with the same value as the bf16 bit pattern h (exact). */
    public static float toFloat(short h) {
        return Float.intBitsToFloat((h & 0xffff) << 16);
    }

    /** f rounded to the nearest bf16 value, as a float. */
    public static float round(float f) {
        return toFloat(fromFloat(f));
    }

    /** Rounds every element in place. */
    public static void roundInPlace(float[] a) {
        for (int i = 0; i < a.length; i++) a[i] = round(a[i]);
    }
}
