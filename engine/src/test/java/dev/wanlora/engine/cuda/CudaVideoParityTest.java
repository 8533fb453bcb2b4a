package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.Backend.ConvGeometry;
import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * CUDA vs CPU for the VAE's video ops: conv3d over the geometries the VAE uses (3³ causal with a 2-frame cache, the
 * Conv2d 3×3, downsample2d's stride 2 with (0, 1) padding, downsample3d's time stride 2 after a 1-frame cache, 1×1)
 * on ragged tiny shapes (odd channels, Cout crossing the 64-wide tile), and the real decoder 384→384 3³ conv of one
 * latent frame at 60×104. In bf16 the cases with Cin % 8 == 0 (and the real one) run the tensor-core kernels (the
 * 128×96 tile where Cout % 96 == 0, as the real one), the others the CUDA-core kernel, which f32 always uses; upsampleNearest2x (exact) and softmax, tiny and real (the middle attention's 6240 tokens).
 * Bounds as {@link Parity}: conv sums ≤ 10368 fp32 products (≲ 1e-6 relative on average), bf16 outputs one rounding.
 */
@RequiresCuda
class CudaVideoParityTest {
    private record Case(String name, Shape cache, Shape x, Shape weight, ConvGeometry g, Shape out) {}

    private static final Case[] CASES = {
            new Case("causal 3x3x3", Shape.of(2, 5, 7, 3), Shape.of(1, 5, 7, 3), Shape.of(5, 3, 3, 3, 3),
                    ConvGeometry.same(1), Shape.of(1, 5, 7, 5)),
            new Case("causal 3x3x3, 4 frames, Cout 70", Shape.of(2, 3, 9, 13), Shape.of(4, 3, 9, 13),
                    Shape.of(70, 3, 3, 3, 13), ConvGeometry.same(1), Shape.of(4, 3, 9, 70)),
            new Case("conv2d 3x3", null, Shape.of(2, 6, 10, 7), Shape.of(9, 1, 3, 3, 7), ConvGeometry.same(1),
                    Shape.of(2, 6, 10, 9)),
            new Case("downsample2d", null, Shape.of(2, 6, 10, 7), Shape.of(7, 1, 3, 3, 7), new ConvGeometry(1, 2, 0, 1),
                    Shape.of(2, 3, 5, 7)),
            new Case("downsample3d time_conv", Shape.of(1, 4, 6, 8), Shape.of(4, 4, 6, 8), Shape.of(8, 3, 1, 1, 8),
                    new ConvGeometry(2, 1, 0, 0), Shape.of(2, 4, 6, 8)),
            new Case("upsample3d time_conv half", Shape.of(2, 4, 6, 11), Shape.of(1, 4, 6, 11), Shape.of(11, 3, 1, 1, 11),
                    ConvGeometry.same(0), Shape.of(1, 4, 6, 11)),
            new Case("1x1x1", null, Shape.of(3, 4, 5, 16), Shape.of(16, 1, 1, 1, 16), ConvGeometry.same(0),
                    Shape.of(3, 4, 5, 16)),
            // Cin % 8 == 0: bf16 runs on tensor cores (partial 128×64 tiles, K not a multiple of the 32-wide K tile).
            new Case("causal 3x3x3, Cin 16, Cout 70", Shape.of(2, 7, 9, 16), Shape.of(2, 7, 9, 16),
                    Shape.of(70, 3, 3, 3, 16), ConvGeometry.same(1), Shape.of(2, 7, 9, 70)),
            new Case("causal 3x3x3, Cin 24, Cout 3 (head)", Shape.of(2, 11, 13, 24), Shape.of(4, 11, 13, 24),
                    Shape.of(3, 3, 3, 3, 24), ConvGeometry.same(1), Shape.of(4, 11, 13, 3)),
            new Case("downsample2d, Cin 40", null, Shape.of(1, 10, 14, 40), Shape.of(40, 1, 3, 3, 40),
                    new ConvGeometry(1, 2, 0, 1), Shape.of(1, 5, 7, 40)),
            new Case("conv2d 3x3, Cin 64, 300 positions", null, Shape.of(3, 10, 10, 64), Shape.of(32, 1, 3, 3, 64),
                    ConvGeometry.same(1), Shape.of(3, 10, 10, 32)),
            // Cout % 96 == 0: the 128×96 tile.
            new Case("causal 3x3x3, Cin 32, Cout 192 (wide tile)", Shape.of(2, 9, 17, 32), Shape.of(1, 9, 17, 32),
                    Shape.of(192, 3, 3, 3, 32), ConvGeometry.same(1), Shape.of(1, 9, 17, 192)),
            new Case("conv2d 3x3, Cin 96, Cout 96 (wide tile)", null, Shape.of(2, 8, 12, 96), Shape.of(96, 1, 3, 3, 96),
                    ConvGeometry.same(1), Shape.of(2, 8, 12, 96)),
    };

    @Test
    void conv3dTinyShapes() {
        for (DType dtype : new DType[] {F32, BF16}) {
            for (Case c : CASES) {
                for (DType biasType : new DType[] {null, F32, BF16}) {
                    // Weights ~ N(0, 1/fan_in) keep outputs O(1), as in the VAE.
                    double scale = 1 / Math.sqrt(c.weight.numElements() / (double) c.weight.dim(0));
                    Pair cache = c.cache == null ? null : random(dtype, c.cache, 1, 1);
                    Pair x = random(dtype, c.x, 2, 1), w = random(dtype, c.weight, 3, scale);
                    Pair b = biasType == null ? null : random(biasType, Shape.of(c.weight.dim(0)), 4, 0.1);
                    Pair out = output(dtype, c.out);
                    CPU.conv3d(out.cpu(), cache == null ? null : cache.cpu(), x.cpu(), w.cpu(), b == null ? null : b.cpu(), c.g);
                    cuda().conv3d(out.cuda(), cache == null ? null : cache.cuda(), x.cuda(), w.cuda(),
                            b == null ? null : b.cuda(), c.g);
                    check(label("conv3d", dtype, "x", c.x) + "," + c.name + ",bias=" + biasType, out);
                    closeAll(cache, x, w, b, out);
                }
            }
        }
    }

    /**
     * decoder.middle's 384→384 3³ conv on one latent frame at 60×104 (832×480 video) after a 2-frame cache: K = 10368.
     * The CPU reference of all 2.4M outputs would take minutes, so it is computed in double at 4096 random
     * (position, channel) samples from the same bf16 inputs; the GPU result is rounded to bf16 once, so the samples
     * differ by ≤ 1 bf16 ulp plus fp32 summation noise: relL2 ≤ 5e-3 as {@link Parity#BF16}.
     */
    @Test
    void conv3dRealDecoderShape() {
        int h = 60, w = 104, c = 384;
        Shape cacheShape = Shape.of(2, h, w, c), xShape = Shape.of(1, h, w, c), wShape = Shape.of(c, 3, 3, 3, c);
        float[] cache = round(gaussian((int) cacheShape.numElements(), 5, 1));
        float[] x = round(gaussian((int) xShape.numElements(), 6, 1));
        float[] weight = round(gaussian((int) wShape.numElements(), 7, 1 / Math.sqrt(27.0 * c)));
        float[] bias = gaussian(c, 8, 0.1);
        var backend = cuda();
        try (var cc = backend.fromFloats(BF16, cacheShape, cache); var cx = backend.fromFloats(BF16, xShape, x);
             var cw = backend.fromFloats(BF16, wShape, weight); var cb = backend.fromFloats(F32, Shape.of(c), bias);
             var out = backend.allocate(BF16, Shape.of(1, h, w, c))) {
            backend.conv3d(out, cc, cx, cw, cb, ConvGeometry.same(1));
            float[] gpu = backend.toFloats(out);
            SplittableRandom r = new SplittableRandom(9);
            int samples = 4096;
            float[] expected = new float[samples], actual = new float[samples];
            for (int s = 0; s < samples; s++) {
                int oh = r.nextInt(h), ow = r.nextInt(w), o = r.nextInt(c);
                double acc = bias[o];
                for (int dt = 0; dt < 3; dt++) {
                    float[] src = dt < 2 ? cache : x;
                    int frame = dt < 2 ? dt : 0;
                    for (int dh = 0; dh < 3; dh++) {
                        int ih = oh + dh - 1;
                        if (ih < 0 || ih >= h) continue;
                        for (int dw = 0; dw < 3; dw++) {
                            int iw = ow + dw - 1;
                            if (iw < 0 || iw >= w) continue;
                            int in = ((frame * h + ih) * w + iw) * c, wb = ((o * 3 + dt) * 3 + dh) * 3 * c + dw * c;
                            for (int i = 0; i < c; i++) acc += (double) weight[wb + i] * src[in + i];
                        }
                    }
                }
                expected[s] = (float) acc;
                actual[s] = gpu[(oh * w + ow) * c + o];
            }
            ErrorStats stats = ErrorStats.compare(actual, expected);
            boolean ok = stats.relL2() <= Parity.BF16;
            System.out.println(label("conv3d", BF16, "x", xShape) + ",real decoder 384x384 3x3x3, 4096 samples "
                    + stats.describe(Parity.BF16) + (ok ? " OK" : " FAIL"));
            assertTrue(ok, "relL2 " + stats.relL2());
        }
    }

    @Test
    void upsampleNearest2xIsExact() {
        for (DType dtype : new DType[] {F32, BF16}) {
            for (Shape s : new Shape[] {Shape.of(1, 3, 5, 7), Shape.of(2, 120, 208, 192)}) {
                Pair x = random(dtype, s, 11, 1), out = output(dtype, Shape.of(s.dim(0), 2 * s.dim(1), 2 * s.dim(2), s.dim(3)));
                CPU.upsampleNearest2x(out.cpu(), x.cpu());
                cuda().upsampleNearest2x(out.cuda(), x.cuda());
                checkExact(label("upsampleNearest2x", dtype, "x", s), out);
                closeAll(x, out);
            }
        }
    }

    @Test
    void softmax() {
        DType[][] io = {{F32, F32}, {F32, BF16}, {BF16, BF16}, {BF16, F32}};
        for (DType[] t : io) {
            for (Shape s : new Shape[] {Shape.of(3, 40), Shape.of(5, 37), Shape.of(6240, 6240)}) {
                // N(0, 8²) inputs at scale 0.5: rows with a few dominant entries, as attention scores have.
                Pair x = random(t[0], s, 12, 8), out = output(t[1], s);
                CPU.softmax(out.cpu(), x.cpu(), 0.5f);
                cuda().softmax(out.cuda(), x.cuda(), 0.5f);
                check(label("softmax", t[1], "x", s) + ",in=" + t[0], out);
                closeAll(x, out);
            }
        }
        // In place.
        Pair x = random(F32, Shape.of(3, 40), 13, 2);
        CPU.softmax(x.cpu(), x.cpu(), 1);
        cuda().softmax(x.cuda(), x.cuda(), 1);
        check(label("softmax(in place)", F32, "x", Shape.of(3, 40)), x);
        closeAll(x);
    }

    private static float[] round(float[] v) {
        for (int i = 0; i < v.length; i++) v[i] = Bf16.round(v[i]);
        return v;
    }
}
