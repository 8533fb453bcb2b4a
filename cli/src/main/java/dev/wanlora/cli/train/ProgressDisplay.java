package dev.wanlora.cli.train;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.Locale;

/**
 * Training progress: step/total, epoch, s/it, loss and its moving average, learning rate, peak VRAM and the time
 * left. On a terminal it is one live progress bar (me.tongfei progressbar); otherwise (a log file, CI, a pipe) it is
 * one plain line every {@code linesEvery} steps, plus the first and the last step, so logs stay readable.
 */
final class ProgressDisplay implements AutoCloseable {

    /** One step's numbers. peakVramGiB is NaN on the CPU backend. */
    record StepReport(long step, long totalSteps, int epoch, int epochs, double secondsPerStep, double loss,
                      double averageLoss, double learningRate, double peakVramGiB) {}

    private final PrintWriter out;
    private final ProgressBar bar;
    private final long linesEvery;

    private ProgressDisplay(PrintWriter out, ProgressBar bar, long linesEvery) {
        this.out = out;
        this.bar = bar;
        this.linesEvery = linesEvery;
    }

    /**
     * A bar when {@code useBar} (callers pass whether stdout is a terminal), else plain lines on {@code out}.
     *
     * @param startStep  steps already done (a resumed run), so the bar and its time estimate start there
     * @param linesEvery plain-line interval in steps (≥ 1)
     */
    static ProgressDisplay create(PrintWriter out, boolean useBar, long startStep, long totalSteps, long linesEvery) {
        if (!useBar) return new ProgressDisplay(out, null, Math.max(1, linesEvery));
        out.flush();
        ProgressBar bar = new ProgressBarBuilder().setTaskName("train").setInitialMax(totalSteps)
                .startsFrom(startStep, Duration.ZERO).setUpdateIntervalMillis(500)
                .setConsumer(new ConsoleProgressBarConsumer(System.out)).build();
        return new ProgressDisplay(out, bar, 1);
    }

    /** Whether standard output is an interactive terminal (Java 22+ reports redirected output as not a terminal). */
    static boolean isTerminal() {
        return System.console() != null && System.console().isTerminal();
    }

    void update(StepReport r) {
        if (bar != null) {
            bar.stepTo(r.step());
            // compact: the bar gives up its own width first, then the message is cut at the terminal's edge
            bar.setExtraMessage(String.format(Locale.ROOT, "ep %d/%d %s loss %.4f avg %.4f lr %.1e%s", r.epoch(), r.epochs(),
                    speed(r.secondsPerStep()).replace(" s/it", "s/it"), r.loss(), r.averageLoss(), r.learningRate(),
                    vram(r.peakVramGiB()).replace(" vram ", " ").replace(" GiB", "G")));
            return;
        }
        if (r.step() % linesEvery != 0 && r.step() != r.totalSteps() && r.step() != 1) return;
        long remaining = r.totalSteps() - r.step();
        String eta = Double.isFinite(r.secondsPerStep()) ? " eta " + clock(remaining * r.secondsPerStep()) : "";
        out.println(String.format(Locale.ROOT, "step %d/%d epoch %d/%d loss %.4f avg %.4f lr %.2e %s%s%s", r.step(),
                r.totalSteps(), r.epoch(), r.epochs(), r.loss(), r.averageLoss(), r.learningRate(), speed(r.secondsPerStep()),
                vram(r.peakVramGiB()), eta));
        out.flush();
    }

    /** A message between updates (saving, validation): on a terminal it goes above the bar. */
    void message(String line) {
        if (bar != null) {
            System.out.print("\r\033[2K");
            System.out.println(line);
            bar.refresh();
        } else {
            out.println(line);
            out.flush();
        }
    }

    @Override
    public void close() {
        if (bar != null) bar.close();
        out.flush();
    }

    private static String speed(double secondsPerStep) {
        return Double.isFinite(secondsPerStep) ? String.format(Locale.ROOT, "%.2f s/it", secondsPerStep) : "- s/it";
    }

    private static String vram(double gib) {
        return Double.isNaN(gib) ? "" : String.format(Locale.ROOT, " vram %.1f GiB", gib);
    }

    static String clock(double seconds) {
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
    }
}
