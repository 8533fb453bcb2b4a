package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.Tensor;

import java.nio.file.Path;
import java.util.List;

/**
 * What {@link AdamW} and {@link AdamW8bit} share: the parameters, the settings, the AdamW hyper-parameters each step
 * hands to the update op, and the state file. A subclass owns its moment buffers: it allocates them, applies one
 * {@link #update} with them and lists them as {@link #slots()} (key and tensor) for {@link OptimizerStateFile}.
 */
abstract sealed class MomentOptimizer implements Optimizer permits AdamW, AdamW8bit {
    final Backend backend;
    final OptimizerConfig config;
    final List<TrainableParameter> parameters;
    private long lastStep;

    MomentOptimizer(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters) {
        this.backend = backend;
        this.config = config;
        this.parameters = List.copyOf(parameters);
    }

    /** Updates every parameter with {@code hyper}; {@code gradScale} (1) F32 as in {@link Optimizer#step}. */
    abstract void update(Backend.AdamWStep hyper, Tensor gradScale);

    /** {@code hyper} with the learning rate of parameter {@code p} (its LoRA+ scale applied). */
    static Backend.AdamWStep scaled(Backend.AdamWStep hyper, TrainableParameter p) {
        if (p.learningRateScale() == 1f) return hyper;
        return new Backend.AdamWStep(hyper.learningRate() * p.learningRateScale(), hyper.beta1(), hyper.beta2(), hyper.eps(),
                hyper.weightDecay(), hyper.step());
    }

    /** Every state buffer with its key in the state file, in the order the file lists them. */
    abstract List<OptimizerStateFile.Slot> slots();

    @Override
    public final void step(long step, float learningRate, Tensor gradScale) {
        update(new Backend.AdamWStep(learningRate, config.beta1(), config.beta2(), config.eps(), config.weightDecay(), step),
                gradScale);
        lastStep = step;
    }

    @Override
    public final OptimizerConfig config() {
        return config;
    }

    @Override
    public final List<TrainableParameter> parameters() {
        return parameters;
    }

    @Override
    public final void saveState(Path file) {
        OptimizerStateFile.write(file, backend, config, lastStep, slots());
    }

    @Override
    public final long loadState(Path file) {
        lastStep = OptimizerStateFile.read(file, backend, config, slots());
        return lastStep;
    }
}
