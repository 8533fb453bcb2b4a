package dev.wanlora.benchmarks;

import dev.wanlora.engine.backend.Backend.ConvGeometry;
import dev.wanlora.engine.backend.ProfilingBackend;
import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.cuda.CudaEvent;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.vae.WanVae;
import dev.wanlora.models.wan.vae.WanVaeConfig;
import dev.wanlora.models.wan.vae.WanVaeWeights;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The Wan 2.1 VAE on the present GPU with random weights of the release layout (d = 96) in bf16, musubi's default
 * vae_dtype (issue 9's target: decode of a [16,12,48,48] latent, 384×384×45 pixels, ≤ 0.42 s on an H100, musubi's
 * time there):
 * <ol>
 *   <li>the decode of that latent, wall time from the latent on the host to the last frame on the host (3 warm-up
 *       runs, then the median of 5), its multiply-add count and the device memory it holds besides the weights
 *       ({@link WanVae#workingBytes}, against {@link WanVae#decodeWorkingBytes});</li>
 *   <li>the encode of the 45 frames back (latent caching);</li>
 *   <li>one decode's device time by op and shapes (ProfilingBackend), the 25 largest;</li>
 *   <li>the conv3d kernel alone at the decode's heaviest shapes, timed with CUDA events, in TFLOP/s; softmax and
 *       upsampling in GB/s.</li>
 * </ol>
 * Run: {@code java --enable-native-access=ALL-UNNAMED -cp "lib/*" dev.wanlora.benchmarks.VaeBench [device]}.
 */
public final class VaeBench {
    private static final int FRAMES = 12, H = 48, W = 48;

    public static void main(String[] args) {
        int device = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        WanVaeConfig config = WanVaeConfig.wan21();
        try (CudaBackend cuda = CudaBackend.open(device);
             ProfilingBackend profiled = ProfilingBackend.wrap(cuda);
             WanVaeWeights weights = WanVaeWeights.random(profiled, config, DType.BF16, WanVaeWeights.Part.BOTH, 2026);
             WanVae vae = new WanVae(profiled, weights)) {
            System.out.println("VaeBench on " + cuda.name() + ", random " + config + " weights in bf16 ("
                    + mib(weights.sizeBytes()) + " MiB)");
            float[] latent = gaussian(16 * FRAMES * H * W, 1);
            int pixelFrames = WanVaeConfig.pixelFrames(FRAMES);
            float[] video = new float[3 * pixelFrames * 64 * H * W];
            double decode = median(() -> {
                float[] out = vae.decode(latent, FRAMES, H, W);
                System.arraycopy(out, 0, video, 0, out.length);
            });
            System.out.printf(Locale.ROOT, "decode [16,%d,%d,%d] -> %dx%dx%d: %.3f s (median of 5), working memory %s MiB"
                            + " (formula %s MiB)%n", FRAMES, H, W, 8 * W, 8 * H, pixelFrames, decode,
                    mib(vae.workingBytes()), mib(WanVae.decodeWorkingBytes(config, H, W, DType.BF16)));
            double encode = median(() -> vae.encode(video, pixelFrames, 8 * H, 8 * W, (n, t) -> {}));
            System.out.printf(Locale.ROOT, "encode %dx%dx%d -> [16,%d,%d,%d]: %.3f s (median of 5), working memory %s MiB%n",
                    8 * W, 8 * H, pixelFrames, FRAMES, H, W, encode, mib(vae.workingBytes()));
            profiled.startRecording("decode");
            vae.decode(latent, FRAMES, H, W);
            printProfile(profiled.stopRecording());
            convs(cuda);
            others(cuda);
        }
    }

    /** Device time of one decode by op and operand shapes, the largest first (ProfilingBackend's timeline). */
    private static void printProfile(List<ProfilingBackend.OpTime> ops) {
        Map<String, double[]> byOp = new LinkedHashMap<>();
        double total = 0;
        for (ProfilingBackend.OpTime t : ops) {
            double[] v = byOp.computeIfAbsent(t.op() + " " + t.operands(), k -> new double[2]);
            v[0] += t.millis();
            v[1]++;
            total += t.millis();
        }
        System.out.printf(Locale.ROOT, "profiled decode: %.1f ms of device time in %d ops; the 25 largest op kinds:%n",
                total, ops.size());
        double all = total;
        byOp.entrySet().stream().sorted((a, b) -> Double.compare(b.getValue()[0], a.getValue()[0])).limit(25)
                .forEach(e -> System.out.printf(Locale.ROOT, "  %8.2f ms %5.1f %% %5d× %s%n", e.getValue()[0],
                        100 * e.getValue()[0] / all, (long) e.getValue()[1], e.getKey()));
    }

    /** softmax and upsampleNearest2x at the decode's shapes: the middle attention's 2304 tokens, the stage-2 upsample. */
    private static void others(CudaBackend cuda) {
        try (CudaEvent start = cuda.context().newEvent(true); CudaEvent stop = cuda.context().newEvent(true);
             Tensor scores = cuda.fromFloats(DType.F32, Shape.of(H * W, H * W), gaussian(H * W * H * W, 4));
             Tensor probs = cuda.allocate(DType.BF16, Shape.of(H * W, H * W));
             Tensor small = cuda.allocate(DType.BF16, Shape.of(4, 4 * H, 4 * W, 192));
             Tensor big = cuda.allocate(DType.BF16, Shape.of(4, 8 * H, 8 * W, 192))) {
            double s = eventSeconds(cuda, start, stop, () -> cuda.softmax(probs, scores, 1));
            System.out.printf(Locale.ROOT, "softmax_fwd_f32_bf16 (%d×%d): %.1f µs, %.0f GB/s%n", H * W, H * W, s * 1e6,
                    (double) H * W * H * W * 6 / s / 1e9);
            s = eventSeconds(cuda, start, stop, () -> cuda.upsampleNearest2x(big, small));
            System.out.printf(Locale.ROOT, "upsample_nearest2x_fwd_bf16 %s -> %s: %.1f µs, %.0f GB/s%n", small.shape(),
                    big.shape(), s * 1e6, (double) (small.sizeBytes() + big.sizeBytes()) / s / 1e9);
        }
    }

    private static double eventSeconds(CudaBackend cuda, CudaEvent start, CudaEvent stop, Runnable op) {
        for (int i = 0; i < 3; i++) op.run();
        cuda.synchronize();
        int reps = 10;
        start.recordOnCompute();
        for (int i = 0; i < reps; i++) op.run();
        stop.recordOnCompute();
        stop.synchronize();
        return stop.elapsedMillisSince(start) / 1e3 / reps;
    }

    /** conv3d alone at the decoder's 3³ shapes of one steady chunk. */
    private static void convs(CudaBackend cuda) {
        int[][] shapes = { // frames, h, w, Cin, Cout: middle (384 at 48×48), stage 1 (384 at 96² ×2), stage 2, stage 3,
                // decoder.conv1 (Cin 16) and the head (Cout 3)
                {1, H, W, 384, 384}, {2, 2 * H, 2 * W, 384, 384}, {4, 4 * H, 4 * W, 192, 192}, {4, 8 * H, 8 * W, 96, 96},
                {1, H, W, 16, 384}, {4, 8 * H, 8 * W, 96, 3}};
        try (CudaEvent start = cuda.context().newEvent(true); CudaEvent stop = cuda.context().newEvent(true)) {
            for (int[] s : shapes) {
                try (Tensor cache = cuda.allocate(DType.BF16, Shape.of(2, s[1], s[2], s[3]));
                     Tensor x = cuda.fromFloats(DType.BF16, Shape.of(s[0], s[1], s[2], s[3]),
                             gaussian(s[0] * s[1] * s[2] * s[3], 2));
                     Tensor w = cuda.fromFloats(DType.BF16, Shape.of(s[4], 3, 3, 3, s[3]), gaussian(s[4] * 27 * s[3], 3));
                     Tensor out = cuda.allocate(DType.BF16, Shape.of(s[0], s[1], s[2], s[4]))) {
                    double seconds = eventSeconds(cuda, start, stop,
                            () -> cuda.conv3d(out, cache, x, w, null, ConvGeometry.same(1)));
                    double flops = 2.0 * s[0] * s[1] * s[2] * s[4] * 27.0 * s[3];
                    System.out.printf(Locale.ROOT, "conv3d_fwd_bf16 3x3x3 x=(%d,%d,%d,%d) Cout %d: %.1f µs, %.1f TFLOP/s%n",
                            s[0], s[1], s[2], s[3], s[4], seconds * 1e6, flops / seconds / 1e12);
                }
            }
        }
    }

    private static double median(Runnable run) {
        for (int i = 0; i < 3; i++) run.run();
        double[] t = new double[5];
        for (int i = 0; i < t.length; i++) {
            long start = System.nanoTime();
            run.run();
            t[i] = (System.nanoTime() - start) / 1e9;
        }
        java.util.Arrays.sort(t);
        return t[2];
    }

    private static float[] gaussian(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    private static String mib(long bytes) { return String.format(Locale.ROOT, "%.1f", bytes / (double) (1 << 20)); }
}
