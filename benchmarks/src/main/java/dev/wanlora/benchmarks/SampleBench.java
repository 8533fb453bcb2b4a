package dev.wanlora.benchmarks;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.Backends;
import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.cuda.DeviceBuffer;
import dev.wanlora.engine.random.CounterRng;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.sampling.DenoisingLoop;
import dev.wanlora.models.sampling.FlowSolver;
import dev.wanlora.models.sampling.SolverPrecision;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;

import java.util.Locale;

/**
 * Seconds per sample of the training-time sampler (issue 10's target): a random-weight Wan2.1 DiT with a rank-32
 * LoRA (applied unmerged), CFG (two batch-1 forwards per step), UniPC, musubi's bf16 path, at a real size. The text
 * encoder and the VAE decode are not timed (T5 runs once per run; the VAE is not in this build): contexts are random
 * bf16 rows of typical prompt lengths. One warm-up sample of 2 steps first (plans, kernels), then one timed sample.
 *
 * <p>Run: {@code java --enable-native-access=ALL-UNNAMED -cp "benchmarks/target/lib/*:benchmarks/target/classes"
 * dev.wanlora.benchmarks.SampleBench [t2v-14B|t2v-1.3B|tiny] [WxHxF=384x384x45] [steps=20] [cfg=5] [bf16|fp8_scaled]
 * [blocks_to_swap=0] [backend=cuda]}. musubi's pieces on an H100 (issue 10): 21.1 s (bf16) / 24.0 s (fp8_scaled) per
 * sample at 384×384×45, 20 steps, CFG 5: 1.03 / 1.17 s per step.
 */
public final class SampleBench {

    public static void main(String[] args) {
        String task = arg(args, 0, "t2v-14B");
        String[] size = arg(args, 1, "384x384x45").split("x");
        int width = Integer.parseInt(size[0]), height = Integer.parseInt(size[1]), frames = Integer.parseInt(size[2]);
        int steps = Integer.parseInt(arg(args, 2, "20"));
        double cfg = Double.parseDouble(arg(args, 3, "5"));
        Quantization quantization = arg(args, 4, "bf16").equals("fp8_scaled") ? Quantization.FP8_SCALED : Quantization.NONE;
        int swap = Integer.parseInt(arg(args, 5, "0"));
        WanDitConfig config = switch (task) {
            case "t2v-14B" -> WanDitConfig.t2v14B();
            case "t2v-1.3B" -> WanDitConfig.t2v1_3B();
            // the golden test model's shapes, for a CPU smoke run
            case "tiny" -> new WanDitConfig(256, 512, 2, 2, 16, 16, 4096, 256, WanDitConfig.TEXT_LEN, 1e-6f,
                    WanDitConfig.PATCH_1_2_2);
            default -> throw new IllegalArgumentException("task: t2v-14B, t2v-1.3B or tiny; got " + task);
        };
        ComputePrecision precision = ComputePrecision.BF16_MUSUBI;
        Shape latent = Shape.of(16, (frames - 1) / 4 + 1, height / 8, width / 8);
        try (Backend backend = Backends.create(arg(args, 6, "cuda"));
             WanDitWeights weights = WanDitWeights.random(backend, config, precision, quantization,
                     !backend.device().keepsFp8Quantized(), new BlockSwap(swap, 2), 1);
             WanDit dit = new WanDit(backend, config, weights, precision, false);
             LoraNetwork lora = LoraNetwork.create(backend, config, 32, 32, 2);
             Tensor cond = backend.allocate(DType.BF16, Shape.of(120, config.textDim()));
             Tensor uncond = backend.allocate(DType.BF16, Shape.of(126, config.textDim()))) {
            backend.gaussianNoise(cond, 3, 0);
            backend.gaussianNoise(uncond, 4, 0);
            float[] noise = new float[Math.toIntExact(latent.numElements())];
            for (int i = 0; i < noise.length; i++) noise[i] = (float) CounterRng.normal(5, i);
            DenoisingLoop loop = new DenoisingLoop(backend, dit, true);
            String what = String.format(Locale.ROOT, "%s %dx%dx%d (latent %s, %d tokens) %s r32, %d UniPC steps, CFG %s, swap %d",
                    task, width, height, frames, latent, latent.dim(1) * latent.dim(2) / 2 * latent.dim(3) / 2,
                    quantization == Quantization.NONE ? "bf16" : "fp8_scaled", steps, cfg, swap);
            System.out.println("SampleBench on " + backend.name() + ": " + what);
            loop.run(noise, latent, cond, uncond, lora, new DenoisingLoop.Settings(2, 14.5, cfg, FlowSolver.Kind.UNIPC),
                    SolverPrecision.FLOAT32, DenoisingLoop.StepListener.NONE);
            double[] min = {Double.MAX_VALUE}, max = {0};
            long start = System.nanoTime();
            loop.run(noise, latent, cond, uncond, lora, new DenoisingLoop.Settings(steps, 14.5, cfg, FlowSolver.Kind.UNIPC),
                    SolverPrecision.FLOAT32, (k, n, c, u, v, next, seconds) -> {
                        min[0] = Math.min(min[0], seconds);
                        max[0] = Math.max(max[0], seconds);
                    });
            double total = (System.nanoTime() - start) / 1e9;
            long peak = backend.device().hasDeviceMemory() ? backend.device().memory().peakLiveBytes() : -1;
            System.out.printf(Locale.ROOT, "denoising: %.2f s per sample, %.3f s/step (min %.3f, max %.3f)%s%n", total,
                    total / steps, min[0], max[0], peak < 0 ? "" : String.format(Locale.ROOT, ", peak %.2f GiB",
                            peak / (double) (1L << 30)));
        }
    }

    private static String arg(String[] args, int i, String fallback) {
        return args.length > i ? args[i] : fallback;
    }
}
