package dev.wanlora.benchmarks;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.ProfilingBackend;
import dev.wanlora.engine.Backends;
import dev.wanlora.engine.random.CounterRng;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.umt5.UmT5Config;
import dev.wanlora.models.umt5.UmT5Encoder;
import dev.wanlora.models.umt5.UmT5Tokenizer;
import dev.wanlora.models.umt5.UmT5Weights;
import dev.wanlora.models.sampling.DenoisingLoop;
import dev.wanlora.models.sampling.FlowSolver;
import dev.wanlora.models.sampling.SolverPrecision;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import dev.wanlora.models.wan.vae.WanVae;
import dev.wanlora.models.wan.vae.WanVaeConfig;
import dev.wanlora.models.wan.vae.WanVaeWeights;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Seconds per sample of the training-time sampler (issue 10's target) and its phases, at a real size with seeded
 * random weights (no checkpoint needed):
 * <ol>
 * <li><b>encode</b>: umT5-XXL (bf16) encodes the prompt and the negative prompt (120 and 126 real tokens padded to
 *     512), one at a time as musubi does, then is closed (musubi frees T5 before the DiT loads); a warm-up encode
 *     first. (musubi's figures exclude T5: it runs once per run.)</li>
 * <li><b>denoise</b>: the Wan2.1 DiT with a rank-32 LoRA (applied unmerged), CFG (one batch-2 forward per step, or two
 *     batch-1 forwards with {@code -Dwanlora.cfgMode=two_batch_1}, musubi's way), UniPC,
 *     musubi's bf16 path, with {@link DenoisingLoop}'s reuse of the step constants (time embedding per step, each
 *     text's cross-attention k/v); split into the DiT's time (forwards and their predictions on the host) and the
 *     solver's on the host, per step. Contexts are random bf16 rows of the same lengths. One warm-up sample of 2 steps
 *     first (plans, kernels).</li>
 * <li><b>decode</b>: the Wan 2.1 VAE decoder (bf16, the release layout) on the sample's latent; a warm-up decode
 *     first.</li>
 * </ol>
 *
 * <p>Run: {@code java --enable-native-access=ALL-UNNAMED -cp "benchmarks/target/lib/*:benchmarks/target/classes"
 * dev.wanlora.benchmarks.SampleBench [t2v-14B|t2v-1.3B|tiny] [WxHxF=384x384x45] [steps=20] [cfg=5] [bf16|fp8_scaled|fp8_compute]
 * [blocks_to_swap=0] [backend=cuda] [profile]} ({@code fp8_compute}: fp8_scaled weights with the opt-in {@code --fp8_compute}
 * GEMMs; {@code profile}: every op goes through {@link ProfilingBackend}, and one more step of the loop (the DiT forwards of
 * one solver step) is recorded and printed by op, the largest first; its s/step figures then include the proxy's host
 * cost) ({@code tiny}: the golden test model's shapes with a tiny umT5 and VAE, a CPU smoke run). musubi's pieces on an
 * H100 (issue 10): 21.1 s (bf16) / 24.0 s (fp8_scaled) per sample at 384×384×45,
 * 20 steps, CFG 5: 1.03 / 1.17 s per step, VAE decode 0.42 s, T5 excluded.
 */
public final class SampleBench {

    private static final int[] PROMPT_TOKENS = {120, 126};

    public static void main(String[] args) {
        String task = arg(args, 0, "t2v-14B");
        String[] size = arg(args, 1, "384x384x45").split("x");
        int width = Integer.parseInt(size[0]), height = Integer.parseInt(size[1]), frames = Integer.parseInt(size[2]);
        int steps = Integer.parseInt(arg(args, 2, "20"));
        double cfg = Double.parseDouble(arg(args, 3, "5"));
        String weightsArg = arg(args, 4, "bf16");
        boolean fp8Compute = weightsArg.equals("fp8_compute");
        Quantization quantization = weightsArg.equals("fp8_scaled") || fp8Compute ? Quantization.FP8_SCALED : Quantization.NONE;
        int swap = Integer.parseInt(arg(args, 5, "0"));
        DenoisingLoop.CfgMode cfgMode = DenoisingLoop.CfgMode.valueOf(
                System.getProperty("wanlora.cfgMode", "batch_2").toUpperCase(Locale.ROOT));
        boolean tiny = task.equals("tiny");
        WanDitConfig config = switch (task) {
            case "t2v-14B" -> WanDitConfig.t2v14B();
            case "t2v-1.3B" -> WanDitConfig.t2v1_3B();
            // the golden test model's shapes, for a CPU smoke run
            case "tiny" -> new WanDitConfig(256, 512, 2, 2, 16, 16, 4096, 256, WanDitConfig.TEXT_LEN, 1e-6f,
                    WanDitConfig.PATCH_1_2_2);
            default -> throw new IllegalArgumentException("task: t2v-14B, t2v-1.3B or tiny; got " + task);
        };
        UmT5Config t5Config = tiny ? new UmT5Config(256, 64, 64, 128, 2, 2, 32, 128) : UmT5Config.xxl();
        WanVaeConfig vaeConfig = tiny ? new WanVaeConfig(8, 16) : WanVaeConfig.wan21();
        ComputePrecision precision = ComputePrecision.BF16_MUSUBI;
        Shape latent = Shape.of(16, (frames - 1) / 4 + 1, height / 8, width / 8);
        boolean profile = arg(args, 7, "").equals("profile");
        try (Backend device = Backends.create(arg(args, 6, "cuda"));
             Backend backend = profile ? ProfilingBackend.wrap(device) : device) {
            DType modelDType = backend.device().storesFp32() ? DType.F32 : DType.BF16;
            String what = String.format(Locale.ROOT, "%s %dx%dx%d (latent %s, %d tokens) %s r32, %d UniPC steps, CFG %s%s,"
                    + " swap %d", task, width, height, frames, latent, latent.dim(1) * latent.dim(2) / 2 * latent.dim(3) / 2,
                    quantization == Quantization.NONE ? "bf16" : fp8Compute ? "fp8_scaled fp8_compute" : "fp8_scaled", steps,
                    cfg, cfg == 1.0 ? "" : " (" + cfgMode.describe() + ")", swap);
            System.out.println("SampleBench on " + backend.name() + ": " + what);
            double encode = encode(backend, t5Config, modelDType);
            float[] denoised;
            double denoise, ditSeconds, solverSeconds;
            if (backend.device().hasDeviceMemory()) backend.device().memory().resetPeakLiveBytes(); // the DiT's peak alone
            try (WanDitWeights weights = WanDitWeights.random(backend, config, precision, quantization,
                    !backend.device().keepsFp8Quantized(), fp8Compute, new BlockSwap(swap, 2), 1);
                 WanDit dit = new WanDit(backend, config, weights, precision, false);
                 LoraNetwork lora = LoraNetwork.create(backend, config, 32, 32, 2);
                 Tensor cond = backend.allocate(DType.BF16, Shape.of(PROMPT_TOKENS[0], config.textDim()));
                 Tensor uncond = backend.allocate(DType.BF16, Shape.of(PROMPT_TOKENS[1], config.textDim()))) {
                backend.gaussianNoise(cond, 3, 0);
                backend.gaussianNoise(uncond, 4, 0);
                float[] noise = new float[Math.toIntExact(latent.numElements())];
                for (int i = 0; i < noise.length; i++) noise[i] = (float) CounterRng.normal(5, i);
                new DenoisingLoop(backend, dit, true, cfgMode).run(noise, latent, cond, uncond, lora,
                        new DenoisingLoop.Settings(2, 14.5, cfg, FlowSolver.Kind.UNIPC), SolverPrecision.FLOAT32,
                        DenoisingLoop.StepListener.NONE);
                DenoisingLoop loop = new DenoisingLoop(backend, dit, true, cfgMode);
                double[] min = {Double.MAX_VALUE}, max = {0};
                long start = System.nanoTime();
                denoised = loop.run(noise, latent, cond, uncond, lora, new DenoisingLoop.Settings(steps, 14.5, cfg,
                        FlowSolver.Kind.UNIPC), SolverPrecision.FLOAT32, (k, n, c, u, v, next, seconds) -> {
                            min[0] = Math.min(min[0], seconds);
                            max[0] = Math.max(max[0], seconds);
                        });
                denoise = (System.nanoTime() - start) / 1e9;
                ditSeconds = loop.ditSeconds();
                solverSeconds = loop.solverSeconds();
                long peak = backend.device().hasDeviceMemory() ? backend.device().memory().peakLiveBytes() : -1;
                System.out.printf(Locale.ROOT, "denoising: %.2f s per sample, %.3f s/step (min %.3f, max %.3f)%s%n", denoise,
                        denoise / steps, min[0], max[0], peak < 0 ? "" : String.format(Locale.ROOT, ", peak %.2f GiB",
                                peak / (double) (1L << 30)));
                if (backend instanceof ProfilingBackend profiled) {
                    profiled.startRecording("step");
                    new DenoisingLoop(backend, dit, true).run(noise, latent, cond, uncond, lora,
                            new DenoisingLoop.Settings(1, 14.5, cfg, FlowSolver.Kind.UNIPC), SolverPrecision.FLOAT32,
                            DenoisingLoop.StepListener.NONE);
                    printProfile(profiled.stopRecording());
                }
                dit.releaseForwardOnlyPlans();
            }
            double decode = decode(backend, vaeConfig, modelDType, denoised, latent);
            boolean batch2 = cfg != 1.0 && cfgMode == DenoisingLoop.CfgMode.BATCH_2;
            int passes = cfg == 1.0 || batch2 ? 1 : 2;
            System.out.printf(Locale.ROOT, "phases: encode %.3f s (%d texts, umT5 %d layers %s, excluded from musubi's"
                            + " figures) | denoise %.2f s = %d steps × (DiT %.3f s = %d × %.3f s per %s forward, solver %.4f s,"
                            + " other %.4f s) | decode %.3f s | per sample without encode %.2f s%n",
                    encode, PROMPT_TOKENS.length, t5Config.numLayers(), modelDType == DType.BF16 ? "bf16" : "fp32", denoise,
                    steps, ditSeconds / steps, passes, ditSeconds / steps / passes, batch2 ? "batch-2" : "batch-1",
                    solverSeconds / steps,
                    (denoise - ditSeconds - solverSeconds) / steps, decode, denoise + decode);
        }
    }

    /**
     * Seconds to encode the prompt and the negative prompt one at a time with random umT5 weights (after a warm-up
     * encode); the encoder is closed afterwards.
     */
    private static double encode(Backend backend, UmT5Config c, DType dtype) {
        try (UmT5Weights w = UmT5Weights.random(backend, c, dtype, false, 1234)) {
            UmT5Encoder encoder = new UmT5Encoder(backend, w);
            SplittableRandom r = new SplittableRandom(7);
            float[][] ids = new float[PROMPT_TOKENS.length][], masks = new float[PROMPT_TOKENS.length][];
            for (int p = 0; p < PROMPT_TOKENS.length; p++) {
                ids[p] = new float[UmT5Tokenizer.TEXT_LENGTH];
                masks[p] = new float[UmT5Tokenizer.TEXT_LENGTH];
                for (int i = 0; i < PROMPT_TOKENS[p]; i++) {
                    ids[p][i] = i == PROMPT_TOKENS[p] - 1 ? 1 : 3 + r.nextInt(c.vocab() - 3);
                    masks[p][i] = 1;
                }
            }
            encodeOne(backend, encoder, ids[0], masks[0]); // warm-up: kernels, GEMM heuristics
            long start = System.nanoTime();
            for (int p = 0; p < ids.length; p++) encodeOne(backend, encoder, ids[p], masks[p]);
            return (System.nanoTime() - start) / 1e9;
        }
    }

    private static void encodeOne(Backend backend, UmT5Encoder encoder, float[] ids, float[] mask) {
        try (Tensor out = encoder.encode(ids, mask, 1, UmT5Tokenizer.TEXT_LENGTH, null)) {
            backend.toFloats(out.view(0, Shape.of(1))); // waits for the encode
        }
    }

    /** Seconds of one decode of {@code latent} with random decoder weights (after a warm-up decode). */
    private static double decode(Backend backend, WanVaeConfig c, DType dtype, float[] latent, Shape shape) {
        int f = (int) shape.dim(1), h = (int) shape.dim(2), w = (int) shape.dim(3);
        try (WanVaeWeights weights = WanVaeWeights.random(backend, c, dtype, WanVaeWeights.Part.DECODER, 2026)) {
            try (WanVae warm = new WanVae(backend, weights)) {
                warm.decode(latent, f, h, w);
            }
            long start = System.nanoTime();
            try (WanVae vae = new WanVae(backend, weights)) { // a decoder per decode, as the sampler makes one
                vae.decode(latent, f, h, w);
            }
            return (System.nanoTime() - start) / 1e9;
        }
    }

    /** Device time of one recorded step by op and operand shapes, the largest first (ProfilingBackend's timeline). */
    private static void printProfile(List<ProfilingBackend.OpTime> ops) {
        Map<String, double[]> byOp = new LinkedHashMap<>(), byName = new LinkedHashMap<>();
        double total = 0;
        for (ProfilingBackend.OpTime t : ops) {
            double[] v = byOp.computeIfAbsent(t.op() + " " + t.operands(), k -> new double[2]);
            v[0] += t.millis();
            v[1]++;
            double[] n = byName.computeIfAbsent(t.op(), k -> new double[2]);
            n[0] += t.millis();
            n[1]++;
            total += t.millis();
        }
        double all = total;
        System.out.printf(Locale.ROOT, "profiled step (one solver step, every DiT forward of it): %.1f ms of device time"
                + " in %d ops; by op:%n", total, ops.size());
        byName.entrySet().stream().sorted((a, b) -> Double.compare(b.getValue()[0], a.getValue()[0]))
                .forEach(e -> System.out.printf(Locale.ROOT, "  %8.2f ms %5.1f %% %6d× %s%n", e.getValue()[0],
                        100 * e.getValue()[0] / all, (long) e.getValue()[1], e.getKey()));
        System.out.println("the 30 largest op kinds by operands:");
        byOp.entrySet().stream().sorted((a, b) -> Double.compare(b.getValue()[0], a.getValue()[0])).limit(30)
                .forEach(e -> System.out.printf(Locale.ROOT, "  %8.2f ms %5.1f %% %6d× %s%n", e.getValue()[0],
                        100 * e.getValue()[0] / all, (long) e.getValue()[1], e.getKey()));
    }

    private static String arg(String[] args, int i, String fallback) {
        return args.length > i ? args[i] : fallback;
    }
}
