package dev.wanlora.engine.optim;

import java.util.Arrays;

/**
 * bitsandbytes' 8-bit "dynamic" quantization, the state format of its 8-bit optimizers (Dettmers et al., "8-bit
 * Optimizers via Block-wise Quantization", ICLR 2022). The pure math lives here so every backend (CPU reference,
 * CUDA kernel) uses the same maps and the same rounding rule.
 *
 * <p><b>Maps</b> ({@code bitsandbytes/functional.py} {@code create_dynamic_map(signed, max_exponent_bits=7,
 * total_bits=8)}, bitsandbytes commit 95f9af309d4d5793847169c39288dcd3fcbdf564): for exponent i = 0..6, the means of
 * adjacent points of {@code torch.linspace(0.1, 1, n_i)} in float32 (n_i = 2^i + 1 signed, 2^(i+1) + 1 unsigned),
 * scaled by float32(10^(i−6)) (and negated too when signed), plus 0 and 1.0, sorted: 256 float32 values.
 * Signed: −0.99296875 … 0 (code 127) … 1.0 (code 255). Unsigned: 0 (code 0) … 1.0 (code 255).
 * torch's float32 linspace is evaluated as its CPU kernel computes it, {@code start + step·i} below the midpoint and
 * {@code end − step·(n−1−i)} above, with {@code step = (end − start)/(n − 1)} in float32. <b>[uncertain]</b> x86-64 builds
 * of torch compile that kernel with {@code -mfma} (AVX2/AVX512 dispatch), so GCC fuses each expression into one FMA;
 * we evaluate it fused. Evaluated unfused, about 35 of the 256 values move by 1–2 ulp; the difference changes no
 * quantization decision that matters for training, only bit-equality with a bitsandbytes state file.
 *
 * <p><b>Quantization</b> ({@code csrc/kernels.cu} {@code quantize_2D}, used by {@code kOptimizerStatic8bit2StateBlockwise}):
 * x is the value divided by its block's absmax; a 7-step binary walk from pivot 127 finds the bracketing codes and the
 * midpoint rule picks one (see {@link #quantize}). For the signed first moment the kernel then steps one code
 * toward the value's sign if the chosen code's sign bit differs ({@link #quantizeKeepingSign}).
 */
public final class DynamicQuantization {
    private DynamicQuantization() {}

    /** Codes per map (8 bits). */
    public static final int MAP_SIZE = 256;
    /** Index of 0 in the signed map. */
    public static final int SIGNED_ZERO_CODE = 127;

    private static final float[] SIGNED_MAP = createDynamicMap(true);
    private static final float[] UNSIGNED_MAP = createDynamicMap(false);

    /** The signed dynamic map (bitsandbytes' "dynamic"): the first moment's codes. A copy. */
    public static float[] signedMap() {
        return SIGNED_MAP.clone();
    }

    /** The unsigned dynamic map (bitsandbytes' "udynamic"): the second moment's codes. A copy. */
    public static float[] unsignedMap() {
        return UNSIGNED_MAP.clone();
    }

    /** The map value of {@code code} (0..255). */
    public static float signedValue(int code) {
        return SIGNED_MAP[code & 0xff];
    }

    public static float unsignedValue(int code) {
        return UNSIGNED_MAP[code & 0xff];
    }

    /** create_dynamic_map(signed, max_exponent_bits=7, total_bits=8), see the class comment. */
    static float[] createDynamicMap(boolean signed) {
        final int maxExponentBits = 7;
        final int nonSignBits = 7;
        float[] data = new float[MAP_SIZE];
        int n = 0;
        for (int i = 0; i < maxExponentBits; i++) {
            int fractionItems = signed ? (1 << (i + nonSignBits - maxExponentBits)) + 1
                    : (1 << (i + nonSignBits - maxExponentBits + 1)) + 1;
            float[] boundaries = linspaceF32(0.1f, 1f, fractionItems);
            // Python's 10 ** (i − 6) is the double nearest the decimal; torch casts the scalar to float32
            float scale = (float) Double.parseDouble("1e" + (-(maxExponentBits - 1) + i));
            for (int k = 0; k + 1 < boundaries.length; k++) {
                float mean = (boundaries[k] + boundaries[k + 1]) / 2.0f;
                data[n++] = scale * mean;
            }
            if (signed) {
                for (int k = 0; k + 1 < boundaries.length; k++) {
                    float mean = (boundaries[k] + boundaries[k + 1]) / 2.0f;
                    data[n++] = -scale * mean;
                }
            }
        }
        // additional_items = 2^(7−7) − 1 = 0 for 8 bits; then 0 and 1.0; the 256 slots are exactly filled
        data[n++] = 0f;
        data[n++] = 1f;
        if (n != MAP_SIZE) throw new IllegalStateException("createDynamicMap: built " + n + " values, expected 256");
        Arrays.sort(data);
        return data;
    }

    /** torch.linspace(start, end, steps, dtype=float32) on the CPU, each element one fused multiply-add (see above). */
    static float[] linspaceF32(float start, float end, int steps) {
        float step = (end - start) / (float) (steps - 1);
        int halfway = steps / 2;
        float[] out = new float[steps];
        for (int idx = 0; idx < steps; idx++) {
            out[idx] = idx < halfway ? Math.fma(step, (float) idx, start) : Math.fma(-step, (float) (steps - idx - 1), end);
        }
        return out;
    }

    /**
     * bitsandbytes' quantize_2D: the code for x (a value already divided by its block absmax). The walk keeps the
     * last codes passed on either side (lower/upper, initially code 0/255 with values −1 or 0, and 1.0), ends at a
     * pivot, and returns the neighbour on x's side when x is strictly beyond the midpoint, else the pivot. NaN
     * (a zero absmax gives 0/0) walks to code 0, as on the GPU.
     */
    public static int quantize(float[] map, float x, boolean signed) {
        int pivot = 127;
        int upperPivot = 255;
        int lowerPivot = 0;
        float lower = signed ? -1.0f : 0.0f;
        float upper = 1.0f;
        float val = map[pivot];
        for (int i = 64; i > 0; i >>= 1) {
            if (x > val) {
                lowerPivot = pivot;
                lower = val;
                pivot += i;
            } else {
                upperPivot = pivot;
                upper = val;
                pivot -= i;
            }
            val = map[pivot];
        }
        if (x > val) {
            float midpoint = (upper + val) * 0.5f;
            return x > midpoint ? upperPivot : pivot;
        }
        float midpoint = (lower + val) * 0.5f;
        return x < midpoint ? lowerPivot : pivot;
    }

    /**
     * The first moment's code as kOptimizerStatic8bit2StateBlockwise stores it: {@link #quantize} of
     * {@code normalized} in the signed map, then, if the code's value has a different sign bit than {@code value}
     * (e.g. a tiny negative value rounded to the +0 code), one code toward the value's sign (wrapping like the
     * kernel's unsigned char).
     */
    public static int quantizeKeepingSign(float normalized, float value) {
        int code = quantize(SIGNED_MAP, normalized, true);
        if (signBit(SIGNED_MAP[code]) != signBit(value)) code = value > 0f ? code + 1 : code - 1;
        return code & 0xff;
    }

    /** The second moment's code: {@link #quantize} in the unsigned map. */
    public static int quantizeUnsigned(float normalized) {
        return quantize(UNSIGNED_MAP, normalized, false);
    }

    private static boolean signBit(float x) {
        return Float.floatToRawIntBits(x) < 0;
    }
}
