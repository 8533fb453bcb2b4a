package dev.wanlora.models.sampling;

import java.util.Locale;

/**
 * A flow-matching ODE solver over a fixed schedule of N steps: {@link #modelTimestep(int)} is what the DiT sees at
 * step k, {@link #step} moves the sample from index k to k + 1 given the (CFG-combined) model output v_k ≈ noise − x0.
 * Samples are flat float32 arrays of one latent (16·F·H·W); a solver is stateful (multistep history) and used for one
 * sample: make a new one per sample, as musubi does.
 */
public sealed interface FlowSolver permits UniPcFlowSolver, EulerFlowSolver {

    /** {@code --sample_solver}: unipc (musubi's training-time sampler, the default) or euler (plain flow matching). */
    enum Kind {
        UNIPC, EULER;

        public String cliName() { return name().toLowerCase(Locale.ROOT); }

        /** The kind named {@code name} (case-insensitive), or an IllegalArgumentException naming the choices. */
        public static Kind parse(String name) {
            for (Kind k : values()) if (k.cliName().equalsIgnoreCase(name.strip())) return k;
            throw new IllegalArgumentException("--sample_solver " + name + ": unknown solver; expected unipc or euler");
        }
    }

    /** A new solver of {@code kind} for {@code steps} steps at flow shift {@code shift}. */
    static FlowSolver create(Kind kind, int steps, double shift, SolverPrecision precision) {
        return switch (kind) {
            case UNIPC -> new UniPcFlowSolver(steps, shift, precision);
            case EULER -> new EulerFlowSolver(steps, shift, precision);
        };
    }

    /** N. */
    int steps();

    /** The timestep the DiT is given at step k (UniPC: an integer, Euler: 1000·σ_k), k = 0…N−1. */
    float modelTimestep(int k);

    /** σ_k, k = 0…N (σ_N = 0), as the solver uses it. */
    double sigma(int k);

    /** The step the next {@link #step} call performs (0 … N−1; N when done). */
    int stepIndex();

    /**
     * Step k = {@link #stepIndex()}: returns x_{k+1} (a new array) from the current sample x_k (the one the model saw)
     * and the model output v_k. Neither input is modified.
     */
    float[] step(float[] modelOutput, float[] sample);
}
