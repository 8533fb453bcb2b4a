package dev.wanlora.pipeline.train;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.io.AtomicFiles;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraFormat;
import dev.wanlora.models.lora.LoraMetadata;
import dev.wanlora.models.lora.LoraModule;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.lora.SavePrecision;
import dev.wanlora.pipeline.UserError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.OptionalLong;
import java.util.function.LongFunction;

/**
 * What a training run writes into its output folder, as musubi does (spec §11): the LoRA file at step and epoch
 * intervals and at the end, --save_state folders ({@link TrainState}), and the pruning of files and states that left
 * the --save_last_n_* windows. Each save is reported on the progress display.
 */
public final class RunSaver {

    /**
     * The run's saving settings, resolved from the command line.
     *
     * @param outputDir   --output_dir
     * @param names       the run's file names and windows
     * @param everyNSteps --save_every_n_steps, or null
     * @param everyNEpochs --save_every_n_epochs, or null
     * @param saveState   --save_state
     * @param precision   --save_precision of the LoRA files (states are always fp32)
     * @param noMetadata  --no_metadata
     */
    public record Settings(Path outputDir, OutputNames names, Integer everyNSteps, Integer everyNEpochs, boolean saveState,
                           SavePrecision precision, boolean noMetadata) {}

    /**
     * What a state records besides the position: the run's seed, its planned length, when it started and its session.
     */
    public record Run(long seed, long maxTrainSteps, int epochs, double trainingStartedAt, long sessionId) {}

    private final Settings s;
    private final Run run;
    private final Backend backend;
    private final LoraNetwork lora;
    private final Optimizer optimizer;
    private final FlowMatchingObjective objective;
    private final LossRecorder losses;
    private final LoraMetadata metadata;
    private final ProgressDisplay progress;

    public RunSaver(Settings s, Run run, Backend backend, LoraNetwork lora, Optimizer optimizer, FlowMatchingObjective objective,
                    LossRecorder losses, LoraMetadata metadata, ProgressDisplay progress) {
        this.s = s;
        this.run = run;
        this.backend = backend;
        this.lora = lora;
        this.optimizer = optimizer;
        this.objective = objective;
        this.losses = losses;
        this.metadata = metadata;
        this.progress = progress;
    }

    /**
     * Writes the effective configuration {@code toml} (the command line's rendering) to
     * {@code {outputDir}/{output_name}-config.toml}, atomically, creating the folder; returns the file.
     */
    public static Path writeConfigDump(Path outputDir, OutputNames names, String toml) {
        Path file = outputDir.resolve(names.configDump());
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
        } catch (IOException e) {
            throw new UserError(file.getParent() + ": cannot create the folder (" + e.getMessage() + "); check --output_dir");
        }
        AtomicFiles.writeString(file, toml);
        return file;
    }

    /** {@code name} in the output folder. */
    public Path resolve(String name) { return s.outputDir().resolve(name); }

    public OutputNames names() { return s.names(); }

    /** musubi's step saves: the LoRA file, the state with --save_state, then the file and state that left the window. */
    public void atStep(long step, int epoch, int position) {
        OutputNames names = s.names();
        if (s.everyNSteps() == null || step % s.everyNSteps() != 0) return;
        saveLora(resolve(names.stepFile(step)), step, epoch);
        if (s.saveState()) saveState(resolve(names.stepState(step)), step, epoch, position);
        remove(names.stepFileToRemove(step), names::stepFile);
        if (s.saveState()) remove(names.stepStateToRemove(step), names::stepState);
    }

    /** musubi's epoch saves: every N epochs, except after the last epoch (the final file is written instead). */
    public void atEpoch(int finished, long step, int nextEpoch) {
        OutputNames names = s.names();
        if (s.everyNEpochs() == null || finished % s.everyNEpochs() != 0 || finished >= run.epochs()) return;
        saveLora(resolve(names.epochFile(finished)), step, finished);
        remove(names.epochFileToRemove(finished), names::epochFile);
        if (s.saveState()) {
            saveState(resolve(names.epochState(finished)), step, nextEpoch, 0);
            remove(names.epochStateToRemove(finished), names::epochState);
        }
    }

    private void remove(OptionalLong which, LongFunction<String> name) {
        if (which.isEmpty()) return;
        Path old = resolve(name.apply(which.getAsLong()));
        if (!Files.exists(old)) return;
        try {
            if (Files.isDirectory(old)) {
                try (var paths = Files.walk(old)) {
                    for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) Files.delete(p);
                }
            } else {
                Files.delete(old);
            }
            progress.message("removed " + old);
        } catch (IOException e) {
            progress.message("warning: cannot remove " + old + " (" + e.getMessage() + ")");
        }
    }

    /** The LoRA file at --save_precision with the run's metadata (unless --no_metadata). */
    public void saveLora(Path file, long step, int epoch) {
        double now = System.currentTimeMillis() / 1000.0;
        LoraFile.write(file, moduleWeights(), s.precision(), LoraFormat.MUSUBI,
                metadata.toMap(s.noMetadata(), now, step, epoch, ZoneId.systemDefault()));
        progress.message("saved " + file);
    }

    /** A --save_state folder: LoRA fp32, optimizer state, and {@link TrainState} at (epoch, position). */
    public void saveState(Path dir, long step, int epoch, int position) {
        TimestepSampler.State t = objective.sampler().state();
        TrainState state = new TrainState(TrainState.FORMAT, s.names().name(), run.seed(), step, epoch, position,
                run.maxTrainSteps(), t.rng().seed(), t.rng().counter(), t.bucketPool(), losses.losses(),
                run.trainingStartedAt(), run.sessionId(), System.currentTimeMillis() / 1000.0);
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
}
