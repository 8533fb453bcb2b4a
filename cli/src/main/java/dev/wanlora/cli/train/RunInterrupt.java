package dev.wanlora.cli.train;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Ctrl-C during training: instead of dying mid-step, the JVM's shutdown hook asks the training loop to stop, and
 * waits until the loop has saved a state folder and released the hook. The loop checks {@link #isRequested()}
 * between optimizer steps.
 *
 * <p>Why a shutdown hook: Java has no supported SIGINT handler API; a shutdown hook runs on SIGINT and SIGTERM, and
 * the JVM does not exit until every hook returns, so blocking in it buys the loop time to finish the step and write
 * the state. Only once steps run: during start-up the hook returns at once and the JVM exits (a start-up that hangs,
 * e.g. on a damaged dataset, must stay stoppable). The hook gives up after {@link #MAX_WAIT_MINUTES} so a hung run can still be killed. A second Ctrl-C
 * cannot stop the save (the JVM ignores signals while hooks run); {@code kill -9} can.
 */
final class RunInterrupt implements AutoCloseable {
    /** Long enough to finish a step and write a state folder on a slow disk. */
    static final long MAX_WAIT_MINUTES = 10;

    private final Thread hook;
    private final CountDownLatch released = new CountDownLatch(1);
    private volatile boolean isRequested;
    private volatile boolean isShuttingDown;
    /** Set by the loop once it runs steps; before that a signal ends the process at once. */
    private volatile boolean isTraining;

    private RunInterrupt() {
        hook = new Thread(this::onSignal, "wanlora-interrupt");
    }

    /** The shutdown hook's body: ask the loop to stop, then wait for its state save (once steps run). */
    void onSignal() {
        isShuttingDown = true;
        isRequested = true;
        if (!isTraining) return; // start-up has no step boundary to wait for and nothing to save: stop at once
        try {
            released.await(MAX_WAIT_MINUTES, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Registers the hook; {@link #close()} (at the end of training) removes it. */
    static RunInterrupt install() {
        RunInterrupt r = new RunInterrupt();
        Runtime.getRuntime().addShutdownHook(r.hook);
        return r;
    }

    /** True once Ctrl-C (or {@link #request()}) asked the loop to save and stop. */
    boolean isRequested() {
        return isRequested;
    }

    /**
     * Called by the loop before each step: from now on Ctrl-C waits for the step to end and the state to be saved.
     * Before the first call (reading data, building the epoch's batch order) a signal stops the process at once.
     */
    void trainingStarted() {
        isTraining = true;
    }

    /** Asks the loop to stop as Ctrl-C would (the --stop_at_step test hook uses the same path). */
    void request() {
        isRequested = true;
    }

    /** Lets the JVM finish exiting (when a Ctrl-C is waiting) or removes the hook (normal end). Idempotent. */
    @Override
    public void close() {
        released.countDown();
        if (!isShuttingDown) {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // the JVM started shutting down between the check and the call: the hook runs and returns at once
            }
        }
    }
}
