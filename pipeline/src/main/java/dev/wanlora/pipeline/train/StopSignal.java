package dev.wanlora.pipeline.train;

import java.util.function.Consumer;

/**
 * How a run learns that the user asked it to stop (the command line's Ctrl-C and SIGTERM handling): the loop checks
 * {@link #isRequested()} between optimizer steps, then saves a state and ends with {@link TrainingRun#INTERRUPTED}.
 */
public interface StopSignal extends AutoCloseable {

    /** Starts listening for a stop; {@code notice} prints one line to the user at once (on the signal's thread). */
    @FunctionalInterface
    interface Source {
        StopSignal install(Consumer<String> notice);
    }

    /** True once a stop was asked for. */
    boolean isRequested();

    /**
     * Called once the start-up is done (before the loop): from now on a stop waits for the step boundary and a saved
     * state.
     */
    void trainingStarted();

    /** Stops listening (at the end of the run). Idempotent. */
    @Override
    void close();
}
