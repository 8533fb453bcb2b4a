package dev.wanlora.pipeline.train;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.Backends;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.backend.ProfilingBackend;
import dev.wanlora.engine.backend.Timeline;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.flow.TimestepSampling;
import dev.wanlora.engine.optim.GradClip;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.random.RandomSource;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.musubi.LoadedTensor;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanMemoryPlan;
import dev.wanlora.pipeline.UserError;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Training steps on a random-weight DiT and fixed random data, for timing ({@code wanlora bench},
 * {@code TrainStepBenchmark}): the weights are drawn on the backend ({@link WanDitWeights#random}), so a 14B model
 * needs no download and no host memory; each step is {@code wanlora train}'s step ({@link TrainStep}) at musubi's
 * reference settings (bf16 compute, shift-3 timesteps, AdamW8bit by default, clip 1.0), uploading the same host
 * latents and text contexts every step as the trainer uploads a cached batch.
 *
 * <p>The backend is wrapped in a {@link ProfilingBackend}, which only forwards except during {@link #profiledStep()}.
 */
public final class BenchRun implements AutoCloseable {

    /**
     * What to build: the model, its weight storage, the LoRA and the optimizer (musubi's flag values), and how many
     * blocks stream their Linear weights from host memory ({@code --blocks_to_swap}, through a 2-slot ring), and
     * {@code --checkpoint_attention} (auto: decided per shape by {@link #shape}), and {@code --fp8_compute}
     * ({@link Fp8Compute}).
     */
    public record Settings(WanDitConfig config, WanDitWeights.Quantization quantization, int rank, float alpha,
                           boolean gradientCheckpointing, CheckpointAttention checkpointAttention, String optimizerType,
                           int blocksToSwap, long seed, WanDitActivations.Offload offload, long budgetBytes,
                           boolean fp8Compute) {
        /** Without --fp8_compute. */
        public Settings(WanDitConfig config, WanDitWeights.Quantization quantization, int rank, float alpha,
                        boolean gradientCheckpointing, CheckpointAttention checkpointAttention, String optimizerType,
                        int blocksToSwap, long seed, WanDitActivations.Offload offload, long budgetBytes) {
            this(config, quantization, rank, alpha, gradientCheckpointing, checkpointAttention, optimizerType, blocksToSwap,
                    seed, offload, budgetBytes, false);
        }

        /**
         * Without activation offload, with the GPU's memory as the budget of --checkpoint_attention auto.
         */
        public Settings(WanDitConfig config, WanDitWeights.Quantization quantization, int rank, float alpha,
                        boolean gradientCheckpointing, CheckpointAttention checkpointAttention, String optimizerType,
                        int blocksToSwap, long seed) {
            this(config, quantization, rank, alpha, gradientCheckpointing, checkpointAttention, optimizerType, blocksToSwap,
                    seed, WanDitActivations.Offload.NONE, 0);
        }
    }

    /**
     * One timed step: host wall seconds from its start to the next step's start (the cadence a training loop
     * sees), its loss, and device milliseconds of its two halves: the batch's upload, forward and backward, then the
     * clip, the step's read-back and the update.
     */
    public record StepTime(double seconds, double loss, double modelMillis, double updateMillis) {}

    /** The golden wan-tiny shapes (dim 256, FFN 512, 2 heads, 2 blocks, real text and latent widths): CI's smoke size. */
    public static final WanDitConfig TINY = new WanDitConfig(256, 512, 2, 2, 16, 16, 4096, 256, WanDitConfig.TEXT_LEN,
            1e-6f, WanDitConfig.PATCH_1_2_2);

    /** musubi's reference learning rate (5e-5); it does not change the cost of a step. */
    private static final float LEARNING_RATE = 5e-5f;
    /** Rows of real text per context before the DiT pads to 512 (a typical caption's token count). */
    public static final int DEFAULT_TEXT_ROWS = 120;

    private final ProfilingBackend backend;
    private final Settings settings;
    private final WanDitWeights weights;
    private final WanDit dit;
    private final LoraNetwork lora;
    private final Optimizer optimizer;
    private final GradClip clip;
    private final TrainStep step;
    private final FlowMatchingObjective objective;
    private final Timeline phases;
    private Shape latentShape;
    private List<float[]> latents;    // B × (16, F, H, W) host values, uploaded every step
    private List<LoadedTensor> texts; // B × (textRows, 4096) host values
    private long stepCount;
    private long allocationsInLastSteps;

    private BenchRun(ProfilingBackend backend, Settings s, SafeTensors checkpoint, PrintWriter out) {
        this.backend = backend;
        this.settings = s;
        ComputePrecision precision = ComputePrecision.BF16_MUSUBI;
        WanDitWeights.BlockSwap swap = new WanDitWeights.BlockSwap(s.blocksToSwap(), BlockStreamer.DEFAULT_SLOTS);
        // The CPU stores fp8 weights dequantized, as wanlora train loads them there.
        if (checkpoint == null) {
            this.weights = WanDitWeights.random(backend, s.config(), precision, s.quantization(),
                    !backend.device().keepsFp8Quantized(), s.fp8Compute(), swap, s.seed());
        } else {
            try (LoadProgress progress = LoadProgress.start(out, false, checkpoint.path().getFileName().toString(),
                    WanDitWeights.loadBytes(checkpoint))) {
                this.weights = WanDitWeights.load(backend, checkpoint, s.config(), precision, s.quantization(),
                        !backend.device().keepsFp8Quantized(), s.fp8Compute(), swap, progress);
            } catch (IllegalArgumentException | SafeTensorsException e) { // a file of another model or a broken one
                throw new UserError(e.getMessage(), e);
            }
        }
        this.dit = new WanDit(backend, s.config(), weights, precision, s.gradientCheckpointing());
        dit.offloadActivations(s.offload());
        this.lora = LoraNetwork.create(backend, s.config(), s.rank(), s.alpha(), s.seed());
        this.optimizer = TrainStep.optimizer(backend, OptimizerConfig.fromFlags(s.optimizerType(), List.of()), lora);
        this.clip = new GradClip(backend, 1f);
        this.step = new TrainStep(backend, dit, lora, optimizer, clip, 1);
        this.objective = new FlowMatchingObjective(new TimestepSampler(new TimestepSampler.Config(
                TimestepSampling.fromFlag("shift"), 3.0, 1.0, 0, 1000, false, 0), new RandomSource(s.seed())));
        this.phases = backend.openTimeline();
    }

    /** Builds the model, LoRA and optimizer on {@code backend} (which stays the caller's to close). */
    public static BenchRun open(Backend backend, Settings settings) {
        return open(backend, settings, null, null);
    }

    /**
     * {@link #open(Backend, Settings)} with the block weights loaded from {@code checkpoint} (a DiT file of
     * {@code settings}' task) through {@code wanlora train}'s loader, its load summary printed to {@code out}; null:
     * random weights drawn on the backend. The same step on the user's file tells a difference in the weights' values
     * (tensor-core power draw) from one in the training loop (issue 13).
     */
    public static BenchRun open(Backend backend, Settings settings, SafeTensors checkpoint, PrintWriter out) {
        ProfilingBackend profiling = ProfilingBackend.wrap(backend);
        try {
            return new BenchRun(profiling, settings, checkpoint, out);
        } catch (RuntimeException e) {
            profiling.close();
            throw e;
        }
    }

    /** The shapes of {@code --task}: t2v-14B, t2v-1.3B or tiny ({@link #TINY}). */
    public static WanDitConfig taskConfig(String task) {
        return switch (task) {
            case "t2v-14B" -> WanDitConfig.t2v14B();
            case "t2v-1.3B" -> WanDitConfig.t2v1_3B();
            case "tiny" -> TINY;
            default -> throw new IllegalArgumentException("--task " + task + " is not known; supported: t2v-14B, t2v-1.3B, tiny");
        };
    }

    public Settings settings() { return settings; }

    public WanDit dit() { return dit; }

    /**
     * Switches to latents (B, 16, F, H, W) with B contexts of {@code textRows} rows: frees the previous shape's
     * activations, draws the host data, resolves {@code --checkpoint_attention} (auto: on when the plan with it fits
     * the GPU's memory less what the CUDA runtime holds; always on the CPU), and starts a new memory high-water mark.
     */
    public void shape(int batch, int latentFrames, int latentHeight, int latentWidth, int textRows) {
        dit.releaseActivations();
        WanDitConfig c = settings.config();
        latentShape = Shape.of(batch, c.inChannels(), latentFrames, latentHeight, latentWidth);
        DeviceFacts device = backend.device();
        // what a plan must fit: the budget less the CUDA runtime, else what the GPU has free plus what this run holds
        long room = !device.hasDeviceMemory() ? 0 : settings.budgetBytes() > 0
                ? settings.budgetBytes() - runtimeBytes(device) : device.memory().freeBytes() + device.memory().liveBytes();
        boolean fits = !device.hasDeviceMemory() || plan(true).fits(room);
        dit.savesAttentionOutputs(settings.checkpointAttention().resolve(fits));
        // fp8 weights kept from each block's recompute for its backward: only where the plan with them fits
        var planned = planSettings(settings, latentShape, dit.savesAttentionOutputs(), device.hasDeviceMemory());
        dit.keepsBackwardWeights(WanMemoryPlan.considersBackwardWeights(planned, settings.gradientCheckpointing())
                && (!device.hasDeviceMemory() || plan(dit.savesAttentionOutputs(), true).fits(room)));
        SplittableRandom random = new SplittableRandom(settings.seed());
        latents = new ArrayList<>();
        texts = new ArrayList<>();
        for (int b = 0; b < batch; b++) {
            latents.add(normals(random, latentShape.numElements() / batch));
            Shape text = Shape.of(textRows, c.textDim());
            texts.add(new LoadedTensor(text, normals(random, text.numElements())));
        }
        backend.synchronize();
        backend.device().memory().resetPeakLiveBytes();
    }

    /** Runs {@code count} steps back to back and times each (the first ones of a new shape include its planning). */
    public List<StepTime> steps(int count) {
        long[] startNanos = new long[count + 1];
        double[] loss = new double[count];
        phases.reset();
        long allocations = backend.device().memory().allocationCount();
        for (int i = 0; i < count; i++) {
            startNanos[i] = System.nanoTime();
            phases.mark();
            loss[i] = runStep(true);
        }
        backend.synchronize(); // the last step's update is still queued
        startNanos[count] = System.nanoTime();
        allocationsInLastSteps = backend.device().memory().allocationCount() - allocations;
        List<StepTime> times = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            times.add(new StepTime((startNanos[i + 1] - startNanos[i]) / 1e9, loss[i],
                    phases.millisBetween(3 * i, 3 * i + 1), phases.millisBetween(3 * i + 1, 3 * i + 2)));
        }
        return times;
    }

    /**
     * The memory plan of {@code wanlora train} for the current shape (its total without the CUDA runtime, which the
     * peak of wanlora's own allocations does not count either), to set beside the measured peak.
     */
    public MemoryPlan plan() {
        return plan(dit.savesAttentionOutputs(), dit.keepsBackwardWeights());
    }

    /** Whether the current shape's steps keep each block's dequantized fp8 weights for its backward. */
    public boolean keepsBackwardWeights() { return dit.keepsBackwardWeights(); }

    /** Whether the current shape's steps keep the self-attention outputs (--checkpoint_attention, resolved). */
    public boolean savesAttentionOutputs() { return dit.savesAttentionOutputs(); }

    private MemoryPlan plan(boolean savesAttention) { return plan(savesAttention, false); }

    private MemoryPlan plan(boolean savesAttention, boolean keepsBackwardWeights) {
        var s = planSettings(settings, latentShape, savesAttention, backend.device().hasDeviceMemory());
        if (keepsBackwardWeights) s = WanMemoryPlan.withBackwardWeights(s);
        return WanMemoryPlan.plan(s, new WanMemoryPlan.Choice(settings.blocksToSwap(), settings.offload()));
    }

    /**
     * The memory plan's inputs for a bench of {@code settings} at latents (B, 16, F, H, W), without the CUDA runtime
     * (wanlora's own allocations): the model, LoRA, optimizer, activations, batch buffers and, on the GPU, the
     * attention workspace. Random weights are bf16 values, so fp8 scales are bf16 as for a bf16 checkpoint.
     */
    public static WanMemoryPlan.Settings planSettings(Settings settings, Shape latent, boolean savesAttention, boolean onGpu) {
        WanDitConfig c = settings.config();
        long[] d = latent.dims();
        var key = new WanDitActivations.Key((int) d[0], (int) d[2], (int) d[3], (int) d[4], settings.rank(),
                !settings.gradientCheckpointing(), settings.gradientCheckpointing() && savesAttention);
        long tokens = d[2] * (d[3] / 2) * (d[4] / 2);
        List<MemoryPlan.Item> others = new ArrayList<>();
        others.add(new MemoryPlan.Item("batch inputs", BatchTensors.sizeBytes(latent), ""));
        if (onGpu) {
            others.add(new MemoryPlan.Item("attention workspace", DeviceFacts.attentionWorkspaceBytes(d[0], c.numHeads(), tokens), ""));
        }
        if (settings.fp8Compute()) others.add(Fp8Compute.inputCodes(c, d[0] * Math.max(tokens, c.textLen())));
        return new WanMemoryPlan.Settings(c, ComputePrecision.BF16_MUSUBI, settings.quantization(), onGpu, DType.BF16,
                List.of(key), OptimizerConfig.fromFlags(settings.optimizerType(), List.of()), BlockStreamer.DEFAULT_SLOTS, others);
    }

    /**
     * What the driver holds besides wanlora's own allocations, as --max_vram counts it: the context and libraries in
     * use (total − free − our live bytes) plus the plan's allocation margin.
     */
    public static long runtimeBytes(DeviceFacts device) {
        return device.usedBytes() - device.memory().liveBytes() + WanMemoryPlan.ALLOCATION_MARGIN_BYTES;
    }

    /** Device allocations (cuMemAlloc calls) during the last {@link #steps} call: 0 in a steady state (DESIGN.md §4). */
    public long deviceAllocationsInLastSteps() { return allocationsInLastSteps; }

    /** One more step with every op timed on the device (slower than a timed step by the recording itself). */
    public List<ProfilingBackend.OpTime> profiledStep() {
        backend.startRecording("model");
        runStep(false);
        backend.synchronize();
        return backend.stopRecording();
    }

    /**
     * A profiled step's device time by phase, in ms: data (the batch's ops up to the first patchify), forward (up to the
     * loss), backward (with the checkpoint recompute), update (clip and optimizer), outside (time between ops: host
     * gaps and waits for the copy stream, i.e. stalls).
     */
    public static Map<String, Double> phaseMillis(List<ProfilingBackend.OpTime> ops) {
        Map<String, Double> phases = new LinkedHashMap<>();
        for (String p : List.of("data", "forward", "backward", "update", "outside")) phases.put(p, 0.0);
        String modelPhase = "data";
        for (ProfilingBackend.OpTime op : ops) {
            String phase;
            if (op.op().equals("(outside)")) {
                phase = "outside";
            } else if (op.phase().equals("update")) {
                phase = "update";
            } else {
                if (op.op().equals("patchify")) modelPhase = "forward";
                if (op.op().equals("mseLoss")) modelPhase = "backward";
                phase = modelPhase;
            }
            phases.merge(phase, op.millis(), Double::sum);
        }
        return phases;
    }

    /**
     * FLOPs of one step's frozen block Linear GEMMs (2 per multiply-add) at {@code tokens} per sample: per block the
     * forward's 10 Linears, the checkpoint recompute's 9 (not ffn.2) and the backward's input gradients of 8 (not
     * cross-attention k, v, whose input is the frozen context); LoRA, attention and the embeddings excluded.
     */
    public static double frozenGemmFlops(WanDitConfig c, long batch, long tokens, boolean checkpointing) {
        double cc = (double) c.dim() * c.dim(), cf = (double) c.dim() * c.ffnDim(), rows = (double) batch * tokens;
        double textRows = (double) batch * c.textLen();
        double forward = rows * (6 * cc + 2 * cf) + textRows * 2 * cc;
        double recompute = checkpointing ? forward - rows * cf : 0;
        double backward = rows * (6 * cc + 2 * cf);
        return 2 * c.numLayers() * (forward + recompute + backward);
    }

    /**
     * The backend's bf16 GEMM rate in TFLOP/s at ffn.0's forward shape (rows × dim)·(ffnDim × dim)ᵀ, the largest
     * Linear: the best of 5 host-timed runs after 2 warm-up runs, on uniform random inputs (zeros would flatter the
     * tensor cores' power draw). Rows are capped at 8192 to keep the host-side fill short. The yardstick of the
     * "GEMM floor" (frozenGemmFlops ÷ this rate).
     */
    public double gemmTflops(long rows) {
        WanDitConfig c = settings.config();
        long m = Math.min(rows, 8192);
        SplittableRandom random = new SplittableRandom(1);
        try (var x = backend.fromFloats(DType.BF16, Shape.of(m, c.dim()), uniform(random, m * c.dim()));
             var w = backend.fromFloats(DType.BF16, Shape.of(c.ffnDim(), c.dim()), uniform(random, (long) c.ffnDim() * c.dim()));
             var y = backend.allocate(DType.BF16, Shape.of(m, c.ffnDim()))) {
            double best = Double.MAX_VALUE;
            for (int i = 0; i < 7; i++) {
                backend.synchronize();
                long t0 = System.nanoTime();
                backend.gemm(y, x, false, w, true, 1, 0, null);
                backend.synchronize();
                if (i >= 2) best = Math.min(best, (System.nanoTime() - t0) / 1e9);
            }
            return 2.0 * m * c.dim() * c.ffnDim() / best / 1e12;
        }
    }

    private static float[] uniform(SplittableRandom random, long n) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) v[i] = (float) (random.nextDouble() * 2 - 1);
        return v;
    }

    /** The step: upload, noise, forward, loss, backward, clip, update; returns the loss. */
    private double runStep(boolean isTimed) {
        BatchTensors b = step.buffers(latentShape);
        for (int i = 0; i < latents.size(); i++) b.upload(i, latents.get(i), texts.get(i));
        step.lossAndGradients(b, objective, settings.seed(), stepCount, 1f, 0);
        if (isTimed) phases.mark();
        backend.phase("update");
        float loss = step.clipAndRead(1)[0];
        step.update(++stepCount, LEARNING_RATE);
        if (isTimed) phases.mark();
        backend.phase("model");
        return loss;
    }

    private static float[] normals(SplittableRandom random, long n) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
        return v;
    }

    @Override
    public void close() {
        step.close();
        clip.close();
        optimizer.close();
        lora.close();
        dit.close();
        weights.close();
        phases.close();
        backend.close();
    }
}
