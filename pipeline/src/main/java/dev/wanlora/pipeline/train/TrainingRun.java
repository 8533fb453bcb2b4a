package dev.wanlora.pipeline.train;

import dev.wanlora.engine.Backends;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.io.FileReadAhead;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.optim.GradClip;
import dev.wanlora.engine.optim.LearningRateSchedule;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.engine.random.RandomSource;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraMetadata;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.lora.NetworkArgs;
import dev.wanlora.models.musubi.Batch;
import dev.wanlora.models.musubi.BatchSchedule;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.DatasetConfig;
import dev.wanlora.models.musubi.DatasetException;
import dev.wanlora.models.text.Counts;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanMemoryPlan;
import dev.wanlora.pipeline.UserError;
import dev.wanlora.pipeline.sample.SampleModels;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * One training run of {@code wanlora train}, from resolved {@link RunSettings} to saved LoRA files: musubi's
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
public final class TrainingRun {
    /** Exit code when training stopped on a NaN or infinite loss or gradient. */
    public static final int STOPPED_NON_FINITE = 3;
    /** Exit code after Ctrl-C or --stop_at_step: 128 + SIGINT, as shells report an interrupted command. */
    public static final int INTERRUPTED = 130;

    /** Independent streams derived from the one seed (xor-ed in, so no two streams share a generator state). */
    private static final long TIMESTEP_STREAM = 0x7469_6D65_7374_6570L; // "timestep"
    private static final long VALIDATION_STREAM = 0x7661_6C69_6461_7465L; // "validate"

    /** Batches whose caches are read ahead of the one training (DESIGN.md §4). */
    private static final int PREFETCH_DEPTH = 2;

    private final RunSettings s;
    private final PrintWriter out;
    /** Plain progress lines for every step, terminal or not (the demo prints the loss of each step). */
    private final boolean isLinePerStep;
    /** Where samples' text encoder and decoder come from (the demo passes its stand-ins). */
    private final SampleModels sampleModels;
    /** Ctrl-C and SIGTERM (the command line's), installed for the loop. */
    private final StopSignal.Source stopSignals;

    // set up by run()
    private Backend backend;
    private CacheDataset data;
    private CacheDataset validationData;
    /** --dry_run without readable caches: the dataset configs whose largest buckets stand in for them; else null. */
    private DatasetConfig dataToml;
    private DatasetConfig validationToml;
    private WanDit dit;
    private LoraNetwork lora;
    private Optimizer optimizer;
    private TrainStep step;
    private FlowMatchingObjective objective;
    private LearningRateSchedule schedule;
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
    /** The run's samples, or null without --sample_prompts and an interval. */
    private TrainSampling sampling;

    public TrainingRun(RunSettings settings, SampleModels sampleModels, StopSignal.Source stopSignals, PrintWriter out,
                       boolean isLinePerStep) {
        this.s = settings;
        this.sampleModels = sampleModels;
        this.stopSignals = stopSignals;
        this.out = out;
        this.isLinePerStep = isLinePerStep;
    }

    /** Runs it; returns the exit code (0, {@link #STOPPED_NON_FINITE} or {@link #INTERRUPTED}). */
    public int run() {
        if (s.isDryRun()) return dryRun();
        sampling = TrainSampling.create(s.samples(), s.output(), sampleModels);
        // The checkpoint's pages start coming into the page cache now, while the GPU context starts, the dataset is
        // read and the memory is planned (~2 s before the loader's first read on a cold cache); the loader's own reads
        // (in file order) then mostly hit the cache. A hint only: FileReadAhead reads nothing when the file does not
        // fit in half of the available memory, and stops at the next chunk when closed.
        Path ditFile = s.model().dit();
        try (FileReadAhead early = Files.isRegularFile(ditFile) ? FileReadAhead.start(List.of(ditFile)) : null;
             OutputLock lock = StartUp.lockOutput(s.output().dir(), out)) {
            return runLocked();
        }
    }

