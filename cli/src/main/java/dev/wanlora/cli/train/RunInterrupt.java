package dev.wanlora.cli.train;

import dev.wanlora.pipeline.train.StopSignal;
import sun.misc.Signal;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Ctrl-C and SIGTERM during training: instead of dying mid-step, the loop is asked to stop after the step in
 * progress and save a state folder; the loop checks {@link #isRequested()} between optimizer steps.
 *
 * <ul>
 * <li>Ctrl-C (SIGINT) is handled here: the first prints {@link #NOTICE} at once (a 14B step takes ~30 s, silence
 * looks like a hang) and asks the loop to stop; a second stops the JVM at once ({@link Runtime#halt}, exit code
 * 130), which corrupts nothing: every file is written under a temporary name and renamed when complete, so a halt
 * leaves at most a {@code .name.*.tmp} beside the last complete files.
 * <li>During start-up (until the loop begins: reading data, loading the model, the samples at first) there is no step
 * boundary to wait for and nothing to save: either signal stops the process at once (a start-up that hangs, e.g. on
 * a damaged dataset, must stay stoppable).
 * <li>SIGTERM (and SIGINT where the handler cannot be installed, e.g. under {@code -Xrs}) runs the JVM's shutdown
 * hooks: ours asks the loop to stop and blocks, since the JVM does not exit until every hook returns, until the
 * loop has saved and {@link #close() released} it, or {@link #MAX_WAIT_MINUTES} passed so a hung run can still
 * end. A second SIGTERM cannot interrupt that ({@code kill -9} can).
 * </ul>
 * The signal handler is java's {@code sun.misc.Signal} (module jdk.unsupported, exported to every application, which
 * build tools and servers use for the same purpose): Java has no supported API to handle SIGINT itself.
 */
final class RunInterrupt implements StopSignal {
    /** Long enough to finish a step and write a state folder on a slow disk. */
    static final long MAX_WAIT_MINUTES = 10;
    static final String NOTICE = "stopping after this step and saving state (Ctrl-C again to stop now)";
    /** 128 + SIGINT, as shells report an interrupted command. */
    static final int INTERRUPTED_EXIT_CODE = 130;

    private final Consumer<String> notice;
    private final Thread hook;
    private final CountDownLatch released = new CountDownLatch(1);
    private final Signal sigint = new Signal("INT");
    private sun.misc.SignalHandler previousSigint;
    private volatile boolean isRequested;
    private volatile boolean isShuttingDown;
    /** Set by the loop once it runs steps; before that a signal ends the process at once. */
    private volatile boolean isTraining;

    private RunInterrupt(Consumer<String> notice) {
        this.notice = notice;
        hook = new Thread(this::onSignal, "wanlora-interrupt");
    }

    /** The shutdown hook's body (SIGTERM): ask the loop to stop, then wait for its state save (once steps run). */
    void onSignal() {
        isShuttingDown = true;
        if (!isTraining) { // start-up has no step boundary to wait for and nothing to save: stop at once
            isRequested = true;
            return;
        }
        request("received SIGTERM: stopping after this step and saving state");
        try {
            released.await(MAX_WAIT_MINUTES, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Registers the shutdown hook and the Ctrl-C handler; {@link #close()} (at the end of training) removes them.
     *
     * @param notice prints one line to the user at once (called on the signal's thread)
     */
    static RunInterrupt install(Consumer<String> notice) {
        RunInterrupt r = new RunInterrupt(notice);
        Runtime.getRuntime().addShutdownHook(r.hook);
        try {
            r.previousSigint = Signal.handle(r.sigint, s -> r.ctrlC());
        } catch (IllegalArgumentException e) {
            // SIGINT is reserved (-Xrs) or ignored: Ctrl-C then takes the shutdown-hook path like SIGTERM
        }
        return r;
    }

    private void ctrlC() {
        if (!isTraining) {
            notice.accept("stopping now (start-up: nothing to save yet)");
            Runtime.getRuntime().halt(INTERRUPTED_EXIT_CODE);
        }
        if (!isRequested) {
            request(NOTICE);
            return;
        }
        notice.accept("stopping now: the step in progress is lost; the files saved before it are complete");
        Runtime.getRuntime().halt(INTERRUPTED_EXIT_CODE);
    }

    private void request(String line) {
        isRequested = true;
        notice.accept(line);
    }

    /** True once Ctrl-C, SIGTERM or {@link #request()} asked the loop to save and stop. */
    @Override
    public boolean isRequested() {
        return isRequested;
    }

    /**
     * Called once the start-up is done (before the loop; the TensorBoard line follows): from now on Ctrl-C waits for
     * the step to end and the state to be saved. Before it (reading data, loading, the samples at first) a signal
     * stops the process at once.
     */
    @Override
    public void trainingStarted() {
        isTraining = true;
    }

    /** Asks the loop to stop as Ctrl-C would, silently (the --stop_at_step test hook uses the same path). */
    void request() {
        isRequested = true;
    }

    /** Lets the JVM finish exiting (when a SIGTERM is waiting) or removes the hook and handler (normal end). Idempotent. */
    @Override
    public void close() {
        released.countDown();
        if (previousSigint != null) {
            Signal.handle(sigint, previousSigint);
            previousSigint = null;
        }
        if (!isShuttingDown) {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // the JVM started shutting down between the check and the call: the hook runs and returns at once
            } catch (IllegalArgumentException e) {
                // already removed by an earlier close
            }
        }
    }
}
