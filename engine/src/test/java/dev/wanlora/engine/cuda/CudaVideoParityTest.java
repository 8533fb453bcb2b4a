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
 * on ragged tiny shapes (odd channels, Cout crossing the 64-wide tile), and real sizes of every tile shape of
 * conv3d_tc.cu ({@link #REAL_CASES}). In bf16 the cases with Cin % 8 == 0 run the tensor-core kernels (tiny grids the
 * 64×64 tile, Cout ≤ 8 the 128×8 one), the others the CUDA-core kernel, which f32 always uses; upsampleNearest2x
 * (exact) and softmax, tiny and real (the middle attention's 6240 tokens).
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
            // Cin % 8 == 0: bf16 runs on tensor cores (partial 64×64 tiles, K not a multiple of the 32-wide K tile).
            new Case("causal 3x3x3, Cin 16, Cout 70", Shape.of(2, 7, 9, 16), Shape.of(2, 7, 9, 16),
                    Shape.of(70, 3, 3, 3, 16), ConvGeometry.same(1), Shape.of(2, 7, 9, 70)),
            new Case("causal 3x3x3, Cin 24, Cout 3 (head)", Shape.of(2, 11, 13, 24), Shape.of(4, 11, 13, 24),
                    Shape.of(3, 3, 3, 3, 24), ConvGeometry.same(1), Shape.of(4, 11, 13, 3)),
            new Case("downsample2d, Cin 40", null, Shape.of(1, 10, 14, 40), Shape.of(40, 1, 3, 3, 40),
                    new ConvGeometry(1, 2, 0, 1), Shape.of(1, 5, 7, 40)),
            new Case("conv2d 3x3, Cin 64, 300 positions", null, Shape.of(3, 10, 10, 64), Shape.of(32, 1, 3, 3, 64),
                    ConvGeometry.same(1), Shape.of(3, 10, 10, 32)),
            // Cout % 96 == 0 on a grid too small for the 128×96 tile: the 64×64 one.
            new Case("causal 3x3x3, Cin 32, Cout 192", Shape.of(2, 9, 17, 32), Shape.of(1, 9, 17, 32),
                    Shape.of(192, 3, 3, 3, 32), ConvGeometry.same(1), Shape.of(1, 9, 17, 192)),
            new Case("conv2d 3x3, Cin 96, Cout 96", null, Shape.of(2, 8, 12, 96), Shape.of(96, 1, 3, 3, 96),
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

    /** A real-size convolution checked at sampled outputs: input frames at h×w, Cin → Cout, kernel kt×kh×kh. */
    private record RealCase(String name, int cacheFrames, int frames, int h, int w, int cin, int cout, int kt, int kh,
                            ConvGeometry g, DType biasType) {}

    /**
     * The VAE's tensor-core convolutions at real sizes, one per tile shape and shape class (tile choice as
     * CudaVideo.conv3d on a 132-multiprocessor H200; a smaller GPU may take the 64×64 tile for more of them). Sizes
     * are picked so that M and the input width are not multiples of the tiles, and Cin = 16 gives a partial K tile.
     */
    private static final RealCase[] REAL_CASES = {
            new RealCase("decoder.middle 384->384 3x3x3, one frame (64x64 tile: 128x128 would give 147 blocks)", 2, 1, 60,
                    104, 384, 384, 3, 3, ConvGeometry.same(1), F32),
            new RealCase("384->384 3x3x3, 2 frames, 12480 positions (128x128 tile, partial M tile)", 2, 2, 60, 104, 384,
                    384, 3, 3, ConvGeometry.same(1), BF16),
            new RealCase("decoder.conv1 Cin 16 -> 384 3x3x3, K = 432 (128x128 tile, partial K tile)", 2, 2, 96, 94, 16,
                    384, 3, 3, ConvGeometry.same(1), F32),
            new RealCase("192->192 3x3x3, 4 frames (128x96 tile, Cout 2 tiles)", 2, 4, 100, 92, 192, 192, 3, 3,
                    ConvGeometry.same(1), F32),
            new RealCase("96->96 3x3x3, 4 frames (128x96 tile)", 2, 4, 150, 146, 96, 96, 3, 3, ConvGeometry.same(1), BF16),
            new RealCase("head 96->3 3x3x3, 4 frames (128x8 tile, scalar stores)", 2, 4, 190, 202, 96, 3, 3, 3,
                    ConvGeometry.same(1), F32),
            new RealCase("upsample conv2d 192->96 3x3, no cache", 0, 4, 100, 92, 192, 96, 1, 3, ConvGeometry.same(1), F32),
            new RealCase("upsample3d time_conv half 384->384 (3,1,1)", 2, 1, 96, 94, 384, 384, 3, 1, ConvGeometry.same(0),
                    F32),
            new RealCase("downsample2d 96->96 3x3 stride 2, pad (0, 1)", 0, 4, 192, 190, 96, 96, 1, 3,
                    new ConvGeometry(1, 2, 0, 1), F32),
    };

    /**
     * Each {@link #REAL_CASES} conv on the GPU; the CPU reference of millions of outputs would take minutes, so it is
     * computed in double at 4096 random (position, channel) samples from the same bf16 inputs. The GPU result is
     * rounded to bf16 once, so the samples differ by ≤ 1 bf16 ulp plus fp32 summation noise: relL2 ≤ 5e-3 as
     * {@link Parity#BF16}. The output starts as NaN, and every element must have been written.
     */
    @Test
    void conv3dRealShapes() {
        long seed = 5;
        for (RealCase rc : REAL_CASES) {
            int h = rc.h, w = rc.w, cin = rc.cin, cout = rc.cout, tc = rc.cacheFrames, kt = rc.kt, kh = rc.kh;
            ConvGeometry g = rc.g;
            int ho = (h + g.padBefore() + g.padAfter() - kh) / g.spaceStride() + 1;
            int wo = (w + g.padBefore() + g.padAfter() - kh) / g.spaceStride() + 1;
            int to = (tc + rc.frames - kt) / g.timeStride() + 1;
            Shape xShape = Shape.of(rc.frames, h, w, cin), wShape = Shape.of(cout, kt, kh, kh, cin);
            Shape outShape = Shape.of(to, ho, wo, cout);
            float[] cache = tc == 0 ? null : round(gaussian(tc * h * w * cin, seed++, 1));
            float[] x = round(gaussian((int) xShape.numElements(), seed++, 1));
            float[] weight = round(gaussian((int) wShape.numElements(), seed++, 1 / Math.sqrt((double) kt * kh * kh * cin)));
            float[] bias = round(gaussian(cout, seed++, 0.1));
            var backend = cuda();
            try (var cc = tc == 0 ? null : backend.fromFloats(BF16, Shape.of(tc, h, w, cin), cache);
                 var cx = backend.fromFloats(BF16, xShape, x); var cw = backend.fromFloats(BF16, wShape, weight);
                 var cb = backend.fromFloats(rc.biasType, Shape.of(cout), bias); var out = backend.allocate(BF16, outShape)) {
                backend.fill(out, Float.NaN);
                backend.conv3d(out, cc, cx, cw, cb, g);
                float[] gpu = backend.toFloats(out);
                int unwritten = 0;
                for (float v : gpu) if (Float.isNaN(v)) unwritten++;
                SplittableRandom r = new SplittableRandom(seed++);
                int samples = 4096;
                float[] expected = new float[samples], actual = new float[samples];
                for (int s = 0; s < samples; s++) {
                    int ot = r.nextInt(to), oh = r.nextInt(ho), ow = r.nextInt(wo), o = r.nextInt(cout);
                    double acc = bias[o];
                    for (int dt = 0; dt < kt; dt++) {
                        int ti = ot * g.timeStride() + dt;
                        float[] src = ti < tc ? cache : x;
                        int frame = ti < tc ? ti : ti - tc;
                        for (int dh = 0; dh < kh; dh++) {
                            int ih = oh * g.spaceStride() + dh - g.padBefore();
                            if (ih < 0 || ih >= h) continue;
                            for (int dw = 0; dw < kh; dw++) {
                                int iw = ow * g.spaceStride() + dw - g.padBefore();
                                if (iw < 0 || iw >= w) continue;
                                long in = (((long) frame * h + ih) * w + iw) * cin;
                                long wb = ((((long) o * kt + dt) * kh + dh) * kh + dw) * cin;
                                for (int i = 0; i < cin; i++) acc += (double) weight[(int) (wb + i)] * src[(int) (in + i)];
                            }
                        }
                    }
                    expected[s] = (float) acc;
                    actual[s] = gpu[(int) ((((long) ot * ho + oh) * wo + ow) * cout + o)];
                }
                ErrorStats stats = ErrorStats.compare(actual, expected);
                boolean ok = stats.relL2() <= Parity.BF16 && unwritten == 0;
                System.out.println(label("conv3d", BF16, "x", xShape) + "," + rc.name + ",bias=" + rc.biasType
                        + ", 4096 samples " + stats.describe(Parity.BF16) + ", unwritten " + unwritten + (ok ? " OK" : " FAIL"));
                assertTrue(unwritten == 0, rc.name + ": " + unwritten + " outputs not written");
                assertTrue(stats.relL2() <= Parity.BF16, rc.name + ": relL2 " + stats.relL2());
            }
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
