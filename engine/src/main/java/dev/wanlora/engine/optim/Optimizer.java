package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.Tensor;

import java.nio.file.Path;
import java.util.List;

/**
 * Updates a fixed list of {@link TrainableParameter}s from their gradients, entirely through {@link Backend} ops (no
 * host synchronization). State tensors are allocated once, at construction, on the parameters' backend.
 */
public interface Optimizer extends AutoCloseable {

    /**
     * One update of every parameter. {@code step} is the 1-based update count (bias correction), {@code
     * learningRate} this update's rate (from the schedule), {@code gradScale} (1) F32 the factor each gradient is
     * multiplied by first (the clip coefficient from {@link GradClip}, computed on the device).
     */
    void step(long step, float learningRate, Tensor gradScale);

    OptimizerConfig config();

    List<TrainableParameter> parameters();

    /**
     * Writes the state (moments and the last step) as a safetensors file, atomically: one tensor per state buffer,
     * keyed {@code <parameter name>.<buffer>}, and the settings as JSON in the {@code wanlora.optimizer} metadata.
     */
    void saveState(Path file);

    /**
     * Restores the state written by {@link #saveState} for the same parameters and settings; returns the last step
     * it had made. A different optimizer, setting, parameter list or shape ends in one line naming the file and
     * the difference.
     */
    long loadState(Path file);

    /** Frees the state tensors (not the parameters). */
    @Override
    void close();

    /** The optimizer {@code config} names, over {@code parameters}. */
    static Optimizer create(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters) {
        return switch (config.kind()) {
            case ADAMW -> new AdamW(backend, config, parameters);
            case ADAMW_8BIT -> new AdamW8bit(backend, config, parameters);
        };
    }
}
