package dev.wanlora.pipeline.train;

import java.util.ArrayList;
import java.util.List;

/**
 * musubi's {@code LossRecorder} (utils/train_utils.py): the average shown as "avr_loss" is the mean of the latest loss
 * at each batch position of an epoch: during the first epoch, of every batch so far; afterwards, each batch replaces
 * the loss recorded at its position in the previous epoch, so the window is one epoch long.
 */
public final class LossRecorder {
    private final List<Double> losses;
    private double total;

    public LossRecorder() {
        this(List.of());
    }

    /** A recorder holding {@code losses}, one per batch position (as {@link #losses()} returned them). */
    public LossRecorder(List<Double> losses) {
        this.losses = new ArrayList<>(losses);
        for (double l : losses) total += l;
    }

    /** Records the loss of the batch at 0-based {@code position} in its epoch. */
    public void add(int position, double loss) {
        while (losses.size() <= position) losses.add(0.0);
        total += loss - losses.get(position);
        losses.set(position, loss);
    }

    /** The moving average; NaN before the first loss. */
    public double average() {
        return losses.isEmpty() ? Double.NaN : total / losses.size();
    }

    /** The recorded losses by position, for a state folder. */
    public List<Double> losses() {
        return List.copyOf(losses);
    }
}
