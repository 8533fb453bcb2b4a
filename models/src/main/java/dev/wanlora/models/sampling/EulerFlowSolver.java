package dev.wanlora.models.sampling;

/**
 * The plain flow-matching Euler solver (musubi's {@code FlowMatchDiscreteScheduler}, {@code wan_generate_video.py
 * --sample_solver vanilla}; spec §10.4 end): σ_k = shift·u_k/(1 + (shift − 1)·u_k) with u = linspace(1, 0, N + 1); the
 * model sees 1000·σ_k (not truncated); x_{k+1} = x_k + v_k·(σ_{k+1} − σ_k).
 *
 * <p>{@link SolverPrecision#FLOAT32} evaluates the schedule in float32 as torch does; its linspace may differ from
 * ours by one ulp (≤ 1.2e-7 relative, spec §10.4).
 */
public final class EulerFlowSolver implements FlowSolver {

    private final int steps;
    private final SolverPrecision precision;
    /** σ_k, k = 0…N, in the solver's precision. */
    private final double[] sigmas;
    private int stepIndex;

    public EulerFlowSolver(int steps, double shift, SolverPrecision precision) {
        if (steps < 1 || steps > 1000) throw new IllegalArgumentException("Euler: steps must be 1…1000; got " + steps);
        if (!(shift > 0) || !Double.isFinite(shift)) {
            throw new IllegalArgumentException("Euler: flow shift must be a positive number; got " + shift);
        }
        this.steps = steps;
        this.precision = precision;
        this.sigmas = new double[steps + 1];
        SolverPrecision p = precision;
        double fs = p.round(shift);
        for (int i = 0; i <= steps; i++) {
            double u = p.round(1 - (double) i / steps);
            sigmas[i] = p.round(p.round(fs * u) / p.round(1 + p.round(p.round(fs - 1) * u)));
        }
    }

    @Override public int steps() { return steps; }

    @Override public float modelTimestep(int k) { return (float) (1000 * sigmas[k]); }

    @Override public double sigma(int k) { return sigmas[k]; }

    @Override public int stepIndex() { return stepIndex; }

    @Override
    public float[] step(float[] modelOutput, float[] sample) {
        int k = stepIndex;
        if (k >= steps) throw new IllegalStateException("Euler: all " + steps + " steps are done");
        if (modelOutput.length != sample.length) {
            throw new IllegalArgumentException("Euler: model output and sample lengths differ: " + modelOutput.length
                    + " and " + sample.length);
        }
        SolverPrecision p = precision;
        double dt = p.round(sigmas[k + 1] - sigmas[k]);
        float[] out = new float[sample.length];
        for (int i = 0; i < out.length; i++) out[i] = (float) (sample[i] + p.round(modelOutput[i] * dt));
        stepIndex++;
        return out;
    }
}
