package dev.wanlora.pipeline.train;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.io.AtomicFiles;
import dev.wanlora.engine.io.SafeTensors;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

/**
 * A {@code --save_state} folder's {@code state.json}: everything besides the LoRA and optimizer tensors that a
 * resumed run needs to continue exactly where this one stopped (spec §11; unlike musubi, which restarts its step
 * counters at 0, wanlora continues them). The folder holds:
 * <ul>
 * <li>{@value #LORA_FILE}: the LoRA in musubi's key format, fp32 (whatever {@code --save_precision} says);</li>
 * <li>{@value #OPTIMIZER_FILE}: the optimizer's moments and step (see {@code Optimizer.saveState});</li>
 * <li>{@value #STATE_FILE}: this record.</li>
 * </ul>
 * The LR schedule is a function of the step count, so the step is its whole state; the batch order is a function of
 * (seed, epoch), so the epoch and the position in it are the data loader's whole state; noise is counter-based
 * from (seed, batch index); the timestep sampler's generator state is stored here.
 *
 * @param format             {@value #FORMAT}
 * @param outputName         the run's --output_name
 * @param seed               the run's seed (batch order, LoRA init, noise, timesteps all derive from it)
 * @param globalStep         optimizer steps done
 * @param epoch              1-based epoch in progress (epochs + 1 when every epoch is done)
 * @param epochPosition      batches of {@code epoch} already trained
 * @param maxTrainSteps      the run's step budget, checked on resume
 * @param samplerSeed        timestep sampler generator: seed
 * @param samplerCounter     timestep sampler generator: draws made
 * @param samplerBucketPool  timestep sampler: remaining strata of --num_timestep_buckets (empty without it)
 * @param lossHistory        musubi's moving-average window, one loss per batch position
 * @param trainingStartedAt  unix seconds when the run first started (ss_training_started_at)
 * @param sessionId          the run's ss_session_id, kept across resumes
 * @param savedAt            unix seconds of this save
 */
