package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;

import java.nio.file.Path;
import java.util.List;

/**
 * What every optimizer shares: the backend, the settings, the parameters (a copy of the list), the last step it
 * applied, and the state file written from and read into its {@link #slots()}. A subclass allocates its buffers, runs
 * {@link Optimizer#step} on them (calling {@link #stepDone}) and lists them as slots (key and tensor) for
 * {@link OptimizerStateFile}.
 */
abstract sealed class StatefulOptimizer implements Optimizer permits MomentOptimizer, Adafactor, Prodigy {
    final Backend backend;
    final OptimizerConfig config;
    final List<TrainableParameter> parameters;
    private long lastStep;

    StatefulOptimizer(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters) {
        this.backend = backend;
        this.config = config;
        this.parameters = List.copyOf(parameters);
    }

    /** Every state buffer with its key in the state file, in the order the file lists them. */
    abstract List<OptimizerStateFile.Slot> slots();

    /** Records {@code step} as the last one applied (saved in the state file). */
    final void stepDone(long step) {
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
