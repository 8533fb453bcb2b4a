package dev.wanlora.pipeline.train;

import java.util.Locale;

/**
 * {@code --checkpoint_attention auto|on|off} of {@code wanlora train} and {@code wanlora bench}: whether gradient
 * checkpointing keeps each block's self-attention output and log-sum-exp from the forward, so the backward's recompute
 * skips the self-attention call ({@code WanDit.savesAttentionOutputs}). Results are bit-identical either way; on costs
 * the memory plan's "saved attention outputs" and saves one attention forward per block per step.
 */
public enum CheckpointAttention {
    /** On when the memory plan with it fits the budget (--max_vram or the GPU's memory), else off. */
    AUTO,
    ON,
    OFF;

    /** Whether to save, given whether the plan with saved attention outputs fits the budget. */
    public boolean resolve(boolean fitsWithIt) {
        return this == ON || this == AUTO && fitsWithIt;
    }

    /** The flag value: auto, on or off. */
    @Override
    public String toString() { return name().toLowerCase(Locale.ROOT); }

    /**
     * Parses auto, on or off (any case).
     *
     * @throws IllegalArgumentException naming the value and the accepted ones
     */
    public static CheckpointAttention parse(String value) {
        for (CheckpointAttention c : values()) if (c.toString().equalsIgnoreCase(value.strip())) return c;
        throw new IllegalArgumentException("'" + value + "' is not auto, on or off (e.g. --checkpoint_attention auto)");
    }
}
