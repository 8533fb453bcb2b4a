package dev.wanlora.benchmarks;

import dev.wanlora.engine.backend.Backend.AdamWStep;
import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.cuda.CudaEvent;
import dev.wanlora.engine.cuda.CudaTensor;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;

/**
 * Kernel throughput on the present GPU at Wan2.1-14B shapes (C = 5120, FFN 13824, 40 heads of 128; L = 3744 tokens,
 * and the 21×30×52 = 32760-token bucket (81 frames at 480×832)), timed with CUDA events (STYLE.md §3.7, §9).
 *
 * <p>Two ceilings are measured first on this card: a 1 GiB device-to-device copy (bytes read + written per second)
 * and an 8192³ bf16 GEMM through cuBLASLt. Each case declares the bytes it must move (each input read once, each
 * output written once) and/or its FLOPs, and prints time, GB/s or TFLOP/s and % of the measured ceiling:
 * {@code rms_norm_fwd_bf16 (32760×5120): 230 µs, 2.9 TB/s, 87 % of peak}.
 *
 * <p>Timing: 3 warm-up calls, then 5 batches of back-to-back calls (≥ ~20 ms of work each) between two events; the
 * median batch mean is reported. Inputs hold random normal data (never zeros). Cases at L = 3744 move tens of MB and
 * may run partly from L2 (50 MB on an H100); those lines say "(L2-resident)" when the working set fits.
 *
 * <p>Run: {@code java --enable-native-access=ALL-UNNAMED -cp "lib/*" dev.wanlora.benchmarks.KernelBench [device]}.
 */
public final class KernelBench {
    private static final long C = 5120, FFN = 13824, HEADS = 40, LATENT = 16L * 21 * 60 * 104;
    /** Rank-32 LoRA parameters of the 14B DiT: 40 blocks × (8 attention Linears of 5120² and the two FFN ones). */
    private static final long LORA_PARAMS = 40L * 32 * (8 * (C + C) + 2 * (C + FFN));
    private static final long L2_BYTES = 50L << 20;

    private final CudaBackend cuda;
    private final CudaEvent start, stop;
    private final List<String> table = new ArrayList<>();
    private double copyGBs, gemmTFlops;

    private KernelBench(CudaBackend cuda) {
        this.cuda = cuda;
        this.start = cuda.context().newEvent(true);
        this.stop = cuda.context().newEvent(true);
    }

    public static void main(String[] args) {
        int device = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        try (CudaBackend cuda = CudaBackend.open(device)) {
            KernelBench bench = new KernelBench(cuda);
            System.out.println("KernelBench on " + cuda.name() + ", " + cuda.gemmLibrary());
            bench.ceilings();
            for (long l : new long[] {3744, 32760}) bench.activations(l);
            bench.gemms(3744);
            bench.gemms(32760);
            bench.training();
            bench.textEncoder();
            System.out.println();
            System.out.println("summary (" + cuda.name() + "; copy ceiling " + fmt(bench.copyGBs) + " GB/s, bf16 GEMM ceiling "
                    + fmt(bench.gemmTFlops) + " TFLOP/s)");
            bench.table.forEach(System.out::println);
        }
    }

    /** Median over 5 batches of the mean seconds per call. */
    private double time(Runnable op) {
        for (int i = 0; i < 3; i++) op.run();
        cuda.synchronize();
        start.recordOnCompute();
        op.run();
        stop.recordOnCompute();
        stop.synchronize();
        double once = stop.elapsedMillisSince(start) / 1e3;
        int reps = (int) Math.max(1, Math.min(1000, 0.02 / Math.max(once, 1e-6)));
        double[] means = new double[5];
        for (int b = 0; b < means.length; b++) {
            start.recordOnCompute();
            for (int i = 0; i < reps; i++) op.run();
            stop.recordOnCompute();
            stop.synchronize();
            means[b] = stop.elapsedMillisSince(start) / 1e3 / reps;
        }
        Arrays.sort(means);
        return means[means.length / 2];
    }

    private void ceilings() {
        long bytes = 1L << 30;
        try (CudaTensor a = random(F32, Shape.of(bytes / 4)); CudaTensor b = cuda.allocate(F32, Shape.of(bytes / 4))) {
            double s = time(() -> cuda.copy(b, a));
            copyGBs = 2.0 * bytes / s / 1e9;
        }
        long n = 8192;
        try (CudaTensor a = random(BF16, Shape.of(n, n)); CudaTensor w = random(BF16, Shape.of(n, n)); CudaTensor y = cuda.allocate(BF16, Shape.of(n, n))) {
            double s = time(() -> cuda.gemm(y, a, false, w, true, 1, 0, null));
            gemmTFlops = 2.0 * n * n * n / s / 1e12;
        }
        System.out.printf(Locale.ROOT, "ceilings: D2D copy %.0f GB/s (1 GiB, read+write), bf16 GEMM %.0f TFLOP/s (8192^3)%n", copyGBs, gemmTFlops);
    }

