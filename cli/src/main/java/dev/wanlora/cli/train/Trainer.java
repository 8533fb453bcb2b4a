package dev.wanlora.cli.train;

import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.cli.UserError;
import dev.wanlora.cli.sampling.SampleModels;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.Backends;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.flow.TimestepSampling;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.memory.HostMemory;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.optim.GradClip;
import dev.wanlora.engine.optim.LearningRateSchedule;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.random.RandomSource;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.text.Counts;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraFormat;
import dev.wanlora.models.lora.LoraMetadata;
import dev.wanlora.models.lora.LoraModule;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.lora.NetworkArgs;
import dev.wanlora.models.lora.SavePrecision;
import dev.wanlora.models.musubi.Batch;
import dev.wanlora.models.musubi.BatchSchedule;
import dev.wanlora.models.musubi.Bucket;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.CacheItem;
import dev.wanlora.models.musubi.DatasetConfig;
import dev.wanlora.models.musubi.DatasetException;
import dev.wanlora.models.musubi.DatasetSpec;
import dev.wanlora.models.musubi.FrameExtraction;
import dev.wanlora.models.musubi.FrameSpec;
import dev.wanlora.models.musubi.Resolution;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanMemoryPlan;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Set;
import java.util.TreeSet;

/**
 * One training run of {@code wanlora train}, from checked options to saved LoRA files: musubi's
 * {@code NetworkTrainer.train} loop (trainer_base.py L1780‑2177 at the spec's commit) on our backend.
 *
 * <p>Per batch: read the caches, sample t, draw noise, x_t = (1 − t)·x0 + t·noise, the DiT's loss and LoRA gradients
 * (scaled by 1/gradient_accumulation_steps); per optimizer step (every gradient_accumulation_steps batches, and at the
 * end of an epoch): global-norm clip, AdamW(8bit) with the scheduled learning rate, zero the gradients, report, save.
 *
 * <p>Determinism: every random choice derives from the seed and a position, never from wall time: batch order from
 * (seed, epoch), LoRA init from the seed, timesteps from a generator whose state is saved, noise from (seed, batch
 * index in the run). So a run stopped (Ctrl-C, --stop_at_step) and resumed from its state reproduces the
 * uninterrupted run's losses bit for bit on the CPU backend.
 */
final class Trainer {
    /** Exit code when training stopped on a NaN or infinite loss or gradient. */
    static final int STOPPED_NON_FINITE = 3;
    /** Exit code after Ctrl-C or --stop_at_step: 128 + SIGINT, as shells report an interrupted command. */
    static final int INTERRUPTED = 130;

    /** Independent streams derived from the one seed (xor-ed in, so no two streams share a generator state). */
    private static final long TIMESTEP_STREAM = 0x7469_6D65_7374_6570L; // "timestep"
    private static final long VALIDATION_STREAM = 0x7661_6C69_6461_7465L; // "validate"

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private final TrainOptions o;
    private final PrintWriter out;
    /** Plain progress lines for every step, terminal or not (the demo prints the loss of each step). */
    private final boolean isLinePerStep;

    // set up by run()
    private Backend backend;
    private OutputNames names;
    private CacheDataset data;
    private CacheDataset validationData;
    /** --dry_run without readable caches: the dataset configs whose largest buckets stand in for them; else null. */
    private DatasetConfig dataToml;
    private DatasetConfig validationToml;
    private WanDitConfig modelConfig;
    private WanDit dit;
    private LoraNetwork lora;
    private Optimizer optimizer;
    private TrainStep step;
    private TimestepSampler sampler;
    private LearningRateSchedule schedule;
    private LoraMetadata metadata;
    private LossRecorder losses;
    private TrainLog log;
    private volatile ProgressDisplay progress;
    private long sessionId;
    private double trainingStartedAt;
    private long maxTrainSteps;
    private int epochs;
    private double peakVramGiB = Double.NaN;
    /** What the run is doing, for the out-of-memory message. */
    private String phase = "starting";
    /** The memory plan's inputs, its budget (0: none) and the swap count in use; for the out-of-memory advice. */
    private WanMemoryPlan.Settings memorySettings;
    private long memoryBudget;
    private int blocksToSwap;
    /** The activation offload the plan chose (for the out-of-memory advice). */
    private WanDitActivations.Offload offload = WanDitActivations.Offload.NONE;
    /** --checkpoint_attention resolved by the memory plan. */
    private boolean savesAttentionOutputs;
    private final SampleModels sampleModels;
    /** The run's samples, or null without --sample_prompts and an interval. */
    private TrainSampling sampling;

    Trainer(TrainOptions o, PrintWriter out, boolean isLinePerStep) {
        this(o, out, isLinePerStep, SampleModels.files(o.t5, o.t5_tokenizer, o.fp8_t5, o.vae));
    }

    /** {@code sampleModels}: where samples' text encoder and decoder come from (the demo passes its stand-ins). */
    Trainer(TrainOptions o, PrintWriter out, boolean isLinePerStep, SampleModels sampleModels) {
        this.o = o;
        this.out = out;
        this.isLinePerStep = isLinePerStep;
        this.sampleModels = sampleModels;
    }

    int run() {
        if (o.dry_run) return dryRun();
        sampling = TrainSampling.create(o, sampleModels);
        names = OutputNames.of(o);
        try (OutputLock lock = StartUp.lockOutput(o.output_dir, out)) {
            return runLocked();
        }
    }

    /** The run, while this process holds --output_dir (issue 15: one run per folder). */
    private int runLocked() {
        TrainState resumed = o.resume == null ? null : TrainState.read(o.resume);
        refuseOverwrite(resumed);
        resolveSeed(resumed);
        try (Backend b = openBackend(); TrainSampling closeSampling = sampling) {
            backend = b;
            return train(resumed);
        } catch (RuntimeException e) {
            if (!Backends.isOutOfDeviceMemory(e)) throw e;
            throw new UserError("out of GPU memory while " + phase + " (" + e.getMessage() + "); "
                    + memoryAdvice(), e);
        } catch (OutOfMemoryError e) {
            throw new UserError(StartUp.heapAdvice(phase, o), e);
        }
    }

    /**
     * --dry_run: the memory plan of this command line, then exit (0: it fits; a plan over the budget ends in the
     * over-budget UserError, exit 2, naming the smallest change that fits). The model's shapes come from --dit's header,
     * or from --task when the file is not here; the input shapes from the caches, or from the dataset TOML's largest
     * buckets when the caches cannot be read. With --max_vram no GPU is touched; without it the GPU's memory is the
     * budget (no GPU: the plan is printed unchecked).
     */
    private int dryRun() {
        phase = "planning memory (--dry_run)";
        data = discoverOrToml(o.dataset_config, "--dataset_config", false);
        if (o.validation_dataset_config != null) {
            validationData = discoverOrToml(o.validation_dataset_config, "--validation_dataset_config", true);
        }
        DType blockDType;
        ComputePrecision precision;
        if (o.dit != null && Files.exists(o.dit)) {
            try (SafeTensors checkpoint = openCheckpoint()) {
                precision = precision(checkpoint);
                blockDType = checkpoint.info("blocks.0.self_attn.q.weight").dtype();
            }
        } else {
            String task = o.task.equals("t2i-14B") ? "t2v-14B" : o.task;
            modelConfig = BenchRun.taskConfig(task);
            if (o.blocks_to_swap != null && !o.blocks_to_swap.isAuto() && o.blocks_to_swap.count() > modelConfig.numLayers() - 1) {
                throw new UserError("--blocks_to_swap " + o.blocks_to_swap + ": this model has " + modelConfig.numLayers()
                        + " blocks, so at most " + (modelConfig.numLayers() - 1) + " can be swapped (musubi's limit: blocks − 1)");
            }
            // Wan's released checkpoints are bf16; --fp8_scaled then keeps bf16 scales
            blockDType = DType.BF16;
            precision = "no".equals(o.mixed_precision) ? ComputePrecision.FP32 : ComputePrecision.BF16_MUSUBI;
            out.printf(Locale.ROOT, "model: --task %s, %d blocks, dim %d (shapes from the task's config%s; a bf16 checkpoint"
                    + " assumed)%n", o.task, modelConfig.numLayers(), modelConfig.dim(),
                    o.dit == null ? "" : ": " + o.dit + " is not here");
        }
        if (o.max_vram != null) return dryRunPlan(blockDType, precision);
        try (Backend b = openBackend()) {
            backend = b;
            return dryRunPlan(blockDType, precision);
        }
    }