    /** The run, while this process holds --output_dir (issue 15: one run per folder). */
    private int runLocked() {
        refuseOverwrite(s.resumed());
        try (Backend b = openBackend(); TrainSampling closeSampling = sampling) {
            backend = b;
            return train(s.resumed());
        } catch (RuntimeException e) {
            if (!Backends.isOutOfDeviceMemory(e)) throw e;
            throw new UserError("out of GPU memory while " + phase + " (" + e.getMessage() + "); "
                    + memoryAdvice(), e);
        } catch (OutOfMemoryError e) {
            throw new UserError(StartUp.heapAdvice(phase, s.network().rank()), e);
        }
    }

    /**
     * --dry_run: the memory plan of this command line, then exit (0: it fits; a plan over the budget ends in the
     * over-budget UserError, exit 2, naming the smallest change that fits). The model's shapes come from --dit's header,
     * or from --task when the file is not here; the input shapes from the caches, or from the dataset TOML's largest
     * buckets when the caches cannot be read. With --sample_prompts the samples' item and the prompt encoding's plan
     * are included (their --t5 and --vae files are read for their shapes). With --max_vram no GPU is touched; without
     * it the GPU's memory is the budget (no GPU: the plan is printed unchecked).
     */
    private int dryRun() {
        phase = "planning memory (--dry_run)";
        data = discoverOrToml(s.data().config(), "--dataset_config", false);
        if (s.data().validationConfig() != null) {
            validationData = discoverOrToml(s.data().validationConfig(), "--validation_dataset_config", true);
        }
        // the samples are planned as the run plans them: their item in the training plan, then the prompt encoding
        sampling = TrainSampling.create(s.samples(), s.output(), sampleModels);
        try (TrainSampling closeSampling = sampling) {
            if (s.memory().maxVram() != null) return dryRunPlan();
            try (Backend b = openBackend()) {
                backend = b;
                return dryRunPlan();
            }
        }
    }

