package dev.wanlora.pipeline.train;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarConsumer;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.List;
import java.util.Locale;

/**
 * Training progress: step/total, epoch, s/it, loss and its moving average, learning rate, peak VRAM and the time
 * left. On a terminal it is one live progress bar (me.tongfei progressbar); otherwise (a log file, CI, a pipe) it is
 * one plain line every {@code linesEvery} steps, plus the first and the last step, so logs stay readable.
 */
public final class ProgressDisplay implements AutoCloseable {

    /** One step's numbers. peakVramGiB is NaN on the CPU backend. */
    public record StepReport(long step, long totalSteps, int epoch, int epochs, double secondsPerStep, double loss,
                      double averageLoss, double learningRate, double peakVramGiB) {}

    private static final String TASK_NAME = "train";
    /** The fewest bar cells kept visible: the message gives up its less important parts first. */
    public static final int MIN_BAR_CELLS = 10;

    private final PrintWriter out;
    private final ProgressBar bar;
    private final ProgressBarConsumer consumer;
    private final long linesEvery;

    private ProgressDisplay(PrintWriter out, ProgressBar bar, ProgressBarConsumer consumer, long linesEvery) {
        this.out = out;
        this.bar = bar;
        this.consumer = consumer;
        this.linesEvery = linesEvery;
    }

    private ProgressDisplay(PrintWriter out, ProgressBar bar, long linesEvery) {
        this(out, bar, null, linesEvery);
    }

    /**
     * A bar when {@code useBar} (callers pass whether stdout is a terminal), else plain lines on {@code out}.
     *
     * @param startStep  steps already done (a resumed run), so the bar and its time estimate start there
     * @param linesEvery plain-line interval in steps (≥ 1)
     */
    public static ProgressDisplay create(PrintWriter out, boolean useBar, long startStep, long totalSteps, long linesEvery) {
        if (!useBar) return new ProgressDisplay(out, null, Math.max(1, linesEvery));
        return withBar(out, new ConsoleProgressBarConsumer(System.out), startStep, totalSteps);
    }

    /** A bar drawn by {@code consumer}, whose width is the terminal's (or a test's fixed width). */
    public static ProgressDisplay withBar(PrintWriter out, ProgressBarConsumer consumer, long startStep, long totalSteps) {
        out.flush();
        ProgressBar bar = new ProgressBarBuilder().setTaskName(TASK_NAME).setInitialMax(totalSteps)
                .startsFrom(startStep, Duration.ZERO).setUpdateIntervalMillis(500).setConsumer(consumer).build();
        return new ProgressDisplay(out, bar, consumer, 1);
    }

    /** Whether standard output is an interactive terminal (Java 22+ reports redirected output as not a terminal). */
    public static boolean isTerminal() {
        return System.console() != null && System.console().isTerminal();
    }

    public void update(StepReport r) {
        if (bar != null) {
            bar.stepTo(r.step());
            bar.setExtraMessage(barMessage(r, consumer.getMaxRenderedLength()));
            return;
        }
        if (r.step() % linesEvery != 0 && r.step() != r.totalSteps() && r.step() != 1) return;
        long remaining = r.totalSteps() - r.step();
        String eta = Double.isFinite(r.secondsPerStep()) ? " eta " + clock(remaining * r.secondsPerStep()) : "";
        out.println(String.format(Locale.ROOT, "step %d/%d epoch %d/%d loss %.4f avg %.4f lr %s %s%s%s", r.step(),
                r.totalSteps(), r.epoch(), r.epochs(), r.loss(), r.averageLoss(), learningRate(r.learningRate()), speed(r.secondsPerStep()),
                vram(r.peakVramGiB()), eta));
        out.flush();
    }

    /** A message between updates (saving, validation): on a terminal it goes above the bar. */
    public void message(String line) {
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

    /**
     * The bar's message for a line of {@code width} columns. The library gives the bar what the rest of the line
     * leaves, so a full message on an 80-column terminal left none ({@code │ │}): parts are dropped, least useful
     * first (average loss, epoch, VRAM, learning rate, s/it; the loss stays), until {@link #MIN_BAR_CELLS} remain.
     */
    public static String barMessage(StepReport r, int width) {
        String ratio = r.totalSteps() + "/" + r.totalSteps();
        // "train 100% │" + "│ " + ratio + " (H:MM:SS / H:MM:SS) " + message, as the library's renderer lays it out
        int fixed = TASK_NAME.length() + " 100% │".length() + "│ ".length() + ratio.length() + " (0:00:00 / 0:00:00) ".length();
        int room = width - 1 - fixed - MIN_BAR_CELLS;
        String vram = vram(r.peakVramGiB()).replace(" vram ", " ").replace(" GiB", "G");
        String epoch = String.format(Locale.ROOT, "ep %d/%d ", r.epoch(), r.epochs());
        String speed = speed(r.secondsPerStep()).replace(" s/it", "s/it") + " ";
        String loss = String.format(Locale.ROOT, "loss %.4f", r.loss());
        String average = String.format(Locale.ROOT, " avg %.4f", r.averageLoss());
        String lr = " lr " + learningRate(r.learningRate());
        List<String> candidates = List.of(epoch + speed + loss + average + lr + vram, epoch + speed + loss + lr + vram,
                speed + loss + lr + vram, speed + loss + lr, speed + loss, loss);
        for (String c : candidates) if (c.length() <= room) return c;
        return loss;
    }

    /** The one format of a learning rate in wanlora's output: "5.00e-05". */
    public static String learningRate(double lr) {
        return String.format(Locale.ROOT, "%.2e", lr);
    }

    private static String speed(double secondsPerStep) {
        return Double.isFinite(secondsPerStep) ? String.format(Locale.ROOT, "%.2f s/it", secondsPerStep) : "- s/it";
    }

    private static String vram(double gib) {
        return Double.isNaN(gib) ? "" : String.format(Locale.ROOT, " vram %.1f GiB", gib);
    }

    public static String clock(double seconds) {
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
    }
}
