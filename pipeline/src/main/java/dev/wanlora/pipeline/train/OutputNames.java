package dev.wanlora.pipeline.train;

import dev.wanlora.pipeline.train.TrainState;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * File and folder names of a run, as musubi names them (spec §11; musubi {@code utils/train_utils.py}), and
 * musubi's {@code --save_last_n_*} pruning rule: at each save, exactly one older file is removed, the one that fell
 * out of the window.
 *
 * @param name             {@code --output_name}
 * @param everyNEpochs     {@code --save_every_n_epochs}, or null
 * @param lastNEpochs      {@code --save_last_n_epochs}, or null
 * @param lastNEpochStates {@code --save_last_n_epochs_state}, or null (then lastNEpochs applies to states)
 * @param everyNSteps      {@code --save_every_n_steps}, or null
 * @param lastNSteps       {@code --save_last_n_steps}, or null
 * @param lastNStepStates  {@code --save_last_n_steps_state}, or null (then lastNSteps applies to states)
 */
public record OutputNames(String name, Integer everyNEpochs, Integer lastNEpochs, Integer lastNEpochStates,
                          Integer everyNSteps, Integer lastNSteps, Integer lastNStepStates) {

    /** {@code {name}-{epoch:06d}.safetensors}, epoch 1-based. */
    public String epochFile(long epoch) { return String.format("%s-%06d.safetensors", name, epoch); }

    /** {@code {name}-step{step:08d}.safetensors}. */
    public String stepFile(long step) { return String.format("%s-step%08d.safetensors", name, step); }

    /** {@code {name}.safetensors}, written when training ends. */
    public String lastFile() { return name + ".safetensors"; }

    public String epochState(long epoch) { return String.format("%s-%06d-state", name, epoch); }

    public String stepState(long step) { return String.format("%s-step%08d-state", name, step); }

    /** {@code {name}-state}, written when training ends with --save_state or --save_state_on_train_end. */
    public String lastState() { return name + "-state"; }

    public String configDump() { return name + "-config.toml"; }

    /** The epoch whose file to delete after saving {@code epoch}: epoch − every·lastN (musubi's get_remove_epoch_no). */
    public OptionalLong epochFileToRemove(long epoch) {
        return lastNEpochs == null ? OptionalLong.empty() : positive(epoch - (long) everyNEpochs * lastNEpochs);
    }

    public OptionalLong epochStateToRemove(long epoch) {
        Integer n = lastNEpochStates != null ? lastNEpochStates : lastNEpochs;
        return n == null ? OptionalLong.empty() : positive(epoch - (long) everyNEpochs * n);
    }

    /**
     * The step whose file to delete after saving {@code step}: r = step − lastN − 1 rounded down to a multiple of
     * every (musubi's get_remove_step_no: with every 10 and lastN 30, saving step 50 removes step 10).
     */
    public OptionalLong stepFileToRemove(long step) {
        return lastNSteps == null ? OptionalLong.empty() : stepToRemove(step, lastNSteps);
    }

    public OptionalLong stepStateToRemove(long step) {
        Integer n = lastNStepStates != null ? lastNStepStates : lastNSteps;
        return n == null ? OptionalLong.empty() : stepToRemove(step, n);
    }

    private OptionalLong stepToRemove(long step, long lastN) {
        long r = step - lastN - 1;
        r -= Math.floorMod(r, (long) everyNSteps);
        return positive(r);
    }

    private static OptionalLong positive(long v) {
        return v > 0 ? OptionalLong.of(v) : OptionalLong.empty();
    }

    /**
     * The LoRA files and state folders in {@code dir} that a run called {@code name} writes (any epoch or step).
     * The configuration dump is not among them: it describes whichever run last started, and is rewritten freely.
     */
    public List<Path> existingRunFiles(Path dir) {
        if (!Files.isDirectory(dir)) return List.of();
        Pattern ours = runFiles();
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> ours.matcher(p.getFileName().toString()).matches()).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot list", e);
        }
    }

    /**
     * The run's files in {@code dir} written after a state saved at {@code step} that continues in {@code epoch}
     * ({@link TrainState#epoch()}): what resuming that state would overwrite. By name: step files and states of later
     * steps, epoch files and states of epochs from {@code epoch} on (an epoch state continues in the next epoch, so
     * its own epoch file is older), and the final file and state unless {@code state} is that final state.
     */
    public List<Path> writtenAfter(Path dir, long step, int epoch, Path state) {
        boolean isFinalState = state.toAbsolutePath().normalize().equals(dir.resolve(lastState()).toAbsolutePath().normalize());
        Pattern ours = runFiles();
        List<Path> newer = new java.util.ArrayList<>();
        for (Path p : existingRunFiles(dir)) {
            var m = ours.matcher(p.getFileName().toString());
            if (!m.matches()) continue;
            boolean isNewer;
            if (m.group("step") != null) isNewer = Long.parseLong(m.group("step")) > step;
            else if (m.group("epoch") != null) isNewer = Long.parseLong(m.group("epoch")) >= epoch;
            else isNewer = !isFinalState;
            if (isNewer) newer.add(p);
        }
        return newer;
    }

    /** "a, b, c and 4 more": the first three file names of {@code files}, for a one-line message. */
    public static String listed(List<Path> files) {
        String first = String.join(", ", files.stream().limit(3).map(p -> p.getFileName().toString()).toList());
        return files.size() <= 3 ? first : first + " and " + (files.size() - 3) + " more";
    }

    /** {name}.safetensors, {name}-state, and the numbered files and states (group "epoch" or "step"). */
    private Pattern runFiles() {
        return Pattern.compile(Pattern.quote(name) + "(?:\\.safetensors|-state|-(?<epoch>\\d{6})(?:\\.safetensors|-state)"
                + "|-step(?<step>\\d{8})(?:\\.safetensors|-state))");
    }
}
