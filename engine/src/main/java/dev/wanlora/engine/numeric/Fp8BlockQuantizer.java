package dev.wanlora.engine.numeric;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

/**
 * musubi-tuner's {@code --fp8_scaled} weight quantizer, byte for byte (spec §3.2; musubi
 * {@code src/musubi_tuner/modules/fp8_optimization_utils.py} {@code quantize_weight} L175‑234 and
 * {@code quantize_fp8} L58‑83 at commit 30c658c4f4b0bf05038b3346eff9670259b10fc7, with {@code quantization_mode="block"},
 * {@code block_size=64}, E4M3).
 *
 * <p>For W (out, in) with in % 64 == 0, each row is cut into blocks of 64 input elements and
 * scale = max|W_block| / 448, computed <b>in the weight's dtype</b> (torch divides a bf16 tensor by a Python float in
 * fp32 and rounds the quotient to bf16), clamped to ≥ 1e-8; then W_q = e4m3(clamp(nan→0(W_fp32 / fp32(scale)), ±448))
 * with round-to-nearest-even. Because the scale was rounded, |W/scale| can exceed 448, so the clamp is active. The
 * scales are stored in the weight's dtype with shape (out, in/64, 1). Fallbacks as musubi: per output channel,
 * scale (out, 1), when in % 64 ≠ 0; per tensor, a 0-d scale, when the tensor is not 2-D.
 *
 * <p>{@link #dequantize} reproduces musubi's patched Linear forward: W' = W_q cast to the scale dtype times the
 * scale, the product rounded to that dtype (bf16 for a bf16 checkpoint).
 */
public final class Fp8BlockQuantizer {
    private Fp8BlockQuantizer() {}

    /** musubi's block_size default. */
    public static final int BLOCK_SIZE = 64;
    /** torch.finfo(torch.float8_e4m3fn).max. */
    public static final float E4M3_MAX = 448f;
    /** musubi's "numerical safety" lower bound on the scale. */
    static final float MIN_SCALE = 1e-8f;

    /** How the scales tile the weight. */
    public enum Granularity {
        /** one scale per 64 input elements of each row: scale shape (out, in/64, 1) */
        BLOCK,
        /** one scale per output row: scale shape (out, 1) */
        CHANNEL,
        /** one scale for the whole tensor: a 0-d scale */
        TENSOR
    }

    /**
     * A quantized weight: {@code codes} are the E4M3 bytes in the weight's row-major order; {@code scales} the
     * scale values (already rounded to the weight's dtype) in {@code scaleShape}'s row-major order.
     */
    public record Result(byte[] codes, float[] scales, Granularity granularity, Shape scaleShape) {}

    /** Quantizes a Linear weight (out, in) whose values are exactly representable in {@code weightDtype}. */
    public static Result quantize(float[] weight, int out, int in, DType weightDtype) {
        return quantize(weight, Shape.of(out, in), weightDtype);
    }

    /**
     * Quantizes any tensor: block-wise for 2-D with in % 64 == 0, per channel for other 2-D, per tensor otherwise.
     * weightDtype is F32, BF16 or F16: the dtype the checkpoint stored (and musubi computes the scale in).
     */
    public static Result quantize(float[] weight, Shape shape, DType weightDtype) {
        requireWeightDtype(weightDtype);
        if (weight.length != shape.numElements()) {
            throw new IllegalArgumentException("Fp8BlockQuantizer.quantize: value count does not match the shape; got "
                    + weight.length + " values, expected " + shape.numElements() + " for " + shape);
        }
        Granularity granularity;
        int groupSize;
        Shape scaleShape;
        if (shape.rank() != 2) {
            granularity = Granularity.TENSOR;
            groupSize = weight.length;
            scaleShape = Shape.of();
        } else if (shape.dim(1) % BLOCK_SIZE != 0) {
            granularity = Granularity.CHANNEL;
            groupSize = Math.toIntExact(shape.dim(1));
            scaleShape = Shape.of(shape.dim(0), 1);
        } else {
            granularity = Granularity.BLOCK;
            groupSize = BLOCK_SIZE;
            scaleShape = Shape.of(shape.dim(0), shape.dim(1) / BLOCK_SIZE, 1);
        }
        // Every granularity is a run of contiguous groups in row-major order, one scale per group.
        int groups = groupSize == 0 ? 0 : weight.length / groupSize;
        float[] scales = new float[granularity == Granularity.TENSOR ? 1 : groups];
        byte[] codes = new byte[weight.length];
        for (int g = 0; g < scales.length; g++) {
            int begin = g * groupSize;
            float max = 0f;
            for (int i = begin; i < begin + groupSize; i++) max = Math.max(max, Math.abs(weight[i]));
            float scale = Math.max(roundTo(weightDtype, max / E4M3_MAX), roundTo(weightDtype, MIN_SCALE));
            scales[g] = scale;
            for (int i = begin; i < begin + groupSize; i++) codes[i] = Fp8.e4m3FromFloat(clampScaled(weight[i] / scale));
        }
        return new Result(codes, scales, granularity, scaleShape);
    }

    /**
     * musubi's dequantized weight W' (out, in) for a {@link Result} of a weight of {@code shape}: bf16/fp16/fp32 of
     * (W_q in the scale dtype × scale), the scale dtype being the weight dtype the result was made from.
     */
    public static float[] dequantize(Result q, Shape shape, DType weightDtype) {
        requireWeightDtype(weightDtype);
        int groupSize = switch (q.granularity()) {
            case BLOCK -> BLOCK_SIZE;
            case CHANNEL -> Math.toIntExact(shape.dim(1));
            case TENSOR -> q.codes().length;
        };
        float[] w = new float[q.codes().length];
        for (int i = 0; i < w.length; i++) {
            // e4m3 → bf16/fp16/fp32 is exact, and so is the fp32 product of the two short mantissas: one rounding
            w[i] = roundTo(weightDtype, Fp8.e4m3ToFloat(q.codes()[i]) * q.scales()[i / groupSize]);
        }
        return w;
    }

    /** musubi's quantize_fp8 before the cast: nan_to_num(x, 0) (±inf → ±float max), then clamp to ±448. */
    private static float clampScaled(float x) {
        if (Float.isNaN(x)) return 0f;
        return Math.min(Math.max(x, -E4M3_MAX), E4M3_MAX);
    }

    private static float roundTo(DType dtype, float x) {
        return switch (dtype) {
            case BF16 -> Bf16.round(x);
            case F16 -> Fp16.round(x);
            default -> x;
        };
    }

    private static void requireWeightDtype(DType dtype) {
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.F16) {
            throw new UnsupportedOperationException("Fp8BlockQuantizer: cannot quantize a " + dtype
                    + " weight; supported: F32, BF16, F16 (musubi refuses --fp8_scaled for fp8 checkpoints)");
        }
    }
}