    private void report(String name, double seconds, double bytes, double flops) {
        String line;
        if (flops > 0 && (bytes == 0 || flops / bytes > 50)) {
            double tf = flops / seconds / 1e12;
            line = String.format(Locale.ROOT, "%-44s %10s  %7.1f TFLOP/s  %5.1f %% of GEMM peak", name, us(seconds), tf, 100 * tf / gemmTFlops);
        } else {
            double gbs = bytes / seconds / 1e9;
            line = String.format(Locale.ROOT, "%-44s %10s  %7.0f GB/s     %5.1f %% of copy peak%s", name, us(seconds), gbs,
                    100 * gbs / copyGBs, bytes <= L2_BYTES ? " (L2-resident)" : "");
        }
        System.out.println(line);
        table.add(line);
    }

    private void bench(String name, double bytes, double flops, Runnable op) { report(name, time(op), bytes, flops); }

    private static String us(double s) { return String.format(Locale.ROOT, "%.1f µs", s * 1e6); }

    private static String fmt(double v) { return String.format(Locale.ROOT, "%.0f", v); }

    private CudaTensor random(DType t, Shape s) {
        CudaTensor x = cuda.allocate(t, s);
        cuda.gaussianNoise(x, 7, 0);
        return x;
    }

    private void activations(long l) {
        String shape = "(" + l + "×" + C + ")";
        long n = l * C, nf = l * FFN;
        try (CudaTensor x = random(BF16, Shape.of(1, l, C)); CudaTensor y = random(BF16, Shape.of(1, l, C));
             CudaTensor out = cuda.allocate(BF16, Shape.of(1, l, C)); CudaTensor out32 = cuda.allocate(F32, Shape.of(1, l, C));
             CudaTensor h = random(BF16, Shape.of(l, FFN)); CudaTensor mod = random(F32, Shape.of(1, 6, C));
             CudaTensor w = random(BF16, Shape.of(C)); CudaTensor b = random(BF16, Shape.of(C));
             CudaTensor mean = cuda.allocate(F32, Shape.of(l)); CudaTensor rstd = cuda.allocate(F32, Shape.of(l));
             CudaTensor dw = cuda.allocate(F32, Shape.of(C)); CudaTensor db = cuda.allocate(F32, Shape.of(C));
             CudaTensor cos = random(F32, Shape.of(l, 64)); CudaTensor sin = random(F32, Shape.of(l, 64))) {
            bench("convert_fwd_bf16_f32 " + shape, 6.0 * n, 0, () -> cuda.copy(out32, x));
            bench("add_fwd_bf16 " + shape, 6.0 * n, 0, () -> cuda.add(out, x, y));
            bench("scale_fwd_bf16 " + shape, 4.0 * n, 0, () -> cuda.scale(out, x, 0.5f));
            bench("add_row_vector_fwd_bf16 " + shape, 4.0 * n, 0, () -> cuda.addRowVector(out, x, w));
            bench("gelu_tanh_fwd_bf16 (" + l + "×" + FFN + ")", 4.0 * nf, 0, () -> cuda.geluTanh(h, h));
            bench("silu_fwd_bf16 " + shape, 4.0 * n, 0, () -> cuda.silu(out, x));
            bench("modulate_fwd_bf16 " + shape, 4.0 * n, 0, () -> cuda.modulate(out, x, mod, 0, 1));
            bench("gated_residual_fwd_bf16 " + shape, 6.0 * n, 0, () -> cuda.gatedResidual(out, y, mod, 2));
            bench("add_gated_residual_fwd_bf16 " + shape, 6.0 * n, 0, () -> cuda.addGatedResidual(out, x, y, mod, 2));
            bench("rope_fwd_bf16 " + shape + " 40 heads", 4.0 * n + 8.0 * l * 64, 0, () -> cuda.rope(out, x, cos, sin, (int) HEADS));
            bench("layer_norm_fwd_bf16 " + shape, 4.0 * n + 8.0 * l, 0, () -> cuda.layerNorm(out, mean, rstd, x, null, null, 1e-6f));
            bench("layer_norm_modulate_fwd_bf16 " + shape, 4.0 * n + 8.0 * l, 0,
                    () -> cuda.layerNormModulate(out, mean, rstd, x, mod, 0, 1, 1e-6f));
            bench("layer_norm_fwd_bf16 affine " + shape, 4.0 * n + 8.0 * l, 0, () -> cuda.layerNorm(out, mean, rstd, x, w, b, 1e-6f));
            bench("layer_norm_bwd_bf16 " + shape, 6.0 * n + 8.0 * l, 0,
                    () -> cuda.layerNormBackward(out, null, null, y, x, null, mean, rstd, false));
            bench("layer_norm_modulate_bwd_bf16 " + shape, 6.0 * n + 8.0 * l, 0,
                    () -> cuda.layerNormModulateBackward(out, y, x, mean, rstd, mod, 1, false));
            bench("layer_norm_bwd_bf16 +dW,dB " + shape, 6.0 * n + 8.0 * l, 0,
                    () -> cuda.layerNormBackward(out, dw, db, y, x, w, mean, rstd, false));
            bench("rms_norm_fwd_bf16 " + shape, 4.0 * n + 4.0 * l, 0, () -> cuda.rmsNorm(out, rstd, x, w, 1e-6f));
            bench("rms_norm_bwd_bf16 " + shape, 6.0 * n + 4.0 * l, 0, () -> cuda.rmsNormBackward(out, null, y, x, w, rstd));
            bench("rms_norm_bwd_bf16 +dW " + shape, 6.0 * n + 4.0 * l, 0, () -> cuda.rmsNormBackward(out, dw, y, x, w, rstd));
        }
    }