    private int dryRunPlan() {
        planMemory();
        if (sampling != null) sampling.planEncoding(backend == null ? null : backend.device(), memory, out);
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
            return discover(config);
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
        data = discover(s.data().config());
        validationData = s.data().validationConfig() == null ? null : discover(s.data().validationConfig());
        int accumulation = s.optimization().gradientAccumulationSteps();
        long stepsPerEpoch = data.stepsPerEpoch(accumulation);
        maxTrainSteps = s.length().maxTrainEpochs() != null
                ? data.maxTrainSteps(s.length().maxTrainEpochs(), accumulation) : s.length().maxTrainSteps();
        epochs = Math.toIntExact(Math.ceilDiv(maxTrainSteps, stepsPerEpoch));
        if (resumed != null) resumed.checkAgainst(s.resume(), data.batchesPerEpoch(), epochs, maxTrainSteps, 0);
        String override = s.length().epochsOverSteps(maxTrainSteps, epochs);
        if (override != null) out.println(override);
        out.println("dataset: " + Counts.of(data.numTrainItems(), "item") + ", "
                + Counts.of(data.batchesPerEpoch(), "batch", "batches") + " per epoch, " + Counts.of(stepsPerEpoch, "step")
                + " per epoch; " + Counts.of(maxTrainSteps, "step") + " in " + Counts.of(epochs, "epoch"));

        RunSettings.Model model = s.model();
        try (SafeTensors checkpoint = SafeTensors.open(model.dit(), SafeTensors.DIT_PREFIXES)) {
            WanMemoryPlan.Choice choice = planMemory();
            if (sampling != null) { // the prompt encoding is planned under the same budget, before the DiT loads
                phase = "encoding the sample prompts";
                sampling.prepare(backend, model.config().textDim(), memory, out);
            }
            WanDitWeights.BlockSwap swap = new WanDitWeights.BlockSwap(choice.blocksToSwap(), s.memory().ringSize());
            phase = "loading the DiT";
            try (WanDitWeights weights = loadWeights(checkpoint, swap)) {
                WanDit dit = new WanDit(backend, model.config(), weights, model.precision(),
                        s.memory().gradientCheckpointing());
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
             GradClip gradClip = new GradClip(backend, (float) s.optimization().maxGradNorm());
             // a step never accumulates across an epoch's end, so no more batches than an epoch has
             TrainStep trainStep = new TrainStep(backend, closeDit, network, opt, gradClip,
                     (int) Math.min(s.optimization().gradientAccumulationSteps(), data.batchesPerEpoch()))) {
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
        if (s.output().overwrite()) return;
        Path dir = s.output().dir();
        OutputNames names = s.output().names();
        if (resumed != null) {
            List<Path> newer = names.writtenAfter(dir, resumed.globalStep(), resumed.epoch(), s.resume());
            if (!newer.isEmpty()) {
                throw new UserError("--resume " + s.resume() + ": " + dir + " holds " + newer.size()
                        + " file(s) saved after this state (step " + resumed.globalStep() + ") that the run would overwrite: "
                        + OutputNames.listed(newer) + "; pass --overwrite to replace them, resume from a later state, or"
                        + " choose another --output_dir or --output_name");
            }
            return;
        }
        List<Path> existing = names.existingRunFiles(dir);
        if (!existing.isEmpty()) {
            throw new UserError(existing.getFirst() + ": exists from an earlier run named '" + names.name() + "' ("
                    + existing.size() + " file(s)); pass --overwrite to replace them, --resume STATE to continue that run,"
                    + " or choose another --output_name");
        }
    }

    private Backend openBackend() {
        return StartUp.openBackend(s.memory().backend(), out);
    }

    /** The run's backend is a GPU with memory to budget (false under --dry_run --max_vram, where none is opened). */
    private boolean onGpu() {
        return backend != null && backend.device().hasDeviceMemory();
    }

    private CacheDataset discover(Path config) {
        return StartUp.discover(config, s.data().skipBadItems(), out);
    }

    private WanDitWeights loadWeights(SafeTensors checkpoint, WanDitWeights.BlockSwap swap) {
        RunSettings.Model model = s.model();
        try {
            // The CPU reference stores fp8 weights dequantized (exactly the values a GPU dequantizes before each GEMM).
            try (LoadProgress progress = LoadProgress.start(out, ProgressDisplay.isTerminal() && !isLinePerStep,
                    model.dit().getFileName().toString(), WanDitWeights.loadBytes(checkpoint))) {
                return WanDitWeights.load(backend, checkpoint, model.config(), model.precision(), model.quantization(),
                        !backend.device().keepsFp8Quantized(), model.fp8Compute(), swap, progress);
            }
        } catch (IllegalArgumentException | SafeTensorsException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------------------------------------ memory plan

    /** DESIGN.md §6: the run's memory plan ({@link RunMemory}) from the resolved settings, printed and checked. */
    private WanMemoryPlan.Choice planMemory() {
        phase = "planning memory";
        RunSettings.Model model = s.model();
        RunSettings.Memory m = s.memory();
        int rank = loraRankForPlan();
        List<MemoryPlan.Item> extra = new ArrayList<>();
        if (sampling != null) extra.add(sampling.memoryItem(model.config(), model.precision(), rank));
        boolean isAuto = m.blocksToSwap() != null && m.blocksToSwap().isAuto();
        List<WanDitActivations.Key> shapes = RunMemory.inputShapes(data, dataToml, validationData, validationToml, rank,
                m.gradientCheckpointing(), false);
        if (model.fp8Compute()) {
            if (backend != null) Fp8Compute.check(backend.device(), model.quantization(), "add --fp8_base");
            out.println(Fp8Compute.NOTE);
            long rows = model.config().textLen();
            for (WanDitActivations.Key k : shapes) {
                rows = Math.max(rows, (long) k.batch() * Math.max(model.config().textLen(),
                        (long) k.frames() * (k.height() / 2) * (k.width() / 2)));
            }
            extra.add(Fp8Compute.inputCodes(model.config(), rows));
        }
        var request = new RunMemory.Request(model.config(), model.precision(), model.quantization(), model.blockDType(),
                shapes,
                RunMemory.inputShapes(data, dataToml, validationData, validationToml, rank, m.gradientCheckpointing(), true),
                s.optimization().optimizer(), m.ringSize(), m.blocksToSwap() == null || isAuto ? 0 : m.blocksToSwap().count(),
                isAuto, m.checkpointAttention(), m.gradientCheckpointing(), m.cpuOffload(), s.isDryRun(), extra,
                m.maxVram(), m.maxHostRam());
        memory = RunMemory.plan(request, backend == null ? null : backend.device(), out);
        return memory.choice();
    }

    /** The LoRA rank the run will use: --network_dim, or the rank of the file it starts from (read again later). */
    private int loraRankForPlan() {
        if (s.network().rank() != null) return s.network().rank();
        Path source = s.resume() != null ? s.resume().resolve(TrainState.LORA_FILE) : s.network().weights();
        if (source == null) return 4;
        try {
            return LoraFile.read(source).modules().getFirst().rank();
        } catch (IllegalArgumentException | SafeTensorsException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    private LoraNetwork createLora(TrainState resumed) {
        phase = "creating the LoRA";
        RunSettings.Network n = s.network();
        Path source = resumed != null ? s.resume().resolve(TrainState.LORA_FILE) : n.weights();
        return LoraSetup.create(backend, s.model().config(), new LoraSetup.Settings(source, resumed != null, n.rank(),
                n.alpha(), s.seed(), n.args()), out);
    }

    private Optimizer createOptimizer(LoraNetwork network) {
        phase = "creating the optimizer";
        RunSettings.Schedule schedule = s.optimization().schedule();
        out.println("optimizer: " + s.optimization().optimizer().metadataName() + ", lr "
                + ProgressDisplay.learningRate(schedule.learningRate()) + " (" + schedule.name() + ")");
        NetworkArgs args = s.network().args();
        if (args.hasLoraplus()) out.println("LoRA+: lora_up learning rate × " + LoraSetup.fmt(args.loraplusLrRatio()));
        try {
            return TrainStep.optimizer(backend, s.optimization().optimizer(), network, (float) args.loraplusLrRatio());
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------------------------------------ the loop

    private int loop(TrainState resumed) {
        try {
            schedule = s.optimization().schedule().over(maxTrainSteps);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        TimestepSampler.Config samplerConfig = s.timesteps();
        long globalStep = 0;
        int epoch = 1;
        int position = 0;
        if (resumed == null) {
            objective = new FlowMatchingObjective(new TimestepSampler(samplerConfig, new RandomSource(s.seed() ^ TIMESTEP_STREAM)));
            losses = new LossRecorder();
            sessionId = new SecureRandom().nextLong() & 0xFFFF_FFFFL;
            trainingStartedAt = System.currentTimeMillis() / 1000.0;
        } else {
            long loadStart = System.nanoTime();
            long optimizerStep;
            try {
                optimizerStep = optimizer.loadState(s.resume().resolve(TrainState.OPTIMIZER_FILE));
            } catch (IllegalArgumentException e) {
                throw new UserError(e.getMessage(), e);
            }
            out.println(LoadProgress.summary(TrainState.OPTIMIZER_FILE,
                    LoraSetup.fileBytes(s.resume().resolve(TrainState.OPTIMIZER_FILE)),
                    (System.nanoTime() - loadStart) / 1e9));
            if (optimizerStep != resumed.globalStep()) {
                throw new UserError(s.resume() + ": the optimizer state is at step " + optimizerStep + " but state.json at step "
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
        LoraMetadata metadata = RunMetadata.of(s, data, sessionId, trainingStartedAt, epochs, maxTrainSteps);
        out.println("configuration: " + RunSaver.writeConfigDump(s.output().dir(), s.output().names(), s.output().configDump()));
        BatchSchedule batches = new BatchSchedule(data, s.seed());
        OutputNames names = s.output().names();
        int accumulation = s.optimization().gradientAccumulationSteps();
        Integer validateSteps = s.data().validateEveryNSteps();
        Integer stopAt = s.length().stopAtStep();

        // the interrupt is closed last: closing it lets a SIGTERM'd JVM exit, so the log and display close first
        try (StopSignal interrupt = stopSignals.install(this::notice);
             TrainLog trainLog = TrainLog.open(s.logging().dir(), s.logging().prefix(), s.logging().trackerName());
             ProgressDisplay display = ProgressDisplay.create(out, !isLinePerStep && ProgressDisplay.isTerminal(),
                     globalStep, maxTrainSteps, isLinePerStep ? 1 : Math.max(1, maxTrainSteps / 100))) {
            log = trainLog;
            progress = display;
            saver = new RunSaver(s.output().saving(), new RunSaver.Run(s.seed(), maxTrainSteps, epochs, trainingStartedAt,
                    sessionId), backend, lora, optimizer, objective, losses, metadata, display);
            if (s.logging().logConfig()) log.config(s.output().configDump());
            boolean isFirstStepDone = false;
            // the seconds of every step after this process's first, for s/it and the last line's median (bench reports
            // medians; issue 13 compares); timedSeconds is their running sum
            List<Double> stepSeconds = new ArrayList<>();
            double timedSeconds = 0;
            long firstTimedStep = 0;
            if (sampling != null && sampling.atFirst()) sample(globalStep, null);
            // From here a signal waits for the step boundary and the state is saved; the TensorBoard line is the last
            // line of the start-up, so a signal sent after it (a test's, a user's) never stops a run that trains.
            interrupt.trainingStarted();
            if (log.file() != null) out.println("TensorBoard: " + log.file().getParent());
            // the caches of the next batches are read on a background thread while this one trains, across epochs: an
            // epoch's first batch is read during the step before it (issue 13: with a 4-batch dataset every fourth step
            // waited for its read)
            try (Prefetcher<Batch, BatchTensors.HostBatch> reads = new Prefetcher<>(
                    remaining(batches::epoch, epoch, position, epochs), BatchTensors::read, PREFETCH_DEPTH)) {
                while (epoch <= epochs && globalStep < maxTrainSteps) {
                    List<Batch> epochBatches = batches.epoch(epoch);
                    while (position < epochBatches.size() && globalStep < maxTrainSteps) {
                        long started = System.nanoTime();
                        int groupEnd = Math.min(position + accumulation, epochBatches.size());
                        double lossSum = 0;
                        double tSum = 0;
                        int tCount = 0;
                        phase = "training step " + (globalStep + 1);
                        for (int p = position; p < groupEnd; p++) {
                            Batch batch = epochBatches.get(p);
                            BatchTensors b = uploaded(batch, reads);
                            TimestepSampler.Batch ts = step.lossAndGradients(b, objective, s.seed(),
                                    (long) (epoch - 1) * epochBatches.size() + p, 1f / accumulation, p - position);
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
                        if (isFirstStepDone) {
                            timedSeconds += seconds;
                            if (stepSeconds.isEmpty()) firstTimedStep = globalStep;
                            stepSeconds.add(seconds);
                        }
                        isFirstStepDone = true;
                        double secondsPerStep = stepSeconds.isEmpty() ? seconds : timedSeconds / stepSeconds.size();
                        progress.update(new ProgressDisplay.StepReport(globalStep, maxTrainSteps, epoch, epochs, secondsPerStep,
                                loss, losses.average(), lr, peakVramGiB));
                        log.step(globalStep, loss, losses.average(), lr, secondsPerStep, peakVramGiB, tSum / tCount);
                        saver.atStep(globalStep, epoch, position);
                        if (sampling != null && sampling.afterStep(globalStep)) sample(globalStep, null);
                        if (validationData != null && validateSteps != null && globalStep % validateSteps == 0) {
                            validate(globalStep);
                        }
                        // a stop asked for during the last step lets the run finish: the final LoRA is what it was for
                        if ((interrupt.isRequested() || (stopAt != null && globalStep == stopAt))
                                && globalStep < maxTrainSteps) {
                            Path dir = s.output().dir().resolve(names.stepState(globalStep));
                            saver.saveState(dir, globalStep, epoch, position);
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
                    saver.atEpoch(finished, globalStep, epoch);
                    if (sampling != null && sampling.afterEpoch(finished)) sample(globalStep, finished);
                    // with neither interval given, the validation set is evaluated after every epoch
                    int validateEpochs = s.data().validationEpochs();
                    if (validationData != null && validateEpochs > 0 && finished % validateEpochs == 0) {
                        validate(globalStep);
                    }
                }
            }
            phase = "saving";
            if (interrupt.isRequested()) progress.message("the stop came during the last step: saving the final LoRA");
            saver.saveLora(s.output().dir().resolve(names.lastFile()), globalStep, Math.min(epoch, epochs));
            if (s.output().saving().saveState() || s.output().saveStateOnTrainEnd()) {
                saver.saveState(s.output().dir().resolve(names.lastState()), globalStep, epoch, position);
            }
            progress.message("done: " + s.output().dir().resolve(names.lastFile()) + " (" + Counts.of(globalStep, "step")
                    + stepTimes(stepSeconds, firstTimedStep) + ")");
            return 0;
        }
    }

    /**
     * The batches the run still trains, in order: those of {@code epoch} from {@code position} on, then every batch of
     * the later epochs up to {@code lastEpoch}; each epoch's list ({@code epochItems}, {@link BatchSchedule#epoch}) is
     * made when the first of its batches is asked for (the schedule is a pure function of the epoch, so these are the
     * lists the loop trains).
     */
    static <T> java.util.Iterator<T> remaining(java.util.function.IntFunction<List<T>> epochItems, int epoch, int position,
                                               int lastEpoch) {
        return new java.util.Iterator<>() {
            private int e = epoch;
            private int next = position;
            private List<T> current = e <= lastEpoch ? epochItems.apply(e) : List.of();

            @Override
            public boolean hasNext() {
                while (next >= current.size() && e < lastEpoch) {
                    current = epochItems.apply(++e);
                    next = 0;
                }
                return next < current.size();
            }

            @Override
            public T next() {
                if (!hasNext()) throw new java.util.NoSuchElementException("no item after epoch " + lastEpoch);
                return current.get(next++);
            }
        };
    }

    /**
     * "; steps after the first: mean 0.660 s/it, median 0.652 s/it, slowest 0.690 s (step 2)" for the last line, or ""
     * with fewer than two timed steps ({@code seconds} are those of steps {@code firstStep}, {@code firstStep} + 1, …).
     * The median is what `wanlora bench` reports: it leaves out the steps that waited on something else; the slowest
     * step names the one that did most.
     */
    static String stepTimes(List<Double> seconds, long firstStep) {
        if (seconds.size() < 2) return "";
        double[] sorted = seconds.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        int n = sorted.length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        double mean = java.util.Arrays.stream(sorted).sum() / n;
        int slowest = 0;
        for (int i = 1; i < n; i++) if (seconds.get(i) > seconds.get(slowest)) slowest = i;
        return String.format(Locale.ROOT, "; steps after the first: mean %.3f s/it, median %.3f s/it, slowest %.3f s (step %d)",
                mean, median, seconds.get(slowest), firstStep + slowest);
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
        Path dir = s.output().dir().resolve(s.output().names().stepState(step - 1));
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
        ValidationLoss.Result r = new ValidationLoss(validationData, s.data().validationTimesteps(),
                s.timesteps().mode(), s.seed(), s.seed() ^ VALIDATION_STREAM)
                .compute(backend, dit, lora, this::uploaded);
        log.validation(step, r.byLevel(), r.average());
        progress.message(r.line(step));
    }

    /** The out-of-memory advice: {@link RunMemory#outOfMemoryAdvice}, or the general one before the plan. */
    private String memoryAdvice() {
        DeviceFacts device = backend == null ? null : backend.device();
        return memory == null ? RunMemory.outOfMemoryAdviceWithoutPlan(device) : memory.outOfMemoryAdvice();
    }
}
