package dev.wanlora.pipeline.train;

import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.pipeline.UserError;
import dev.wanlora.pipeline.sample.SampleModels;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.Backends;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.flow.TimestepSampling;
import dev.wanlora.engine.io.FileReadAhead;
import dev.wanlora.engine.io.SafeTensors;
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
import dev.wanlora.models.text.Counts;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraMetadata;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.lora.NetworkArgs;
import dev.wanlora.models.lora.SavePrecision;
import dev.wanlora.models.musubi.Batch;
import dev.wanlora.models.musubi.BatchSchedule;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.DatasetConfig;
import dev.wanlora.models.musubi.DatasetException;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanMemoryPlan;
import dev.wanlora.pipeline.train.BatchTensors;
import dev.wanlora.pipeline.train.BenchRun;
import dev.wanlora.pipeline.train.CheckpointAttention;
import dev.wanlora.pipeline.train.FlowMatchingObjective;
import dev.wanlora.pipeline.train.LoadProgress;
import dev.wanlora.pipeline.train.LoraSetup;
import dev.wanlora.pipeline.train.LossRecorder;
import dev.wanlora.pipeline.train.OutputNames;
import dev.wanlora.pipeline.train.Prefetcher;
import dev.wanlora.pipeline.train.ProgressDisplay;
import dev.wanlora.pipeline.train.RunMemory;
import dev.wanlora.pipeline.train.RunSaver;
import dev.wanlora.pipeline.train.TrainState;
import dev.wanlora.pipeline.train.TrainStep;
import dev.wanlora.pipeline.train.ValidationLoss;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.List;
import java.util.Locale;

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

    /** Batches whose caches are read ahead of the one training (DESIGN.md §4). */
    private static final int PREFETCH_DEPTH = 2;

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
    private FlowMatchingObjective objective;
    private LearningRateSchedule schedule;
    private LoraMetadata metadata;
    private LossRecorder losses;
    private TrainLog log;
    private volatile ProgressDisplay progress;
    private RunSaver saver;
    private long sessionId;
    private double trainingStartedAt;
    private long maxTrainSteps;
    private int epochs;
    private double peakVramGiB = Double.NaN;
    /** What the run is doing, for the out-of-memory message. */
    private String phase = "starting";
    /** The run's memory plan, once made (for the model's settings and the out-of-memory advice). */
    private RunMemory memory;
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
        names = new OutputNames(o.output_name, o.save_every_n_epochs, o.save_last_n_epochs, o.save_last_n_epochs_state,
                o.save_every_n_steps, o.save_last_n_steps, o.save_last_n_steps_state);
        // The checkpoint's pages start coming into the page cache now, while the GPU context starts, the dataset is
        // read and the memory is planned (~2 s before the loader's first read on a cold cache); the loader's own reads
        // (in file order) then mostly hit the cache. A hint only: FileReadAhead reads nothing when the file does not
        // fit in half of the available memory, and stops at the next 8 MiB when closed.
        try (FileReadAhead early = o.dit != null && Files.isRegularFile(o.dit) ? FileReadAhead.start(List.of(o.dit)) : null;
             OutputLock lock = StartUp.lockOutput(o.output_dir, out)) {
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
        out.println(memory.budget() > 0 ? "dry run: the plan fits; nothing was loaded"
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
                dit.savesAttentionOutputs(memory.savesAttentionOutputs());
                dit.keepsBackwardWeights(memory.keepsBackwardWeights());
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

    /** DESIGN.md §6: the run's memory plan ({@link RunMemory}) from the resolved settings, printed and checked. */
    private WanMemoryPlan.Choice planMemory(DType blockDType, ComputePrecision precision) {
        phase = "planning memory";
        OptimizerConfig optimizerConfig;
        try {
            optimizerConfig = OptimizerConfig.fromFlags(o.optimizer_type, o.optimizer_args == null ? List.of() : o.optimizer_args);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        int rank = loraRankForPlan();
        List<MemoryPlan.Item> extra = sampling == null ? List.of() : List.of(sampling.memoryItem(modelConfig, precision, rank));
        boolean isAuto = o.blocks_to_swap != null && o.blocks_to_swap.isAuto();
        var request = new RunMemory.Request(modelConfig, precision, quantization(), blockDType,
                RunMemory.inputShapes(data, dataToml, validationData, validationToml, rank, o.gradient_checkpointing, false),
                RunMemory.inputShapes(data, dataToml, validationData, validationToml, rank, o.gradient_checkpointing, true),
                optimizerConfig, o.block_swap_ring_size, o.blocks_to_swap == null || isAuto ? 0 : o.blocks_to_swap.count(),
                isAuto, o.checkpoint_attention == null ? CheckpointAttention.AUTO : o.checkpoint_attention,
                o.gradient_checkpointing, o.gradient_checkpointing_cpu_offload, o.dry_run, extra, o.max_vram, o.max_host_ram);
        memory = RunMemory.plan(request, backend == null ? null : backend.device(), out);
        return memory.choice();
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

    private LoraNetwork createLora(TrainState resumed) {
        phase = "creating the LoRA";
        Path source = resumed != null ? o.resume.resolve(TrainState.LORA_FILE) : o.network_weights;
        return LoraSetup.create(backend, modelConfig, new LoraSetup.Settings(source, resumed != null, o.network_dim,
                o.network_alpha, o.seed, networkArgs()), out);
    }

    /** --network_args as musubi's lora_wan reads them. */
    private NetworkArgs networkArgs() {
        try {
            return NetworkArgs.parse(o.network_args == null ? List.of() : o.network_args);
        } catch (IllegalArgumentException e) {
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
        if (args.hasLoraplus()) out.println("LoRA+: lora_up learning rate × " + LoraSetup.fmt(args.loraplusLrRatio()));
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
            objective = new FlowMatchingObjective(new TimestepSampler(samplerConfig, new RandomSource(o.seed ^ TIMESTEP_STREAM)));
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
            out.println(LoadProgress.summary(TrainState.OPTIMIZER_FILE,
                    LoraSetup.fileBytes(o.resume.resolve(TrainState.OPTIMIZER_FILE)),
                    (System.nanoTime() - loadStart) / 1e9));
            if (optimizerStep != resumed.globalStep()) {
                throw new UserError(o.resume + ": the optimizer state is at step " + optimizerStep + " but state.json at step "
                        + resumed.globalStep() + "; the state folder is inconsistent, resume from another one");
            }
            if (resumed.maxTrainSteps() != maxTrainSteps) {
                out.println("info: this run trains " + Counts.of(maxTrainSteps, "step") + ", the resumed one planned " + resumed.maxTrainSteps()
                        + " (the learning-rate schedule follows the new total)");
            }
            objective = new FlowMatchingObjective(TimestepSampler.restore(samplerConfig, new TimestepSampler.State(
                    new RandomSource.State(resumed.samplerSeed(), resumed.samplerCounter()), resumed.samplerBucketPool())));
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
        metadata = RunMetadata.of(o, data, networkArgs(), sessionId, trainingStartedAt, epochs, maxTrainSteps);
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
            saver = new RunSaver(new RunSaver.Settings(o.output_dir, names, o.save_every_n_steps, o.save_every_n_epochs,
                    o.save_state, SavePrecision.fromFlag(o.save_precision), o.no_metadata),
                    new RunSaver.Run(o.seed, maxTrainSteps, epochs, trainingStartedAt, sessionId), backend, lora, optimizer,
                    objective, losses, metadata, display);
            if (o.log_config) log.config(Files.readString(dump));
            if (log.file() != null) out.println("TensorBoard: " + log.file().getParent());
            long timedSteps = 0;
            double timedSeconds = 0;
            if (sampling != null && sampling.atFirst()) sample(globalStep, null);
            while (epoch <= epochs && globalStep < maxTrainSteps) {
                List<Batch> epochBatches = batches.epoch(epoch);
                // from here a signal waits for the step boundary (the read-ahead's thread start is no start-up delay)
                interrupt.trainingStarted();
                // the caches of the epoch's next batches are read on a background thread while this one trains
                try (Prefetcher<Batch, BatchTensors.HostBatch> reads = new Prefetcher<>(
                        epochBatches.subList(Math.min(position, epochBatches.size()), epochBatches.size()),
                        BatchTensors::read, PREFETCH_DEPTH)) {
                    while (position < epochBatches.size() && globalStep < maxTrainSteps) {
                        long started = System.nanoTime();
                        int groupEnd = Math.min(position + o.gradient_accumulation_steps, epochBatches.size());
                        double lossSum = 0;
                        double tSum = 0;
                        int tCount = 0;
                        phase = "training step " + (globalStep + 1);
                        for (int p = position; p < groupEnd; p++) {
                            Batch batch = epochBatches.get(p);
                            BatchTensors b = uploaded(batch, reads);
                            TimestepSampler.Batch ts = step.lossAndGradients(b, objective, o.seed,
                                    (long) (epoch - 1) * epochBatches.size() + p, 1f / o.gradient_accumulation_steps, p - position);
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
                        saver.atStep(globalStep, epoch, position);
                        if (sampling != null && sampling.afterStep(globalStep)) sample(globalStep, null);
                        if (validationData != null && o.validate_every_n_steps != null && globalStep % o.validate_every_n_steps == 0) {
                            validate(globalStep);
                        }
                        // a stop asked for during the last step lets the run finish: the final LoRA is what it was for
                        if ((interrupt.isRequested() || (o.stop_at_step != null && globalStep == o.stop_at_step))
                                && globalStep < maxTrainSteps) {
                            Path dir = o.output_dir.resolve(names.stepState(globalStep));
                            saver.saveState(dir, globalStep, epoch, position);
                            progress.message("interrupted after step " + globalStep + ": state saved to " + dir
                                    + "; continue with --resume " + dir);
                            return INTERRUPTED;
                        }
                    }
                }
                if (position < epochBatches.size()) break; // --max_train_steps ended the run inside this epoch
                log.epoch(epoch, losses.average());
                int finished = epoch;
                epoch++;
                position = 0;
                saver.atEpoch(finished, globalStep, epoch);
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
            saver.saveLora(o.output_dir.resolve(names.lastFile()), globalStep, Math.min(epoch, epochs));
            if (o.save_state || o.save_state_on_train_end) {
                saver.saveState(o.output_dir.resolve(names.lastState()), globalStep, epoch, position);
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

    /** The next batch of {@code reads} (which is {@code batch}), its caches as read ahead, uploaded. */
    private BatchTensors uploaded(Batch batch, Prefetcher<Batch, BatchTensors.HostBatch> reads) {
        BatchTensors b = step.buffers(batch.latentShape());
        try {
            b.upload(reads.next());
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
        saver.saveState(dir, step - 1, epoch, position);
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
        ValidationLoss.Result r = new ValidationLoss(validationData, o.validation_timesteps,
                TimestepSampling.fromFlag(o.timestep_sampling), o.seed, o.seed ^ VALIDATION_STREAM)
                .compute(backend, dit, lora, this::uploaded);
        log.validation(step, r.byLevel(), r.average());
        progress.message(r.line(step));
    }

    // ------------------------------------------------------------------------------------------------ metadata


    /** The out-of-memory advice: {@link RunMemory#outOfMemoryAdvice}, or the general one before the plan. */
    private String memoryAdvice() {
        DeviceFacts device = backend == null ? null : backend.device();
        return memory == null ? RunMemory.outOfMemoryAdviceWithoutPlan(device) : memory.outOfMemoryAdvice();
    }
}
