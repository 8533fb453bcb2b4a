package dev.wanlora.pipeline.train;

import dev.wanlora.pipeline.sample.SampleMedia;
import dev.wanlora.pipeline.tensorboard.EventWriter;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Locale;
import java.util.Map;

/**
 * The run's TensorBoard log, where musubi's accelerate tracker puts it:
 * {@code {logging_dir}/{log_prefix}{YYYYmmddHHMMSS}/{log_tracker_name or network_train}/events.out.tfevents.*}.
 *
 * <p>Tags: musubi's {@code loss/current}, {@code loss/average} (the moving average) and {@code loss/epoch}; then
 * {@code lr}, {@code s_per_it}, {@code vram_peak_gib} (GPU only), the loss by timestep bucket
 * {@code loss/timestep_000-099} … {@code loss/timestep_900-999} (the batch's mean 1000·t decides the bucket), and the
 * validation loss {@code val_loss/average} and {@code val_loss/t_0.10} … per fixed noise level; with samples, each
 * sample's first frame as an image {@code sample/{idx:02d}} and the phase's time {@code sampling/seconds}.
 */
final class TrainLog implements AutoCloseable {
    /** Width of a timestep bucket in model timesteps (1000·t): ten buckets over [0, 1000). */
    static final int TIMESTEP_BUCKET = 100;

    private final EventWriter writer;

    private TrainLog(EventWriter writer) {
        this.writer = writer;
    }

    /** A log under {@code loggingDir}, or a log that writes nothing when it is null. */
    static TrainLog open(Path loggingDir, String logPrefix, String trackerName) {
        if (loggingDir == null) return new TrainLog(null);
        String run = (logPrefix == null ? "" : logPrefix)
                + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMddHHmmss", Locale.ROOT));
        Path dir = loggingDir.resolve(run).resolve(trackerName == null ? "network_train" : trackerName);
        try {
            return new TrainLog(EventWriter.create(dir));
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot create the TensorBoard log (" + e.getMessage()
                    + "). hint: check --logging_dir", e);
        }
    }

    /** The event file, or null when logging is off. */
    Path file() {
        return writer == null ? null : writer.file();
    }

    void step(long step, double loss, double averageLoss, double learningRate, double secondsPerStep, double peakVramGiB,
              double meanT) {
        if (writer == null) return;
        writer.scalar("loss/current", step, (float) loss);
        writer.scalar("loss/average", step, (float) averageLoss);
        writer.scalar("lr", step, (float) learningRate);
        if (Double.isFinite(secondsPerStep)) writer.scalar("s_per_it", step, (float) secondsPerStep);
        if (!Double.isNaN(peakVramGiB)) writer.scalar("vram_peak_gib", step, (float) peakVramGiB);
        writer.scalar(timestepTag(meanT), step, (float) loss);
    }

    /** musubi logs the moving average at the end of each epoch with the epoch number as the step. */
    void epoch(int epoch, double averageLoss) {
        if (writer != null) writer.scalar("loss/epoch", epoch, (float) averageLoss);
    }

    void validation(long step, Map<Double, Double> lossByT, double average) {
        if (writer == null) return;
        writer.scalar("val_loss/average", step, (float) average);
        lossByT.forEach((t, l) -> writer.scalar(String.format(Locale.ROOT, "val_loss/t_%.2f", t), step, l.floatValue()));
    }

    /** A sample's first frame as an image summary (TensorBoard's Images tab, beside the loss curve). */
    void image(String tag, long step, SampleMedia media) {
        if (writer != null) writer.image(tag, step, media.width(), media.height(), media.png(0));
    }

    /** The wall time of a sampling phase (all prompts: denoising, decoding, writing). */
    void sampling(long step, double seconds) {
        if (writer != null) writer.scalar("sampling/seconds", step, (float) seconds);
    }

    /** --log_config: the effective configuration as a text summary. */
    void config(String toml) {
        if (writer != null) writer.text("config", 0, "```\n" + toml + "\n```");
    }

    /** "loss/timestep_700-799" for t = 0.75. */
    static String timestepTag(double t) {
        int low = Math.min(9, Math.max(0, (int) Math.floor(t * 1000 / TIMESTEP_BUCKET))) * TIMESTEP_BUCKET;
        return String.format(Locale.ROOT, "loss/timestep_%03d-%03d", low, low + TIMESTEP_BUCKET - 1);
    }

    @Override
    public void close() {
        if (writer != null) writer.close();
    }
}