    private int dryRunPlan(DType blockDType, ComputePrecision precision) {
        planMemory(blockDType, precision);
        out.println(memoryBudget > 0 ? "dry run: the plan fits; nothing was loaded"
                : "dry run: no GPU and no --max_vram, so nothing to check the plan against; pass e.g. --max_vram 24G");
        return 0;
    }

    /** The dataset's caches; under --dry_run, when they cannot be read, its TOML (its largest buckets stand in). */
    private CacheDataset discoverOrToml(Path config, String flag, boolean isValidation) {
        DatasetConfig dc;
        try {
            dc = DatasetConfig.load(config);
        } catch (DatasetException e) {
            throw new UserError(e.getMessage(), e);
        }
        try {
            return discover(config, flag);
        } catch (UserError e) {
            out.println("info: " + flag + ": caches not readable (" + e.getMessage() + "); planning for the largest bucket"
                    + " of each dataset, from its resolution and frame settings");
            if (isValidation) validationToml = dc;
            else dataToml = dc;
            return null;
        }
    }

    private int train(TrainState resumed) {
        phase = "reading the dataset";
        data = discover(o.dataset_config, "--dataset_config");
        validationData = o.validation_dataset_config == null ? null : discover(o.validation_dataset_config, "--validation_dataset_config");
        long stepsPerEpoch = data.stepsPerEpoch(o.gradient_accumulation_steps);
        maxTrainSteps = o.max_train_epochs != null ? data.maxTrainSteps(o.max_train_epochs, o.gradient_accumulation_steps)
                : o.max_train_steps;
        epochs = Math.toIntExact(Math.ceilDiv(maxTrainSteps, stepsPerEpoch));
        if (resumed != null) resumed.checkAgainst(o.resume, data.batchesPerEpoch(), epochs, maxTrainSteps, 0);
        String override = FlagOverrides.epochsOverSteps(o, maxTrainSteps, epochs);
        if (override != null) out.println(override);
        out.println("dataset: " + Counts.of(data.numTrainItems(), "item") + ", "
                + Counts.of(data.batchesPerEpoch(), "batch", "batches") + " per epoch, " + Counts.of(stepsPerEpoch, "step")
                + " per epoch; " + Counts.of(maxTrainSteps, "step") + " in " + Counts.of(epochs, "epoch"));

        try (SafeTensors checkpoint = openCheckpoint()) {
            if (sampling != null) {
                phase = "encoding the sample prompts";
                sampling.prepare(backend, modelConfig.textDim(), out);
            }
            ComputePrecision precision = precision(checkpoint);
            WanMemoryPlan.Choice choice = planMemory(checkpoint.info("blocks.0.self_attn.q.weight").dtype(), precision);
            WanDitWeights.BlockSwap swap = new WanDitWeights.BlockSwap(choice.blocksToSwap(), o.block_swap_ring_size);
            phase = "loading the DiT";
            try (WanDitWeights weights = loadWeights(checkpoint, precision, swap)) {
                WanDit dit = new WanDit(backend, modelConfig, weights, precision, o.gradient_checkpointing);
                dit.savesAttentionOutputs(savesAttentionOutputs);
                dit.offloadActivations(choice.offload());
                return train(resumed, dit);
            }
        }
    }

    private int train(TrainState resumed, WanDit model) {
        try (WanDit closeDit = model;
             LoraNetwork network = createLora(resumed);
             Optimizer opt = createOptimizer(network);
             GradClip gradClip = new GradClip(backend, (float) o.max_grad_norm);
             // a step never accumulates across an epoch's end, so no more batches than an epoch has
             TrainStep trainStep = new TrainStep(backend, closeDit, network, opt, gradClip,
                     (int) Math.min(o.gradient_accumulation_steps, data.batchesPerEpoch()))) {
            dit = closeDit;
            lora = network;
            optimizer = opt;
            step = trainStep;
            return loop(resumed);
        }
    }

    // ------------------------------------------------------------------------------------------------ set-up

    /**
     * Refuses to write over a run with the same name unless --overwrite; with --resume, refuses to write over that
     * run's files saved after the state (resuming an older state of a run that went on).
     */
    private void refuseOverwrite(TrainState resumed) {
        if (o.overwrite) return;
        if (resumed != null) {
            List<Path> newer = names.writtenAfter(o.output_dir, resumed.globalStep(), resumed.epoch(), o.resume);
            if (!newer.isEmpty()) {
                throw new UserError("--resume " + o.resume + ": " + o.output_dir + " holds " + newer.size()
                        + " file(s) saved after this state (step " + resumed.globalStep() + ") that the run would overwrite: "
                        + OutputNames.listed(newer) + "; pass --overwrite to replace them, resume from a later state, or"
                        + " choose another --output_dir or --output_name");
            }
            return;
        }
        List<Path> existing = names.existingRunFiles(o.output_dir);
        if (!existing.isEmpty()) {
            throw new UserError(existing.getFirst() + ": exists from an earlier run named '" + o.output_name + "' ("
                    + existing.size() + " file(s)); pass --overwrite to replace them, --resume STATE to continue that run,"
                    + " or choose another --output_name");
        }
    }

    private void resolveSeed(TrainState resumed) {
        if (resumed != null) {
            if (o.seed != null && o.seed != resumed.seed()) {
                throw new UserError("--seed " + o.seed + " differs from the seed " + resumed.seed() + " of the state in "
                        + o.resume + "; drop --seed to continue that run");
            }
            o.seed = resumed.seed();
        } else if (o.seed == null) {
            // musubi draws a random seed when none is given; ours is printed and saved so the run can be repeated
            o.seed = new SecureRandom().nextLong() & 0x7FFF_FFFFL;
            out.println("info: --seed not given; using --seed " + o.seed);
        }
    }

    private Backend openBackend() {
        String reason = o.backend.equals("cpu") ? null : Backends.gpuUnavailableReason();
        if (o.backend.equals("cuda") && reason != null) {
            throw new UserError("--backend cuda: no usable GPU (" + reason + "); use --backend cpu or run on a machine"
                    + " with an NVIDIA GPU and driver");
        }
        Backend b;
        try {
            b = Backends.create(o.backend.equals("cpu") || reason != null ? "cpu" : "cuda");
        } catch (UnsupportedOperationException e) {
            throw new UserError(e.getMessage(), e);
        }
        if (o.backend.equals("auto") && reason != null) out.println("info: no usable GPU (" + reason + "); training on the CPU");
        out.println("backend: " + b.name());
        return b;
    }

    /** The run's backend is a GPU with memory to budget (false under --dry_run --max_vram, where none is opened). */
    private boolean onGpu() {
        return backend != null && backend.device().hasDeviceMemory();
    }

    /** The run's backend stores fp32 (the CPU reference). */
    private boolean storesFp32() {
        return backend != null && backend.device().storesFp32();
    }