public record TrainState(String format, String outputName, long seed, long globalStep, int epoch, int epochPosition,
                         long maxTrainSteps, long samplerSeed, long samplerCounter, int[] samplerBucketPool,
                         List<Double> lossHistory, double trainingStartedAt, long sessionId, double savedAt) {

    public static final String FORMAT = "wanlora-state-1";
    public static final String LORA_FILE = "lora.safetensors";
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";
    public static final String STATE_FILE = "state.json";

    private static final JsonMapper JSON = JsonMapper.builder()
            .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES).build();

    /**
     * Writes a state folder atomically (a crash leaves the previous folder or none, never half of one):
     * {@code writeLora} and {@code writeOptimizer} fill the two tensor files at the paths they are given.
     */
    public void write(Path dir, AtomicFiles.Content writeLora, AtomicFiles.Content writeOptimizer) {
        AtomicFiles.writeDirectory(dir, temp -> {
            writeLora.writeTo(temp.resolve(LORA_FILE));
            writeOptimizer.writeTo(temp.resolve(OPTIMIZER_FILE));
            Files.writeString(temp.resolve(STATE_FILE), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(this));
        });
    }

    /** Reads {@code dir}'s state.json and checks that the tensor files are there; a bad folder is one {@link UserError} line. */
    public static TrainState read(Path dir) {
        Path file = dir.resolve(STATE_FILE);
        TrainState s;
        try {
            s = JSON.readValue(Files.readString(file), TrainState.class);
        } catch (NoSuchFileException e) {
            throw new UserError("--resume " + dir + ": no " + STATE_FILE + " in it; pass a state folder written by wanlora's"
                    + " --save_state (musubi's accelerate state folders cannot be resumed by wanlora)");
        } catch (JacksonException e) {
            throw new UserError(file + ": unreadable (" + SafeTensors.jsonProblem(e)
                    + "); the state folder is damaged, resume from an older one");
        } catch (IOException e) {
            throw new UserError(file + ": cannot read (" + e.getMessage() + ")");
        }
        if (s == null) {
            throw new UserError(file + ": holds JSON null, expected the state object; the state folder is damaged, resume from an older one");
        }
        if (!FORMAT.equals(s.format())) {
            throw new UserError(file + ": format '" + s.format() + "', expected '" + FORMAT + "'; it was written by another"
                    + " wanlora version");
        }
        for (String f : List.of(LORA_FILE, OPTIMIZER_FILE)) {
            if (!Files.isRegularFile(dir.resolve(f))) {
                throw new UserError("--resume " + dir + ": " + f + " is missing; the state folder is incomplete, resume from an older one");
            }
        }
        s.checkFields(file);
        return s;
    }

    /**
     * Every field in its range, so that a damaged or hand-edited state.json ends in one line here instead of a crash or
     * a nonsense run later; what depends on the run (dataset, step budget) is {@link #checkAgainst}.
     */
    private void checkFields(Path file) {
        requireThat(globalStep >= 0, file, "globalStep", globalStep, "a step count >= 0");
        requireThat(epoch >= 1, file, "epoch", epoch, "a 1-based epoch number");
        requireThat(epochPosition >= 0, file, "epochPosition", epochPosition, "a batch count >= 0");
        requireThat(maxTrainSteps >= 1, file, "maxTrainSteps", maxTrainSteps, "a step count >= 1");
        requireThat(samplerCounter >= 0, file, "samplerCounter", samplerCounter, "a draw count >= 0");
        requireThat(samplerBucketPool != null, file, "samplerBucketPool", null, "an array of timestep strata ([] without --num_timestep_buckets)");
        requireThat(lossHistory != null, file, "lossHistory", null, "an array of per-batch losses");
        for (int i = 0; i < lossHistory.size(); i++) {
            Double loss = lossHistory.get(i);
            requireThat(loss != null && Double.isFinite(loss), file, "lossHistory[" + i + "]", loss, "a finite loss");
        }
        requireThat(Double.isFinite(trainingStartedAt) && trainingStartedAt >= 0, file, "trainingStartedAt", trainingStartedAt,
                "unix seconds");
    }

    /**
     * The state against the run resuming it: the same timestep strata setting ({@code numTimestepBuckets}, 0 for none),
     * an epoch and position inside this dataset's epochs, and steps left to train.
     */
    public void checkAgainst(Path dir, long batchesPerEpoch, int epochs, long maxTrainSteps, int numTimestepBuckets) {
        Path file = dir.resolve(STATE_FILE);
        for (int stratum : samplerBucketPool) {
            requireThat(stratum >= 0 && stratum < numTimestepBuckets, file, "samplerBucketPool", java.util.Arrays.toString(samplerBucketPool),
                    numTimestepBuckets < 2 ? "[] (this run has no --num_timestep_buckets)"
                            : "strata from 0 to " + (numTimestepBuckets - 1) + " of --num_timestep_buckets " + numTimestepBuckets);
        }
        if (epochPosition > batchesPerEpoch) {
            throw new UserError(file + ": epochPosition " + epochPosition + " is past the " + batchesPerEpoch + " batches per"
                    + " epoch of this dataset; resume with the dataset config (and caches) the state was trained with");
        }
        if (globalStep >= maxTrainSteps) {
            throw new UserError("--resume " + dir + ": the state is at step " + globalStep + " and this run trains "
                    + maxTrainSteps + " steps, so nothing is left to train; raise --max_train_steps or --max_train_epochs");
        }
        if (epoch > epochs) {
            throw new UserError(file + ": epoch " + epoch + " is past the " + epochs + " epoch(s) of this run; resume with"
                    + " the dataset config and --max_train_epochs/--max_train_steps the state was trained with");
        }
    }

    private static void requireThat(boolean isValid, Path file, String field, Object value, String expected) {
        if (!isValid) {
            throw new UserError(file + ": " + field + " is " + value + ", expected " + expected
                    + "; the state folder is damaged, resume from an older one");
        }
    }
}