    private void gemms(long l) {
        long[][] shapes = {{C, C}, {C, FFN}, {FFN, C}}; // (in, out): q/k/v/o, ffn.0, ffn.2
        String[] names = {"q/k/v/o", "ffn.0", "ffn.2"};
        for (int i = 0; i < shapes.length; i++) {
            long k = shapes[i][0], n = shapes[i][1];
            try (CudaTensor x = random(BF16, Shape.of(l, k)); CudaTensor w = random(BF16, Shape.of(n, k));
                 CudaTensor bias = random(BF16, Shape.of(n)); CudaTensor y = cuda.allocate(BF16, Shape.of(l, n));
                 CudaTensor dy = random(BF16, Shape.of(l, n)); CudaTensor dx = cuda.allocate(BF16, Shape.of(l, k))) {
                double flops = 2.0 * l * k * n;
                bench("gemm " + names[i] + " fwd x·wᵀ+b (" + l + "×" + k + "·" + k + "×" + n + ")", 2.0 * (l * k + n * k + l * n), flops,
                        () -> cuda.gemm(y, x, false, w, true, 1, 0, bias));
                bench("gemm " + names[i] + " dx = dy·w (" + l + "×" + n + "·" + n + "×" + k + ")", 2.0 * (l * k + n * k + l * n), flops,
                        () -> cuda.gemm(dx, dy, false, w, false, 1, 0, null));
            }
        }
    }

    private void training() {
        try (CudaTensor x0 = random(BF16, Shape.of(1, LATENT)); CudaTensor noise = cuda.allocate(BF16, Shape.of(1, LATENT));
             CudaTensor xt = cuda.allocate(BF16, Shape.of(1, LATENT)); CudaTensor target = cuda.allocate(BF16, Shape.of(1, LATENT));
             CudaTensor t = random(F32, Shape.of(1)); CudaTensor loss = cuda.allocate(F32, Shape.of(1))) {
            String shape = "(16×21×60×104)";
            bench("gaussian_noise_fwd_bf16 " + shape, 2.0 * LATENT, 0, () -> cuda.gaussianNoise(noise, 3, 0));
            bench("flow_matching_fwd_bf16 " + shape, 8.0 * LATENT, 0, () -> cuda.flowMatchingInput(xt, target, x0, noise, t));
            bench("mse_loss_fwd_bf16 + reduce " + shape, 6.0 * LATENT, 0, () -> cuda.mseLoss(loss, xt, xt, target, 1));
        }
        try (CudaTensor wq = cuda.allocate(DType.F8_E4M3, Shape.of(FFN, C)); CudaTensor scale = random(BF16, Shape.of(FFN, C / 64, 1));
             CudaTensor out = cuda.allocate(BF16, Shape.of(FFN, C))) {
            cuda.fill(wq, 1.5f);
            bench("dequantize_fp8_fwd_bf16 (13824×5120)", 3.0 * FFN * C + 2.0 * FFN * C / 64, 0, () -> cuda.dequantizeFp8(out, wq, scale));
        }
        long n = LORA_PARAMS;
        try (CudaTensor p = random(F32, Shape.of(n)); CudaTensor g = random(F32, Shape.of(n)); CudaTensor m = cuda.allocate(F32, Shape.of(n));
             CudaTensor v = cuda.allocate(F32, Shape.of(n)); CudaTensor norm = cuda.allocate(F32, Shape.of(1));
             CudaTensor clip = cuda.allocate(F32, Shape.of(1))) {
            String shape = "(" + n / 1_000_000 + "M LoRA params)";
            bench("sum_of_squares_fwd_f32 + reduce " + shape, 4.0 * n, 0, () -> cuda.sumOfSquares(norm, g));
            cuda.fill(norm, 1f);
            cuda.clipCoefficient(clip, norm, 1f);
            AdamWStep h = new AdamWStep(5e-5f, 0.9f, 0.999f, 1e-8f, 0.01f, 10);
            bench("adamw_fwd_f32 " + shape, 28.0 * n, 0, () -> cuda.adamw(p, g, m, v, clip, h));
        }
        long blocks = (n + 255) / 256;
        try (CudaTensor p = random(F32, Shape.of(n)); CudaTensor g = random(F32, Shape.of(n));
             CudaTensor mc = cuda.allocate(DType.U8, Shape.of(n)); CudaTensor vc = cuda.allocate(DType.U8, Shape.of(n));
             CudaTensor ma = cuda.allocate(F32, Shape.of(blocks)); CudaTensor va = cuda.allocate(F32, Shape.of(blocks));
             CudaTensor clip = cuda.allocate(F32, Shape.of(1))) {
            cuda.fill(clip, 1f);
            AdamWStep h = new AdamWStep(5e-5f, 0.9f, 0.999f, 1e-8f, 0.01f, 10);
            // p, g read, p written (12 B) + codes read and written (4 B) + absmax (negligible)
            bench("adamw8bit_fwd_f32 (" + n / 1_000_000 + "M LoRA params)", 16.0 * n, 0,
                    () -> cuda.adamw8bit(p, g, mc, ma, vc, va, clip, h));
        }
    }

