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

    /**
     * Bytes of state {@link #create} allocates for one parameter of {@code numElements} elements, without allocating
     * (for the memory plan): AdamW two F32 moments; AdamW8bit two U8 codes plus two F32 absmax per
     * {@link AdamW8bit#BLOCK_SIZE} elements, or two F32 moments below {@code min8bitSize}.
     */
    static long stateBytes(OptimizerConfig config, long numElements) {
        long fp32Moments = 2 * numElements * Float.BYTES;
        return switch (config.kind()) {
            case ADAMW -> fp32Moments;
            case ADAMW_8BIT -> numElements < config.min8bitSize() ? fp32Moments
                    : 2 * (numElements + Math.ceilDiv(numElements, AdamW8bit.BLOCK_SIZE) * Float.BYTES);
            case PRODIGY -> 4 * numElements * Float.BYTES; // m, v, s, p0
            case ADAFACTOR -> (config.adafactor().hasFirstMoment() ? 2 : 1) * numElements * Float.BYTES; // 1-D: v (and m)
        };
    }

    /**
     * Bytes of state for one (rows, cols) parameter: as {@link #stateBytes(OptimizerConfig, long)}, except that
     * Adafactor factors a matrix's second moment into rows + cols F32 (and m when beta1 is set).
     */
    static long stateBytes(OptimizerConfig config, long rows, long cols) {
        if (config.kind() != OptimizerConfig.Kind.ADAFACTOR) return stateBytes(config, rows * cols);
        return (rows + cols + (config.adafactor().hasFirstMoment() ? rows * cols : 0)) * Float.BYTES;
    }

    /** The optimizer {@code config} names, over {@code parameters}, one update op per parameter. */
    static Optimizer create(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters) {
        return create(backend, config, parameters, null);
    }

    /**
     * The optimizer {@code config} names, over {@code parameters}; {@code contiguous}, when not null, is one
     * parameter whose value and gradient are exactly {@code parameters}' values and gradients back to back, in order
     * (a LoRA's flat buffers). The update then runs as one op over it wherever that computes the same as one op per
     * parameter (always for AdamW; for AdamW8bit when every parameter is 8-bit and a whole number of quantization
     * blocks), saving a launch per parameter. State files are the same either way.
     */
    static Optimizer create(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters,
                            TrainableParameter contiguous) {
        if (contiguous != null) {
            long total = 0;
            for (TrainableParameter p : parameters) total += p.value().numElements();
            if (contiguous.value().numElements() != total || contiguous.grad().numElements() != total) {
                throw new IllegalArgumentException("Optimizer.create: the contiguous parameter has "
                        + contiguous.value().numElements() + " elements, expected " + total
                        + " (the parameters' total)");
            }
        }
        boolean isScaled = parameters.stream().anyMatch(p -> p.learningRateScale() != 1f);
        if (isScaled && config.kind() == OptimizerConfig.Kind.PRODIGY) {
            // prodigy.py: "Setting different lr values in different parameter groups is only supported for values of 0"
            throw new IllegalArgumentException("--network_args loraplus_lr_ratio: Prodigy takes one learning rate for all"
                    + " parameters (prodigyopt raises for LoRA+'s second group); expected no loraplus_lr_ratio with Prodigy");
        }
        if (isScaled) contiguous = null; // one op per parameter, each with its own learning rate
        return switch (config.kind()) {
            case ADAMW -> new AdamW(backend, config, parameters, contiguous);
            case ADAMW_8BIT -> new AdamW8bit(backend, config, parameters, contiguous);
            case PRODIGY -> new Prodigy(backend, config, parameters, contiguous);
            case ADAFACTOR -> new Adafactor(backend, config, parameters); // per matrix: the factors need each one's shape
        };
    }
}
