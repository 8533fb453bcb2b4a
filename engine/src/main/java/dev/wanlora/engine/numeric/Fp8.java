package dev.wanlora.engine.numeric;

/**
 * The two fp8 formats of safetensors/torch, decoded exactly and encoded with round-to-nearest-even as torch's
 * {@code .to(float8_*)} does (c10/util/Float8_e4m3fn.h and Float8_e5m2.h, {@code fp8e4m3fn_from_fp32_value} and
 * {@code fp8e5m2_from_fp32_value}).
 * <ul>
 * <li>E4M3 ("fn": finite, no infinities): bias 7, max 448, 0x7f/0xff are NaN. torch does <b>not</b> saturate: the
 * step above 448 would be 480, so 448 &lt; |x| ≤ 464 (up to the midpoint, a tie going to 448's even mantissa)
 * rounds to ±448, and |x| &gt; 464, ±Inf and NaN all become NaN (0x7f with the sign). Callers that need saturation
 * clamp to ±448 first, as musubi's quantizer does (spec §3.2).</li>
 * <li>E5M2: bias 15, IEEE-like with ±Inf (0x7c) and NaN (0x7d–0x7f), max 57344; |x| ≥ 61440 (the midpoint to
 * 65536, a tie going up because 57344's mantissa is odd) rounds to ±Inf; NaN becomes 0x7f with the sign.</li>
 * </ul>
 * Subnormals (E4M3 below 2^-6, E5M2 below 2^-14) are encoded and decoded exactly.
 */
public final class Fp8 {
    private Fp8() {}

    private static final float[] E4M3_TABLE = new float[256];
    private static final float[] E5M2_TABLE = new float[256];

    static {
        for (int b = 0; b < 256; b++) {
            E4M3_TABLE[b] = decode(b, 4, 3, 7, false);
            E5M2_TABLE[b] = decode(b, 5, 2, 15, true);
        }
    }

    private static float decode(int b, int expBits, int manBits, int bias, boolean ieee) {
        int sign = (b >>> 7) & 1;
        int exp = (b >>> manBits) & ((1 << expBits) - 1);
        int man = b & ((1 << manBits) - 1);
        int maxExp = (1 << expBits) - 1;
        float v;
        if ((ieee && exp == maxExp && man != 0) || (!ieee && exp == maxExp && man == (1 << manBits) - 1)) {
            return Float.intBitsToFloat(sign << 31 | 0x7fc00000); // NaN with the code's sign (negating NaN is not guaranteed to)
        } else if (ieee && exp == maxExp) {
            v = Float.POSITIVE_INFINITY;
        } else if (exp == 0) {
            v = (float) (man * Math.pow(2, 1 - bias - manBits));
        } else {
            v = (float) ((1 + man / (double) (1 << manBits)) * Math.pow(2, exp - bias));
        }
        return sign == 1 ? -v : v;
    }

    public static float e4m3ToFloat(byte b) { return E4M3_TABLE[b & 0xff]; }

    public static float e5m2ToFloat(byte b) { return E5M2_TABLE[b & 0xff]; }

    /** Nearest E4M3 code (ties to even); NaN, ±Inf and |x| &gt; 464 → NaN (0x7f, sign kept), see the class comment. */
    public static byte e4m3FromFloat(float x) {
        return encode(x, E4M3_TABLE, (byte) 0x7f);
    }

    /** Nearest E5M2 code (ties to even); NaN → 0x7f (sign kept); |x| ≥ 61440 → ±Inf. */
    public static byte e5m2FromFloat(float x) {
        return encode(x, E5M2_TABLE, (byte) 0x7f);
    }

    /**
     * Round-to-nearest-even by search over the finite positive codes (0x00..0x7e/0x7b). Exact: both neighbours are
     * found in the table and the tie rule picks the even mantissa (even code).
     */
    private static byte encode(float x, float[] table, byte nanCode) {
        if (Float.isNaN(x)) return (byte) (nanCode | (Float.floatToRawIntBits(x) < 0 ? 0x80 : 0));
        int sign = (Float.floatToRawIntBits(x) < 0) ? 0x80 : 0;
        float a = Math.abs(x);
        boolean ieee = table == E5M2_TABLE;
        int maxFinite = ieee ? 0x7b : 0x7e;
        float max = table[maxFinite];
        if (a > max) {
            // Rounding midpoint between max and the next (unrepresentable) step: max + ulp/2.
            float ulp = max - table[maxFinite - 1];
            if (a < max + ulp / 2 || (a == max + ulp / 2 && (maxFinite & 1) == 0)) return (byte) (sign | maxFinite);
            return (byte) (sign | (ieee ? 0x7c : 0x7f)); // Inf for e5m2, NaN for e4m3fn
        }
        int lo = 0, hi = maxFinite;
        while (lo < hi) { // first code whose value >= a
            int mid = (lo + hi) >>> 1;
            if (table[mid] < a) lo = mid + 1; else hi = mid;
        }
        int code = lo;
        if (code > 0 && table[code] != a) {
            float up = table[code], down = table[code - 1];
            float dUp = up - a, dDown = a - down;
            if (dDown < dUp || (dDown == dUp && ((code - 1) & 1) == 0)) code = code - 1;
        }
        return (byte) (sign | code);
    }
}