    /** umT5-XXL's own ops at Wan's sizes: 4 prompts of 512 tokens, 64 heads of 64, d 4096, FFN 10240. */
    private void textEncoder() {
        long b = 4, l = 512, heads = 64, d = 64, width = heads * d, ffn = 10240;
        float[] mask = new float[(int) (b * l)];
        for (int i = 0; i < b; i++) for (int j = 0; j < (i + 1) * l / 4; j++) mask[(int) (i * l + j)] = 1;
        float[] buckets = new float[(int) (2 * l - 1)], ids = new float[(int) (b * l)];
        for (int i = 0; i < buckets.length; i++) buckets[i] = i % 32;
        for (int i = 0; i < ids.length; i++) ids[i] = (i * 7919) % 256384;
        try (CudaTensor q = random(BF16, Shape.of(b, l, width)); CudaTensor k = random(BF16, Shape.of(b, l, width));
             CudaTensor v = random(BF16, Shape.of(b, l, width)); CudaTensor out = cuda.allocate(BF16, Shape.of(b, l, width));
             CudaTensor bias = cuda.allocate(BF16, Shape.of(heads, l, l)); CudaTensor table = random(BF16, Shape.of(32, heads));
             CudaTensor keyMask = cuda.fromFloats(F32, Shape.of(b, l), mask);
             CudaTensor bucketIds = cuda.fromFloats(F32, Shape.of(2 * l - 1), buckets);
             CudaTensor embedding = random(BF16, Shape.of(256384, width)); CudaTensor tokenIds = cuda.fromFloats(F32, Shape.of(b * l), ids);
             CudaTensor rows = cuda.allocate(BF16, Shape.of(b * l, width));
             CudaTensor gate = random(BF16, Shape.of(b * l, ffn)); CudaTensor hidden = random(BF16, Shape.of(b * l, ffn))) {
            String shape = "(" + b + "×" + l + ", " + heads + "×" + d + ")";
            bench("embedding_fwd_bf16 (" + b * l + " ids, 256384×4096)", 4.0 * b * l * width, 0, () -> cuda.embedding(rows, embedding, tokenIds));
            bench("relative_position_bias_fwd_bf16 (" + heads + "×" + l + "×" + l + ")", 2.0 * heads * l * l, 0,
                    () -> cuda.relativePositionBias(bias, table, bucketIds));
            // All keys counted as real (the mask halves the useful work on average): reads q, k, v, bias; writes out.
            bench("attention_bias_fwd_bf16 " + shape, 2.0 * 4 * b * l * width + 2.0 * heads * l * l, 4.0 * b * heads * l * l * d,
                    () -> cuda.attentionWithBias(out, q, k, v, bias, keyMask, (int) heads));
            bench("gated_gelu_fwd_bf16 (" + b * l + "×" + ffn + ")", 6.0 * b * l * ffn, 0, () -> cuda.gatedGelu(hidden, gate, hidden));
        }
    }
}