    private CacheDataset discover(Path config, String flag) {
        try {
            DatasetConfig dc = DatasetConfig.load(config);
            dc.warnings().forEach(w -> out.println("warning: " + w));
            CacheDataset d = CacheDataset.discover(dc, new CacheDataset.Options(o.skip_bad_items));
            d.warnings().forEach(w -> out.println("warning: " + w));
            return d;
        } catch (DatasetException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    private SafeTensors openCheckpoint() {
        SafeTensors checkpoint = SafeTensors.open(o.dit, SafeTensors.DIT_PREFIXES);
        try {
            modelConfig = WanDitConfig.fromCheckpoint(checkpoint);
            if (o.task != null) {
                // musubi's t2i-14B is the t2v-14B network trained on images
                modelConfig.requireTask(o.task.equals("t2i-14B") ? "t2v-14B" : o.task, o.dit.getFileName().toString());
            } else {
                o.task = modelConfig.taskName();
            }
        } catch (IllegalArgumentException e) {
            checkpoint.close();
            throw new UserError(e.getMessage(), e);
        }
        if (o.network_dim != null && o.network_dim > modelConfig.dim()) {
            checkpoint.close();
            throw new UserError("--network_dim " + o.network_dim + ": above the model width " + modelConfig.dim()
                    + ", where a LoRA update is already full-rank; pass --network_dim " + modelConfig.dim() + " or less");
        }
        int maxSwap = modelConfig.numLayers() - 1;
        if (o.blocks_to_swap != null && !o.blocks_to_swap.isAuto() && o.blocks_to_swap.count() > maxSwap) {
            checkpoint.close();
            throw new UserError("--blocks_to_swap " + o.blocks_to_swap + ": this model has " + modelConfig.numLayers()
                    + " blocks, so at most " + maxSwap + " can be swapped (musubi's limit: blocks − 1)");
        }
        out.printf(Locale.ROOT, "model: %s, %d blocks, dim %d%s%n", o.dit.getFileName(), modelConfig.numLayers(),
                modelConfig.dim(), o.task == null ? "" : " (" + o.task + ")");
        return checkpoint;
    }

    /**
     * musubi's --mixed_precision against the checkpoint's dtype (wan_train_network.py L62‑65): bf16 compute follows
     * musubi's bf16 path; "no" computes in fp32. Not given, the checkpoint's dtype decides (musubi would stop).
     */
    private ComputePrecision precision(SafeTensors checkpoint) {
        if ("no".equals(o.mixed_precision)) return ComputePrecision.FP32;
        if ("bf16".equals(o.mixed_precision)) return ComputePrecision.BF16_MUSUBI;
        DType fileDType = checkpoint.info("patch_embedding.weight").dtype();
        ComputePrecision p = fileDType == DType.F32 || fileDType == DType.F16 ? ComputePrecision.FP32 : ComputePrecision.BF16_MUSUBI;
        o.mixed_precision = p == ComputePrecision.FP32 ? "no" : "bf16";
        out.println("info: --mixed_precision not given; using " + o.mixed_precision + " for this " + fileDType + " checkpoint");
        return p;
    }

    private WanDitWeights.Quantization quantization() {
        return !o.fp8_base ? WanDitWeights.Quantization.NONE
                : o.fp8_scaled ? WanDitWeights.Quantization.FP8_SCALED : WanDitWeights.Quantization.FP8_BASE;
    }

    private WanDitWeights loadWeights(SafeTensors checkpoint, ComputePrecision precision, WanDitWeights.BlockSwap swap) {
        try {
            // The CPU reference stores fp8 weights dequantized (exactly the values a GPU dequantizes before each GEMM).
            try (LoadProgress progress = LoadProgress.start(out, ProgressDisplay.isTerminal() && !isLinePerStep,
                    o.dit.getFileName().toString(), WanDitWeights.loadBytes(checkpoint))) {
                return WanDitWeights.load(backend, checkpoint, modelConfig, precision, quantization(),
                        !backend.device().keepsFp8Quantized(), swap, progress);
            }
        } catch (IllegalArgumentException | SafeTensorsException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------------------------------------ memory plan

    /**
     * DESIGN.md §6: sizes every device buffer of the run from the settings before anything is allocated, prints the
     * plan, resolves {@code --blocks_to_swap auto} to the cheapest configuration that fits (swap count and activation
     * offload, {@link WanMemoryPlan#cheapestFitting}), and refuses a plan over the budget (the GPU's memory, or
     * --max_vram) naming the smallest count that would fit. On the CPU the plan is printed as a GPU would hold it and
     * checked only against an explicit --max_vram. The host plan (pinned swapped blocks, offloaded activations,
     * staging) is printed too and refused over --max_host_ram (default: MemAvailable).
     */
    private WanMemoryPlan.Choice planMemory(DType blockDType, ComputePrecision precision) {
        phase = "planning memory";
        memoryBudget = memoryBudget();
        OptimizerConfig optimizerConfig;
        try {
            optimizerConfig = OptimizerConfig.fromFlags(o.optimizer_type, o.optimizer_args == null ? List.of() : o.optimizer_args);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        boolean plansForGpu = o.dry_run || !storesFp32();
        List<WanDitActivations.Key> shapes = inputShapes(loraRankForPlan(), false);
        WanMemoryPlan.Settings without = new WanMemoryPlan.Settings(modelConfig, precision, quantization(),
                plansForGpu, blockDType, shapes, optimizerConfig, o.block_swap_ring_size, callerMemory(shapes, precision));
        List<WanDitActivations.Key> savingShapes = inputShapes(loraRankForPlan(), true);
        WanMemoryPlan.Settings with = new WanMemoryPlan.Settings(modelConfig, precision, quantization(),
                plansForGpu, blockDType, savingShapes, optimizerConfig, o.block_swap_ring_size, callerMemory(savingShapes, precision));
        CheckpointAttention attentionMode = o.checkpoint_attention == null ? CheckpointAttention.AUTO : o.checkpoint_attention;
        int maxSwap = modelConfig.numLayers() - 1;
        boolean isAuto = o.blocks_to_swap != null && o.blocks_to_swap.isAuto();
        long hostBudget = hostBudget();
        // musubi's --gradient_checkpointing_cpu_offload: every saved block input in host memory
        WanDitActivations.Offload forcedOffload = o.gradient_checkpointing && o.gradient_checkpointing_cpu_offload
                ? new WanDitActivations.Offload(modelConfig.numLayers() + 1, 0, WanMemoryPlan.OFFLOAD_RING_SLOTS)
                : WanDitActivations.Offload.NONE;
        // auto never swaps more blocks or offloads more to afford the saved attention outputs: it takes them only
        // where they fit
        memorySettings = o.gradient_checkpointing && attentionMode == CheckpointAttention.ON ? with : without;
        OptionalInt fitting = memoryBudget > 0 ? WanMemoryPlan.smallestFittingSwap(memorySettings, memoryBudget) : OptionalInt.of(0);
        WanMemoryPlan.Choice choice = isAuto ? autoChoice(memorySettings, fitting, forcedOffload, hostBudget)
                : new WanMemoryPlan.Choice(o.blocks_to_swap == null ? 0 : o.blocks_to_swap.count(), forcedOffload);
        blocksToSwap = choice.blocksToSwap();
        offload = choice.offload();
        boolean fitsWith = memoryBudget <= 0 || WanMemoryPlan.plan(with, choice).fits(memoryBudget);
        savesAttentionOutputs = o.gradient_checkpointing && attentionMode.resolve(fitsWith);
        if (savesAttentionOutputs && memorySettings != with) {
            memorySettings = with;
            fitting = memoryBudget > 0 ? WanMemoryPlan.smallestFittingSwap(memorySettings, memoryBudget) : OptionalInt.of(0);
        }
        MemoryPlan plan = WanMemoryPlan.plan(memorySettings, choice);
        WanDitActivations.Key largest = largestShape(shapes);
        String attention = !o.gradient_checkpointing ? "" : "; --checkpoint_attention " + (savesAttentionOutputs ? "on" : "off")
                + (attentionMode != CheckpointAttention.AUTO ? "" : savesAttentionOutputs ? " chosen by auto"
                : " chosen by auto: with it the plan exceeds the budget");
        String offload = !choice.offload().isOffloading() ? "" : "; activation offload: saved inputs of "
                + choice.offload().blockInputs() + " blocks" + (choice.offload().attentionOutputs() == 0 ? ""
                : " and attention outputs of " + choice.offload().attentionOutputs()) + " in host memory"
                + (isAuto ? " (auto)" : " (--gradient_checkpointing_cpu_offload)");
        out.printf(Locale.ROOT, "memory plan (--blocks_to_swap %d%s, rank %d, largest input %d×%d×%d×%d latent = %d tokens%s%s%s%s):%n",
                blocksToSwap, isAuto ? " chosen by auto" : "", largest.loraRank(), largest.batch(), largest.frames(),
                largest.height(), largest.width(), tokens(largest), attention, offload,
                memoryBudget > 0 ? "; budget " + budgetSource() : "",
                storesFp32() && !o.dry_run ? "; as a GPU holds it, the CPU backend stores fp32" : "");
        plan.format(memoryBudget).forEach(out::println);
        MemoryPlan host = WanMemoryPlan.hostPlan(memorySettings, choice);
        out.println("host memory plan (besides the JVM; budget " + hostBudgetSource(hostBudget) + "):");
        host.format(hostBudget).forEach(out::println);
        if (memoryBudget > 0 && !plan.fits(memoryBudget)) throw new UserError(overBudget(plan, fitting, hostBudget));
        if (hostBudget > 0 && !host.fits(hostBudget)) {
            throw new UserError(String.format(Locale.ROOT, "host memory plan: %s (pinned swapped blocks %s, offloaded"
                            + " activations %s, staging %s) exceeds %s; swap fewer blocks, drop"
                            + " --gradient_checkpointing_cpu_offload, or free host memory", MemoryPlan.formatBytes(host.totalBytes()),
                    MemoryPlan.formatBytes(host.bytesOf(WanMemoryPlan.HOST_SWAPPED)),
                    MemoryPlan.formatBytes(host.bytesOf(WanMemoryPlan.HOST_OFFLOADED)),
                    MemoryPlan.formatBytes(host.bytesOf(WanMemoryPlan.HOST_STAGING)), hostBudgetSource(hostBudget)));
        }
        if (blocksToSwap > 0) {
            out.printf(Locale.ROOT, "block streaming: the Linear weights of blocks %d..%d from %s of %s host memory through %d"
                            + " device slots%n", modelConfig.numLayers() - blocksToSwap, maxSwap,
                    MemoryPlan.formatBytes(WanMemoryPlan.hostBytes(memorySettings, blocksToSwap)),
                    backend != null && !backend.device().pinsHostMemory() ? "ordinary" : "pinned", o.block_swap_ring_size);
        }
        return choice;
    }

    /**
     * --blocks_to_swap auto: the smallest swap count that fits without offload; else the cheapest swap count and
     * activation offload that fit (with --gradient_checkpointing); else the largest swap count (refused by the caller).
     */
    private WanMemoryPlan.Choice autoChoice(WanMemoryPlan.Settings s, OptionalInt fitting, WanDitActivations.Offload forced,
                                            long hostBudget) {
        int maxSwap = modelConfig.numLayers() - 1;
        if (memoryBudget <= 0) return new WanMemoryPlan.Choice(0, forced);
        if (forced.isOffloading()) {
            OptionalInt n = MemoryPlan.smallestFitting(0, maxSwap, k -> WanMemoryPlan.plan(s, new WanMemoryPlan.Choice(k, forced)),
                    memoryBudget);
            return new WanMemoryPlan.Choice(n.orElse(maxSwap), forced);
        }
        if (fitting.isPresent()) return WanMemoryPlan.Choice.swapping(fitting.getAsInt());
        WanMemoryPlan.Choice c = o.gradient_checkpointing
                ? WanMemoryPlan.cheapestFitting(s, memoryBudget, hostBudget, true) : null;
        return c != null ? c : WanMemoryPlan.Choice.swapping(maxSwap);
    }

    /** The host budget: --max_host_ram, else MemAvailable of /proc/meminfo (0 when unknown: unchecked). */
    private long hostBudget() {
        if (o.max_host_ram != null) return MemoryPlan.parseBytes("--max_host_ram", o.max_host_ram);
        return HostMemory.availableBytes();
    }

    private String hostBudgetSource(long hostBudget) {
        if (hostBudget <= 0) return "unknown: /proc/meminfo not readable; pass --max_host_ram";
        return MemoryPlan.formatBytes(hostBudget) + (o.max_host_ram != null ? " (--max_host_ram " + o.max_host_ram + ")"
                : " (MemAvailable)");
    }

    /** The over-budget message: the plan's total, the budget, and the smallest count that fits (or what to change). */
    private String overBudget(MemoryPlan plan, OptionalInt fitting, long hostBudget) {
        String head = String.format(Locale.ROOT, "memory plan: %s with --blocks_to_swap %d exceeds the budget of %s",
                MemoryPlan.formatBytes(plan.totalBytes()), blocksToSwap, budgetSource())
                + (savesAttentionOutputs ? String.format(Locale.ROOT, " (of which %s saved attention outputs:"
                + " --checkpoint_attention auto or off drops them)",
                MemoryPlan.formatBytes(plan.bytesOf(WanMemoryPlan.SAVED_ATTENTION))) : "");
        if (fitting.isPresent()) {
            return head + String.format(Locale.ROOT, "; --blocks_to_swap %d fits (%s): pass it, or --blocks_to_swap auto",
                    fitting.getAsInt(), MemoryPlan.formatBytes(WanMemoryPlan.plan(memorySettings, fitting.getAsInt()).totalBytes()));
        }
        WanMemoryPlan.Choice offloading = o.gradient_checkpointing
                ? WanMemoryPlan.cheapestFitting(memorySettings, memoryBudget, hostBudget, true) : null;
        if (offloading != null) {
            WanDitActivations.Offload off = offloading.offload();
            return head + String.format(Locale.ROOT, "; with activation offload it fits: --blocks_to_swap auto (%d blocks"
                            + " swapped, saved inputs of %d blocks%s in host memory: %s)", offloading.blocksToSwap(),
                    off.blockInputs(), off.attentionOutputs() == 0 ? "" : " and attention outputs of " + off.attentionOutputs(),
                    MemoryPlan.formatBytes(WanMemoryPlan.plan(memorySettings, offloading).totalBytes()));
        }
        int maxSwap = modelConfig.numLayers() - 1;
        MemoryPlan most = WanMemoryPlan.plan(memorySettings, maxSwap);
        WanDitActivations.Key largest = largestShape(memorySettings.shapes());
        return head + String.format(Locale.ROOT, "; even --blocks_to_swap %d (the most for %d blocks) needs %s, of which %s"
                        + " are activations (largest input %d×%d×%d×%d latent, %d tokens): lower the resolution or frame count"
                        + " of the largest bucket in the dataset config%s", maxSwap, modelConfig.numLayers(),
                MemoryPlan.formatBytes(most.totalBytes()),
                MemoryPlan.formatBytes(most.bytesOf(WanMemoryPlan.SAVED_INPUTS) + most.bytesOf(WanMemoryPlan.RECOMPUTE)),
                largest.batch(), largest.frames(), largest.height(), largest.width(), tokens(largest),
                o.gradient_checkpointing ? "" : ", or add --gradient_checkpointing");
    }

    /** The budget in bytes: --max_vram (at most the GPU's memory), else the GPU's memory; 0 on the CPU without --max_vram. */
    private long memoryBudget() {
        long asked = o.max_vram == null ? 0 : MemoryPlan.parseBytes("--max_vram", o.max_vram);
        if (!onGpu()) return asked;
        long total = backend.device().totalMemoryBytes();
        if (asked > total) {
            out.println("info: --max_vram " + o.max_vram + " is more than the GPU's " + MemoryPlan.formatBytes(total)
                    + "; planning for the GPU's memory");
        }
        return asked > 0 ? Math.min(asked, total) : total;
    }

    private String budgetSource() {
        return MemoryPlan.formatBytes(memoryBudget) + (o.max_vram != null ? " (--max_vram " + o.max_vram + ")" : " (the GPU's memory)");
    }

    /** The LoRA rank the run will use: --network_dim, or the rank of the file it starts from (read again later). */
    private int loraRankForPlan() {
        if (o.network_dim != null) return o.network_dim;
        Path source = o.resume != null ? o.resume.resolve(TrainState.LORA_FILE) : o.network_weights;
        if (source == null) return 4;
        try {
            return LoraFile.read(source).modules().getFirst().rank();
        } catch (IllegalArgumentException | SafeTensorsException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    /**
     * Every activation plan key the run will make (WanDit keeps one per input shape): per bucket of the training data
     * the full batch and the short last batch, without gradient checkpointing keeping every block's intermediates;
     * the validation data's forward-only shapes. {@code savesAttention}: with gradient checkpointing, the keys
     * {@link WanDit#plan} makes once {@link WanDit#savesAttentionOutputs(boolean)} is on (forward-only calls share them).
     */
    private List<WanDitActivations.Key> inputShapes(int rank, boolean savesAttention) {
        Set<WanDitActivations.Key> keys = new java.util.LinkedHashSet<>();
        if (data != null) addShapes(keys, data, rank, !o.gradient_checkpointing);
        else addLargestBuckets(keys, dataToml, rank, !o.gradient_checkpointing);
        if (validationData != null) addShapes(keys, validationData, rank, false);
        else if (validationToml != null) addLargestBuckets(keys, validationToml, rank, false);
        boolean saves = savesAttention && o.gradient_checkpointing;
        return keys.stream().map(k -> new WanDitActivations.Key(k.batch(), k.frames(), k.height(), k.width(),
                k.loraRank(), k.keepsBlockIntermediates(), saves)).distinct().toList();
    }

    private static void addShapes(Set<WanDitActivations.Key> keys, CacheDataset dataset, int rank, boolean keepsIntermediates) {
        for (CacheDataset.DatasetCache d : dataset.datasets()) {
            int batchSize = d.spec().batchSize();
            for (Map.Entry<Bucket, List<CacheItem>> bucket : d.buckets().entrySet()) {
                long items = d.trainItemCount(bucket.getKey());
                Set<List<Long>> latents = new java.util.HashSet<>();
                for (CacheItem item : bucket.getValue()) {
                    long[] l = item.latentShape().dims(); // (16, F, H, W)
                    latents.add(List.of(l[1], l[2], l[3]));
                }
                // items of a bucket share a latent shape whenever batches hold more than one (discovery checks it)
                TreeSet<Long> batches = new TreeSet<>();
                if (latents.size() > 1) batches.add(1L);
                else {
                    batches.add(Math.min(batchSize, items));
                    if (items > batchSize && items % batchSize != 0) batches.add(items % batchSize);
                }
                for (List<Long> l : latents) {
                    for (long b : batches) {
                        keys.add(new WanDitActivations.Key((int) b, l.get(0).intValue(), l.get(1).intValue(),
                                l.get(2).intValue(), rank, keepsIntermediates));
                    }
                }
            }
        }
    }

    /**
     * Without caches (--dry_run): per dataset the bucket musubi's bucketing could produce with the most tokens, at the
     * dataset's batch size and its longest clip (the largest target_frames; FULL: max_frames rounded to 4n+1; an image: 1).
     */
    private static void addLargestBuckets(Set<WanDitActivations.Key> keys, DatasetConfig config, int rank,
                                          boolean keepsIntermediates) {
        for (DatasetSpec d : config.datasets()) {
            List<Resolution> buckets = d.bucketSelector().buckets();
            // among buckets of equal token count, the configured resolution (it is one when its sides are multiples of 16)
            Resolution largest = buckets.contains(d.resolution()) ? d.resolution() : null;
            for (Resolution r : buckets) {
                if (largest == null || (r.width() / 16) * (r.height() / 16) > (largest.width() / 16) * (largest.height() / 16)) {
                    largest = r;
                }
            }
            int frames = 1;
            if (d.isVideo()) {
                frames = d.frames().extraction() == FrameExtraction.FULL ? FrameSpec.roundDownTo4nPlus1(d.frames().maxFrames())
                        : d.frames().targetFrames().stream().mapToInt(Integer::intValue).max().orElse(1);
            }
            keys.add(new WanDitActivations.Key(d.batchSize(), FrameSpec.latentFrames(frames), largest.height() / 8,
                    largest.width() / 8, rank, keepsIntermediates));
        }
    }

    /** What the trainer and the backend allocate besides the model: batch tensors; on the GPU the attention workspace and the runtime. */
    private List<MemoryPlan.Item> callerMemory(List<WanDitActivations.Key> shapes, ComputePrecision precision) {
        long attention = 0;
        java.util.Set<Shape> latents = new java.util.HashSet<>();
        for (WanDitActivations.Key k : shapes) {
            latents.add(Shape.of(k.batch(), modelConfig.inChannels(), k.frames(), k.height(), k.width()));
            attention = Math.max(attention, DeviceFacts.attentionWorkspaceBytes(k.batch(), modelConfig.numHeads(), tokens(k)));
        }
        // TrainStep keeps one set of batch buffers per latent shape, reused by every batch of that shape
        long batch = latents.stream().mapToLong(BatchTensors::sizeBytes).sum();
        List<MemoryPlan.Item> items = new ArrayList<>();
        items.add(new MemoryPlan.Item("batch inputs", batch, "per batch shape: x0, x_t, target fp32, noise bf16, 512-row bf16 contexts"));
        if (sampling != null) items.add(sampling.memoryItem(modelConfig, precision, loraRankForPlan()));
        if (onGpu()) {
            items.add(new MemoryPlan.Item("attention workspace", attention, "backward delta (B, N, L) fp32"));
            items.add(new MemoryPlan.Item("CUDA runtime", backend.device().usedBytes(),
                    "in use before loading: context, kernels, cuBLASLt workspace, other processes"));
        } else if (o.dry_run) {
            items.add(new MemoryPlan.Item("attention workspace", attention, "backward delta (B, N, L) fp32"));
            items.add(new MemoryPlan.Item("CUDA runtime", WanMemoryPlan.ESTIMATED_CUDA_RUNTIME_BYTES,
                    "estimated, no GPU touched: context, kernels, cuBLASLt handle and workspace"));
        }
        if (onGpu() || o.dry_run) {
            items.add(new MemoryPlan.Item("allocation margin", WanMemoryPlan.ALLOCATION_MARGIN_BYTES,
                    "the driver's rounding of a few hundred allocations to 2 MiB pages"));
        }
        return items;
    }

    private static WanDitActivations.Key largestShape(List<WanDitActivations.Key> shapes) {
        WanDitActivations.Key best = shapes.getFirst();
        for (WanDitActivations.Key k : shapes) if (k.batch() * tokens(k) > best.batch() * tokens(best)) best = k;
        return best;
    }

    private static long tokens(WanDitActivations.Key k) {
        return (long) k.frames() * (k.height() / 2) * (k.width() / 2);
    }

    private LoraNetwork createLora(TrainState resumed) {
        phase = "creating the LoRA";
        Path source = resumed != null ? o.resume.resolve(TrainState.LORA_FILE) : o.network_weights;
        LoraNetwork network;
        if (source == null) {
            try {
                network = LoraNetwork.create(backend, modelConfig, o.network_dim == null ? 4 : o.network_dim,
                        (float) o.network_alpha, o.seed, networkArgs().selection());
            } catch (IllegalArgumentException e) {
                throw new UserError(e.getMessage(), e);
            }
        } else {
            network = readLora(source);
            int rank = network.modules().getFirst().rank();
            if (o.network_dim != null && o.network_dim != rank) {
                network.close();
                throw new UserError(source + ": LoRA rank " + rank + " differs from --network_dim " + o.network_dim
                        + "; pass --network_dim " + rank + " or leave it out");
            }
            out.println((resumed != null ? "resuming LoRA from " : "initial LoRA weights from ") + source + " (rank " + rank + ")");
        }
        out.printf(Locale.ROOT, "LoRA: %d modules, rank %d, alpha %s, %,d parameters%n", network.modules().size(),
                network.modules().getFirst().rank(), fmt(network.modules().getFirst().alpha()), network.numParameters());
        if (networkArgs().isVerbose()) { // lora.py: each module's name, rank and alpha
            for (LoraModule m : network.modules()) {
                out.printf(Locale.ROOT, "\t%-50s %d, %s%n", m.name(), m.rank(), fmt(m.alpha()));
            }
        }
        return network;
    }

    /** The size of a file that was just read (0 if it cannot be asked: the summary line is informational). */
    private static long fileBytes(Path file) {
        try {
            return java.nio.file.Files.size(file);
        } catch (java.io.IOException e) {
            return 0;
        }
    }

    /** musubi's ss_network_args: json.dumps of the key → value strings (Python's ", " and ": " separators), or null. */
    private String networkArgsJson() throws com.fasterxml.jackson.core.JacksonException {
        if (o.network_args == null || o.network_args.isEmpty()) return null;
        StringBuilder sb = new StringBuilder("{");
        for (var e : networkArgs().values().entrySet()) {
            if (sb.length() > 1) sb.append(", ");
            sb.append(JSON.writeValueAsString(e.getKey())).append(": ").append(JSON.writeValueAsString(e.getValue()));
        }
        return sb.append('}').toString();
    }

    /** --network_args as musubi's lora_wan reads them. */
    private NetworkArgs networkArgs() {
        try {
            return NetworkArgs.parse(o.network_args == null ? List.of() : o.network_args);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    private LoraNetwork readLora(Path file) {
        try {
            long start = System.nanoTime();
            LoraNetwork network = LoraNetwork.fromWeights(backend, modelConfig, LoraFile.read(file).modules(), file.toString(),
                    networkArgs().selection());
            out.println(LoadProgress.summary(file.getFileName().toString(), fileBytes(file), (System.nanoTime() - start) / 1e9));
            return network;
        } catch (IllegalArgumentException | SafeTensorsException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    private Optimizer createOptimizer(LoraNetwork network) {
        phase = "creating the optimizer";
        OptimizerConfig config;
        try {
            config = OptimizerConfig.fromFlags(o.optimizer_type, o.optimizer_args == null ? List.of() : o.optimizer_args);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        out.println("optimizer: " + config.metadataName() + ", lr " + ProgressDisplay.learningRate(o.learning_rate) + " (" + o.lr_scheduler + ")");
        NetworkArgs args = networkArgs();
        if (args.hasLoraplus()) out.println("LoRA+: lora_up learning rate × " + fmt(args.loraplusLrRatio()));
        try {
            return TrainStep.optimizer(backend, config, network, (float) args.loraplusLrRatio());
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------------------------------------ the loop

    private int loop(TrainState resumed) {
        try {
            schedule = new LearningRateSchedule(LearningRateSchedule.Kind.fromFlag(o.lr_scheduler), o.learning_rate,
                    o.lr_warmup_steps.resolve(maxTrainSteps), maxTrainSteps, o.lr_scheduler_num_cycles, o.lr_scheduler_power)
                    .with(o.lr_decay_steps.resolve(maxTrainSteps), o.lr_scheduler_timescale == null ? 0 : o.lr_scheduler_timescale,
                            o.lr_scheduler_min_lr_ratio == null ? Double.NaN : o.lr_scheduler_min_lr_ratio);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        TimestepSampler.Config samplerConfig = new TimestepSampler.Config(TimestepSampling.fromFlag(o.timestep_sampling),
                o.discrete_flow_shift, o.sigmoid_scale, o.min_timestep == null ? 0 : o.min_timestep,
                o.max_timestep == null ? 1000 : o.max_timestep, o.preserve_distribution_shape, 0);
        long globalStep = 0;
        int epoch = 1;
        int position = 0;
        if (resumed == null) {
            sampler = new TimestepSampler(samplerConfig, new RandomSource(o.seed ^ TIMESTEP_STREAM));
            losses = new LossRecorder();
            sessionId = new SecureRandom().nextLong() & 0xFFFF_FFFFL;
            trainingStartedAt = System.currentTimeMillis() / 1000.0;
        } else {
            long loadStart = System.nanoTime();
            long optimizerStep;
            try {
                optimizerStep = optimizer.loadState(o.resume.resolve(TrainState.OPTIMIZER_FILE));
            } catch (IllegalArgumentException e) {
                throw new UserError(e.getMessage(), e);
            }
            out.println(LoadProgress.summary(TrainState.OPTIMIZER_FILE, fileBytes(o.resume.resolve(TrainState.OPTIMIZER_FILE)),
                    (System.nanoTime() - loadStart) / 1e9));
            if (optimizerStep != resumed.globalStep()) {
                throw new UserError(o.resume + ": the optimizer state is at step " + optimizerStep + " but state.json at step "
                        + resumed.globalStep() + "; the state folder is inconsistent, resume from another one");
            }
            if (resumed.maxTrainSteps() != maxTrainSteps) {
                out.println("info: this run trains " + Counts.of(maxTrainSteps, "step") + ", the resumed one planned " + resumed.maxTrainSteps()
                        + " (the learning-rate schedule follows the new total)");
            }
            sampler = TimestepSampler.restore(samplerConfig, new TimestepSampler.State(
                    new RandomSource.State(resumed.samplerSeed(), resumed.samplerCounter()), resumed.samplerBucketPool()));
            losses = new LossRecorder(resumed.lossHistory());
            sessionId = resumed.sessionId();
            trainingStartedAt = resumed.trainingStartedAt();
            globalStep = resumed.globalStep();
            epoch = resumed.epoch();
            position = resumed.epochPosition();
            // a state saved by a step that ended an epoch (a step save, Ctrl-C) is at the end of that epoch
            out.println(position >= data.batchesPerEpoch()
                    ? String.format(Locale.ROOT, "resuming at step %d (after the last batch of epoch %d)", globalStep, epoch)
                    : String.format(Locale.ROOT, "resuming at step %d (epoch %d, batch %d of %d)", globalStep, epoch,
                    position + 1, data.batchesPerEpoch()));
        }
        metadata = metadata();
        Path dump = TrainCommand.writeConfigDump(o);
        out.println("configuration: " + dump);
        BatchSchedule batches = new BatchSchedule(data, o.seed);

        // the interrupt is closed last: closing it lets a SIGTERM'd JVM exit, so the log and display close first
        try (RunInterrupt interrupt = RunInterrupt.install(this::notice);
             TrainLog trainLog = TrainLog.open(o.logging_dir, o.log_prefix, o.log_tracker_name);
             ProgressDisplay display = ProgressDisplay.create(out, !isLinePerStep && ProgressDisplay.isTerminal(),
                     globalStep, maxTrainSteps, isLinePerStep ? 1 : Math.max(1, maxTrainSteps / 100))) {
            log = trainLog;
            progress = display;
            if (o.log_config) log.config(Files.readString(dump));
            if (log.file() != null) out.println("TensorBoard: " + log.file().getParent());
            long timedSteps = 0;
            double timedSeconds = 0;
            if (sampling != null && sampling.atFirst()) sample(globalStep, null);
            while (epoch <= epochs && globalStep < maxTrainSteps) {
                List<Batch> epochBatches = batches.epoch(epoch);
                while (position < epochBatches.size() && globalStep < maxTrainSteps) {
                    interrupt.trainingStarted();
                    long started = System.nanoTime();
                    int groupEnd = Math.min(position + o.gradient_accumulation_steps, epochBatches.size());
                    double lossSum = 0;
                    double tSum = 0;
                    int tCount = 0;
                    phase = "training step " + (globalStep + 1);
                    for (int p = position; p < groupEnd; p++) {
                        Batch batch = epochBatches.get(p);
                        BatchTensors b = uploaded(batch);
                        TimestepSampler.Batch ts = sampler.sample(b.batchSize());
                        step.lossAndGradients(b, ts, o.seed, (long) (epoch - 1) * epochBatches.size() + p,
                                1f / o.gradient_accumulation_steps, p - position);
                        for (float v : ts.t()) tSum += v;
                        tCount += b.batchSize();
                    }
                    float[] read = step.clipAndRead(groupEnd - position);
                    for (int p = position; p < groupEnd; p++) lossSum += read[p - position];
                    double loss = lossSum / (groupEnd - position);
                    float normSquared = read[groupEnd - position];
                    if (!Double.isFinite(loss) || !Float.isFinite(normSquared)) {
                        return stopNonFinite(globalStep + 1, loss, normSquared, epoch, position);
                    }
                    // recorded only once finite: the state saved on a non-finite step keeps the last good history
                    for (int p = position; p < groupEnd; p++) losses.add(p, read[p - position]);
                    double lr = schedule.learningRate(globalStep);
                    step.update(globalStep + 1, (float) lr);
                    globalStep++;
                    position = groupEnd;
                    trackVram();
                    double seconds = (System.nanoTime() - started) / 1e9;
                    // The first step of a process includes one-time work (plans, kernel loading): once there are
                    // others, s/it is their mean.
                    if (timedSteps++ > 0) timedSeconds += seconds;
                    double secondsPerStep = timedSteps > 1 ? timedSeconds / (timedSteps - 1) : seconds;
                    progress.update(new ProgressDisplay.StepReport(globalStep, maxTrainSteps, epoch, epochs, secondsPerStep,
                            loss, losses.average(), lr, peakVramGiB));
                    log.step(globalStep, loss, losses.average(), lr, secondsPerStep, peakVramGiB, tSum / tCount);
                    saveAtStep(globalStep, epoch, position);
                    if (sampling != null && sampling.afterStep(globalStep)) sample(globalStep, null);
                    if (validationData != null && o.validate_every_n_steps != null && globalStep % o.validate_every_n_steps == 0) {
                        validate(globalStep);
                    }
                    // a stop asked for during the last step lets the run finish: the final LoRA is what it was for
                    if ((interrupt.isRequested() || (o.stop_at_step != null && globalStep == o.stop_at_step))
                            && globalStep < maxTrainSteps) {
                        Path dir = o.output_dir.resolve(names.stepState(globalStep));
                        saveState(dir, globalStep, epoch, position);
                        progress.message("interrupted after step " + globalStep + ": state saved to " + dir
                                + "; continue with --resume " + dir);
                        return INTERRUPTED;
                    }
                }
                if (position < epochBatches.size()) break; // --max_train_steps ended the run inside this epoch
                log.epoch(epoch, losses.average());
                int finished = epoch;
                epoch++;
                position = 0;
                saveAtEpoch(finished, globalStep, epoch);
                if (sampling != null && sampling.afterEpoch(finished)) sample(globalStep, finished);
                // with neither interval given, the validation set is evaluated after every epoch
                int validateEpochs = o.validate_every_n_epochs != null ? o.validate_every_n_epochs
                        : o.validate_every_n_steps == null ? 1 : 0;
                if (validationData != null && validateEpochs > 0 && finished % validateEpochs == 0) {
                    validate(globalStep);
                }
            }
            phase = "saving";
            if (interrupt.isRequested()) progress.message("the stop came during the last step: saving the final LoRA");
            saveLora(o.output_dir.resolve(names.lastFile()), globalStep, Math.min(epoch, epochs));
            if (o.save_state || o.save_state_on_train_end) {
                saveState(o.output_dir.resolve(names.lastState()), globalStep, epoch, position);
            }
            progress.message("done: " + o.output_dir.resolve(names.lastFile()) + " (" + Counts.of(globalStep, "step") + ")");
            return 0;
        } catch (java.io.IOException e) {
            throw new UserError(dump + ": cannot read back the configuration dump (" + e.getMessage() + ")", e);
        }
    }

    /** A sampling phase (musubi's sample_images) after {@code step}; {@code epoch} non-null at an epoch's end. */
    private void sample(long step, Integer epoch) {
        phase = "sampling";
        sampling.run(dit, lora, step, epoch, log, out);
    }

    /** A line from a signal's thread (Ctrl-C, SIGTERM): above the bar once there is one. */
    private void notice(String line) {
        ProgressDisplay p = progress;
        if (p != null) {
            p.message(line);
        } else {
            out.println(line);
            out.flush();
        }
    }

    /** The batch's caches uploaded into the reused buffers of its shape. */
    private BatchTensors uploaded(Batch batch) {
        BatchTensors b = step.buffers(batch.latentShape());
        try {
            b.load(batch);
        } catch (DatasetException e) {
            throw new UserError(e.getMessage(), e);
        }
        return b;
    }

    /**
     * A NaN or infinite loss or gradient: the update is not applied, so the LoRA and optimizer are still those after
     * the previous step; they are saved as a state (position = the start of the failed step's batches) and the run
     * stops.
     */
    private int stopNonFinite(long step, double loss, float normSquared, int epoch, int position) {
        Path dir = o.output_dir.resolve(names.stepState(step - 1));
        saveState(dir, step - 1, epoch, position);
        progress.message("step " + step + ": " + (!Double.isFinite(loss) ? "the loss is " + loss : "the gradient norm is "
                + Math.sqrt(normSquared)) + "; training stopped without applying it. The last good state (after step "
                + (step - 1) + ") is in " + dir + ": lower --learning_rate or check the data, then --resume " + dir);
        return STOPPED_NON_FINITE;
    }

    private void trackVram() {
        if (onGpu()) {
            double used = backend.device().usedBytes() / (double) (1L << 30);
            peakVramGiB = Double.isNaN(peakVramGiB) ? used : Math.max(peakVramGiB, used);
        }
    }

    // ------------------------------------------------------------------------------------------------ validation

    /**
     * musubi has no validation loss. Ours: every validation batch (a fixed order) at every fixed noise level t of
     * --validation_timesteps, with noise fixed by (seed, batch, level), no gradient; the loss is the mean squared
     * error averaged over batches (weighted by batch size) and levels.
     */
    private void validate(long step) {
        phase = "computing the validation loss";
        List<Batch> batches = new BatchSchedule(validationData, o.seed).epoch(0);
        List<Double> levels = o.validation_timesteps;
        double[] sum = new double[levels.size()];
        long items = 0;
        boolean isSigma = o.timestep_sampling.equals("sigma");
        for (int bi = 0; bi < batches.size(); bi++) {
            BatchTensors b = uploaded(batches.get(bi));
            int n = b.batchSize();
            items += n;
            for (int j = 0; j < levels.size(); j++) {
                float tv = levels.get(j).floatValue();
                float[] t = new float[n];
                float[] model = new float[n];
                java.util.Arrays.fill(t, tv);
                // the model timestep convention of the training sampler: 1000·t, plus 1 outside sigma mode
                java.util.Arrays.fill(model, isSigma ? tv * 1000f : tv * 1000f + 1f);
                b.timesteps(t, model);
                b.prepare(o.seed ^ VALIDATION_STREAM, (long) bi * levels.size() + j);
                float[] pred = backend.toFloats(dit.forward(b.xt, b.timesteps, b.contexts(), lora));
                float[] target = backend.toFloats(b.target);
                double se = 0;
                for (int i = 0; i < pred.length; i++) {
                    double d = (double) pred[i] - target[i];
                    se += d * d;
                }
                sum[j] += se / pred.length * n;
            }
        }
        Map<Double, Double> byLevel = new LinkedHashMap<>();
        double total = 0;
        StringBuilder line = new StringBuilder();
        for (int j = 0; j < levels.size(); j++) {
            double l = sum[j] / items;
            byLevel.put(levels.get(j), l);
            total += l;
            line.append(String.format(Locale.ROOT, " t=%.2f:%.4f", levels.get(j), l));
        }
        double average = total / levels.size();
        log.validation(step, byLevel, average);
        progress.message(String.format(Locale.ROOT, "validation at step %d: loss %.4f (%d items;%s)", step, average, items, line));
    }

    // ------------------------------------------------------------------------------------------------ saving

    /** musubi's step saves: the LoRA file, the state with --save_state, then the file and state that left the window. */
    private void saveAtStep(long step, int epoch, int position) {
        if (o.save_every_n_steps == null || step % o.save_every_n_steps != 0) return;
        saveLora(o.output_dir.resolve(names.stepFile(step)), step, epoch);
        if (o.save_state) saveState(o.output_dir.resolve(names.stepState(step)), step, epoch, position);
        remove(names.stepFileToRemove(step), names::stepFile);
        if (o.save_state) remove(names.stepStateToRemove(step), names::stepState);
    }

    /** musubi's epoch saves: every N epochs, except after the last epoch (the final file is written instead). */
    private void saveAtEpoch(int finished, long step, int nextEpoch) {
        if (o.save_every_n_epochs == null || finished % o.save_every_n_epochs != 0 || finished >= epochs) return;
        saveLora(o.output_dir.resolve(names.epochFile(finished)), step, finished);
        remove(names.epochFileToRemove(finished), names::epochFile);
        if (o.save_state) {
            saveState(o.output_dir.resolve(names.epochState(finished)), step, nextEpoch, 0);
            remove(names.epochStateToRemove(finished), names::epochState);
        }
    }

    private void remove(OptionalLong which, java.util.function.LongFunction<String> name) {
        if (which.isEmpty()) return;
        Path old = o.output_dir.resolve(name.apply(which.getAsLong()));
        if (!Files.exists(old)) return;
        try {
            if (Files.isDirectory(old)) {
                try (var paths = Files.walk(old)) {
                    for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(p);
                }
            } else {
                Files.delete(old);
            }
            progress.message("removed " + old);
        } catch (java.io.IOException e) {
            progress.message("warning: cannot remove " + old + " (" + e.getMessage() + ")");
        }
    }

    private void saveLora(Path file, long step, int epoch) {
        double now = System.currentTimeMillis() / 1000.0;
        LoraFile.write(file, moduleWeights(), SavePrecision.fromFlag(o.save_precision), LoraFormat.MUSUBI,
                metadata.toMap(o.no_metadata, now, step, epoch, ZoneId.systemDefault()));
        progress.message("saved " + file);
    }

    /** A --save_state folder: LoRA fp32, optimizer state, and {@link TrainState} at (epoch, position). */
    private void saveState(Path dir, long step, int epoch, int position) {
        TimestepSampler.State s = sampler.state();
        TrainState state = new TrainState(TrainState.FORMAT, o.output_name, o.seed, step, epoch, position, maxTrainSteps,
                s.rng().seed(), s.rng().counter(), s.bucketPool(), losses.losses(), trainingStartedAt, sessionId,
                System.currentTimeMillis() / 1000.0);
        state.write(dir,
                path -> LoraFile.write(path, moduleWeights(), SavePrecision.FP32, LoraFormat.MUSUBI,
                        metadata.toMap(true, state.savedAt(), step, epoch, ZoneId.systemDefault())),
                optimizer::saveState);
        progress.message("saved state " + dir);
    }

    private List<LoraModuleWeights> moduleWeights() {
        List<LoraModuleWeights> weights = new ArrayList<>();
        for (LoraModule m : lora.modules()) {
            weights.add(new LoraModuleWeights(m.name(), m.rank(), (int) m.down().shape().dim(1), (int) m.up().shape().dim(0),
                    m.alpha(), backend.toFloats(m.down()), backend.toFloats(m.up())));
        }
        return weights;
    }

    /** The ss_* and modelspec.* facts of this run (spec §7.3), as musubi fills them. */
    private LoraMetadata metadata() {
        List<Map<String, Object>> datasets = new ArrayList<>();
        for (CacheDataset.DatasetCache d : data.datasets()) {
            DatasetSpec s = d.spec();
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("resolution", List.of(s.resolution().width(), s.resolution().height()));
            m.put("caption_extension", s.captionExtension());
            m.put("batch_size_per_device", s.batchSize());
            m.put("num_repeats", s.numRepeats());
            m.put("enable_bucket", s.enableBucket());
            m.put("bucket_no_upscale", s.bucketNoUpscale());
            m.put(s.sourceKey(), s.source().getFileName().toString());
            if (s.isVideo()) {
                m.put("frame_extraction", s.frames().extraction().configName());
                m.put("frame_stride", s.frames().frameStride());
                m.put("frame_sample", s.frames().frameSample());
                m.put("target_frames", s.frames().targetFrames());
                m.put("max_frames", s.frames().maxFrames());
                m.put("source_fps", s.frames().sourceFps());
            }
            m.put("has_control", false);
            datasets.add(m);
        }
        try {
            var run = new LoraMetadata.Run(sessionId, trainingStartedAt, o.output_name, (int) data.numTrainItems(),
                    (int) data.batchesPerEpoch(), epochs, maxTrainSteps, o.gradient_accumulation_steps,
                    o.gradient_checkpointing, o.gradient_checkpointing_cpu_offload, o.mixed_precision, o.seed,
                    o.training_comment, o.fp8_base, false, false, JSON.writeValueAsString(datasets),
                    o.dit.getFileName().toString(), o.vae == null ? null : o.vae.getFileName().toString());
            var training = new LoraMetadata.Training(o.learning_rate, o.lr_warmup_steps.toString(), o.lr_scheduler,
                    OptimizerConfig.fromFlags(o.optimizer_type, o.optimizer_args == null ? List.of() : o.optimizer_args).metadataName(),
                    o.max_grad_norm, o.weighting_scheme, o.logit_mean, o.logit_std, o.mode_scale, o.guidance_scale,
                    o.timestep_sampling, o.sigmoid_scale, o.discrete_flow_shift, o.min_timestep, o.max_timestep);
            var network = new LoraMetadata.Network(o.network_module == null ? LoraMetadata.NETWORK_MODULE : o.network_module,
                    o.network_dim, o.network_alpha, o.network_dropout, networkArgsJson());
            var spec = new LoraMetadata.ModelSpec(o.metadata_title, o.metadata_reso, o.metadata_author, o.metadata_description,
                    o.metadata_license, o.metadata_tags, o.metadata_arch);
            return new LoraMetadata(run, training, network, spec);
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            throw new IllegalStateException("JSON: cannot encode the dataset metadata", e);
        }
    }

    /**
     * The out-of-memory advice: the plan the run was admitted with, and the smallest swap count planned to leave
     * {@link #OOM_HEADROOM_BYTES} more free (the plan missed something, so the fitting count is not enough).
     */
    private String memoryAdvice() {
        String gpu = onGpu()
                ? "the GPU has " + MemoryPlan.formatBytes(backend.device().totalMemoryBytes()) + "; " : "";
        if (memorySettings == null) return gpu + "use --fp8_base --fp8_scaled, --gradient_checkpointing and --blocks_to_swap";
        long planned = WanMemoryPlan.plan(memorySettings, new WanMemoryPlan.Choice(blocksToSwap, offload)).totalBytes();
        OptionalInt more = MemoryPlan.smallestFitting(blocksToSwap + 1, modelConfig.numLayers() - 1,
                n -> WanMemoryPlan.plan(memorySettings, new WanMemoryPlan.Choice(n, offload)), planned - OOM_HEADROOM_BYTES);
        String plan = "the memory plan for --blocks_to_swap " + blocksToSwap + " was " + MemoryPlan.formatBytes(planned)
                + (memoryBudget > 0 ? " of " + budgetSource() : "");
        return gpu + plan + (more.isPresent()
                ? "; try --blocks_to_swap " + more.getAsInt() + " (planned " + MemoryPlan.formatBytes(OOM_HEADROOM_BYTES)
                + " lower), or lower the resolution or frame count in the dataset config"
                : "; lower the resolution or frame count in the dataset config");
    }

    /** How much lower than the failed plan the out-of-memory advice aims. */
    private static final long OOM_HEADROOM_BYTES = 1L << 30;

    private static String fmt(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e6 ? Long.toString((long) v) : Double.toString(v);
    }
}
