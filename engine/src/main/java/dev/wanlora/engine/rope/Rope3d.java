package dev.wanlora.engine.rope;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

/**
 * Wan's 3D rotary position tables (spec §1.4; upstream {@code rope_params} and {@code rope_apply} in
 * https://github.com/Wan-Video/Wan2.1/blob/9737cba9c1c3c4d04b33fcad41c111989865d315/wan/modules/model.py#L31-L70).
 * Token l = (f·H' + h)·W' + w of a (F, H', W') grid gets, for each of the D/2 interleaved pairs j of a head, the angle
 * <ul>
 * <li>f·10000^(−2j/Df) for the first c − 2⌊c/3⌋ pairs (c = D/2; frame axis, Df = D − 4⌊D/6⌋),</li>
 * <li>h·10000^(−2j'/Dh) for the next ⌊c/3⌋ pairs (height axis, Dh = 2⌊D/6⌋, j' counted from 0 in the group),</li>
 * <li>w·10000^(−2j'/Dh) for the last ⌊c/3⌋ pairs (width axis).</li>
 * </ul>
 * For Wan's D = 128: pairs 0–21 with base 44, 22–42 and 43–63 with base 42. Positions start at 0. Angles, cosines
 * and sines are computed in float64 like upstream, then stored as F32 tables (L, D/2) for {@code Backend.rope}.
 */
public final class Rope3d {
    private Rope3d() {}

    /** The (L, D/2) F32 cos and sin tables of one grid; closing closes both. */
    public record Tables(Tensor cos, Tensor sin) implements AutoCloseable {
        @Override
        public void close() {
            cos.close();
            sin.close();
        }
    }

    /** Tables for a grid of frames × height × width tokens (post-patchify sizes H' = H/2, W' = W/2). */
    public static Tables build(Backend backend, int frames, int height, int width, int headDim) {
        float[][] cosSin = values(frames, height, width, headDim);
        Shape shape = Shape.of((long) frames * height * width, headDim / 2);
        return new Tables(backend.fromFloats(DType.F32, shape, cosSin[0]), backend.fromFloats(DType.F32, shape, cosSin[1]));
    }

    /** {@link #build}'s tables written into tensors allocated by the caller ((L, D/2) F32 each), without allocating. */
    public static void write(Backend backend, Tables tables, int frames, int height, int width, int headDim) {
        float[][] cosSin = values(frames, height, width, headDim);
        backend.write(tables.cos(), cosSin[0]);
        backend.write(tables.sin(), cosSin[1]);
    }

    /** {cos, sin} of {@link #angles}, rounded once to float. */
    private static float[][] values(int frames, int height, int width, int headDim) {
        double[] angles = angles(frames, height, width, headDim);
        float[] cos = new float[angles.length], sin = new float[angles.length];
        for (int i = 0; i < angles.length; i++) {
            cos[i] = (float) Math.cos(angles[i]);
            sin[i] = (float) Math.sin(angles[i]);
        }
        return new float[][] {cos, sin};
    }

    /** The (L, D/2) rotation angles in float64, row-major. */
    public static double[] angles(int frames, int height, int width, int headDim) {
        if (headDim <= 0 || headDim % 2 != 0 || frames < 0 || height < 0 || width < 0) {
            throw new IllegalArgumentException("Rope3d: invalid grid or head dim; got frames=" + frames + ", height="
                    + height + ", width=" + width + ", headDim=" + headDim
                    + ", expected non-negative sizes and a positive even head dim");
        }
        int half = headDim / 2;
        int spatialPairs = half / 3, framePairs = half - 2 * spatialPairs;
        int frameBase = headDim - 4 * (headDim / 6), spatialBase = 2 * (headDim / 6);
        long tokens = (long) frames * height * width;
        double[] out = new double[Math.toIntExact(Math.multiplyExact(tokens, half))];
        for (int f = 0; f < frames; f++) {
            for (int h = 0; h < height; h++) {
                for (int w = 0; w < width; w++) {
                    int row = ((f * height + h) * width + w) * half;
                    for (int j = 0; j < framePairs; j++) out[row + j] = f * inverseFrequency(j, frameBase);
                    for (int j = 0; j < spatialPairs; j++) {
                        out[row + framePairs + j] = h * inverseFrequency(j, spatialBase);
                        out[row + framePairs + spatialPairs + j] = w * inverseFrequency(j, spatialBase);
                    }
                }
            }
        }
        return out;
    }

    /** 1 / 10000^(2j/dim), as upstream's {@code 1.0 / torch.pow(theta, arange(0, dim, 2).div(dim))} in float64. */
    private static double inverseFrequency(int j, int dim) {
        return 1.0 / Math.pow(10000, (2.0 * j) / dim);
    }
}
