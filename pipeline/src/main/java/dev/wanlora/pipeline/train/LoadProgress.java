package dev.wanlora.pipeline.train;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;

import java.io.PrintWriter;
import java.util.Locale;
import java.util.function.LongConsumer;

/**
 * Progress of reading a large file (the DiT checkpoint): on a terminal a live bar with bytes, speed and time left
 * (me.tongfei progressbar, in GiB); otherwise one plain line at most every {@link #LINE_INTERVAL_NANOS} so a log shows
 * that loading moves. Either way it ends with one summary line: {@code loaded 26.6 GiB in 21.0 s (1.36 GB/s)}. Speeds
 * are decimal GB/s (10⁹ bytes, as disks are rated) and sizes binary GiB (as the memory plan prints them).
 */
public final class LoadProgress implements LongConsumer, AutoCloseable {
    private static final long LINE_INTERVAL_NANOS = 5_000_000_000L;
    private static final double GIB = 1L << 30;

    private final PrintWriter out;
    private final String what;
    private final long totalBytes;
    private final ProgressBar bar;
    private final long startNanos = System.nanoTime();
    private long doneBytes;
    private long lastLineNanos = startNanos;

    private LoadProgress(PrintWriter out, String what, long totalBytes, ProgressBar bar) {
        this.out = out;
        this.what = what;
        this.totalBytes = totalBytes;
        this.bar = bar;
    }

    /** Starts timing the load of {@code totalBytes} ({@code what}: "model.safetensors"); a bar when {@code useBar}. */
    public static LoadProgress start(PrintWriter out, boolean useBar, String what, long totalBytes) {
        ProgressBar bar = null;
        if (useBar) {
            out.flush();
            bar = new ProgressBarBuilder().setTaskName("load").setInitialMax(totalBytes).setUnit(" GiB", 1L << 30)
                    .showSpeed(new java.text.DecimalFormat("0.00")).setUpdateIntervalMillis(250).setMaxRenderedLength(100)
                    .setConsumer(new ConsoleProgressBarConsumer(System.out)).build();
        }
        return new LoadProgress(out, what, totalBytes, bar);
    }

    /** Bytes read so far grow by {@code bytes}. */
    @Override
    public void accept(long bytes) {
        doneBytes += bytes;
        if (bar != null) {
            bar.stepTo(doneBytes);
            return;
        }
        long now = System.nanoTime();
        if (now - lastLineNanos >= LINE_INTERVAL_NANOS && doneBytes < totalBytes) {
            lastLineNanos = now;
            double seconds = (now - startNanos) / 1e9;
            double rate = doneBytes / seconds;
            out.printf(Locale.ROOT, "loading %s: %.1f of %.1f GiB (%.2f GB/s, eta %.0f s)%n", what, doneBytes / GIB,
                    totalBytes / GIB, rate / 1e9, (totalBytes - doneBytes) / rate);
            out.flush();
        }
    }

    /** Ends the bar and prints the summary line. */
    @Override
    public void close() {
        if (bar != null) bar.close();
        out.println(summary(what, doneBytes, (System.nanoTime() - startNanos) / 1e9));
        out.flush();
    }

    /** "loaded 26.6 GiB in 21.0 s (1.36 GB/s)" (with the file's name first when what is not empty). */
    public static String summary(String what, long bytes, double seconds) {
        String size = bytes >= GIB / 10 ? String.format(Locale.ROOT, "%.1f GiB", bytes / GIB)
                : String.format(Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
        return String.format(Locale.ROOT, "loaded %s%s in %.1f s (%.2f GB/s)", what.isEmpty() ? "" : what + ", ", size,
                seconds, seconds > 0 ? bytes / seconds / 1e9 : 0);
    }
}
