package dev.wanlora.models.sampling;

import java.util.stream.IntStream;

/**
 * musubi's {@code FlowUniPCMultistepScheduler} as Wan's training-time sampler builds it (spec §10.4): shift 1 at
 * construction, then {@code set_timesteps(N, shift=fs)}; order 2, bh2, flow prediction with predict_x0,
 * lower_order_final, final sigma 0, no thresholding.
 *
 * <p>Step k: m_k = x_k − σ_k·v_k (x0 prediction); for k ≥ 1 the corrector (UniC, order p_{k−1}) replaces x_k by
 * x_k^c, moving x_{k−1}^c from σ_{k−1} to σ_k with m_{k−2}, m_{k−1}, m_k; then the predictor (UniP, order
 * p_k = min(2, N − k, k + 1)) moves x_k^c from σ_k to σ_{k+1} with m_{k−1}, m_k. The last step (σ_N = 0) returns m_{N−1}
 * exactly. Source: <a href="https://github.com/kohya-ss/musubi-tuner/blob/30c658c4f4b0bf05038b3346eff9670259b10fc7/src/musubi_tuner/wan/utils/fm_solvers_unipc.py">fm_solvers_unipc.py</a>.
 *
 * <p>Every elementwise loop runs in parallel chunks ({@link #forEachChunk}): an element's arithmetic reads only that
 * element of each array and the step's scalars, so the result is the sequential loop's, bit for bit (the 14B sample's
 * latent has 442 k elements; one sequential step took 27 ms of a 0.8 s sampling step on the GPU machine).
 */
public final class UniPcFlowSolver implements FlowSolver {

    /** Elements per parallel task: large enough that a task outweighs its scheduling. */
    static final int CHUNK = 1 << 16;

    /** num_train_timesteps of the scheduler. */
    private static final int TRAIN_TIMESTEPS = 1000;
    /** σ_max = float32(0.999): the first entry of the constructor's float32 table 1 − linspace(1, 1/1000, 1000), reversed. */
    private static final double SIGMA_MAX = (float) 0.999;

    private final int steps;
    private final SolverPrecision precision;
    /** Model timesteps t_k = int(1000·σ_k), k = 0…N−1. */
    private final long[] timesteps;
    /** S_k, k = 0…N: float32 values of σ_k, S_N = 0. */
    private final float[] sigmas;
    /** α_k = 1 − S_k and λ_k = ln α_k − ln S_k (λ_N = +∞), in the solver's precision. */
    private final double[] alpha, lambda;

    private int stepIndex;
    /** m_{k−1}, m_{k−2} (null until seen). */
    private double[] m1, m2;
    /** x_{k−1}^c: the sample the previous predictor started from. */
    private double[] lastSample;
    /** p_{k−1}: the previous predictor's order. */
    private int lastOrder;
    /** Of the latest step, for tests: m_k, x_k^c, p_k and the corrector order (0: none). */
    private double[] lastX0, lastCorrected;
    private int lastCorrectorOrder;

    /**
     * @throws IllegalArgumentException for steps outside 1…1000, a shift ≤ 0, or a schedule musubi cannot run (two
     *                                  equal first timesteps, spec §10.4's quirk)
     */
    public UniPcFlowSolver(int steps, double shift, SolverPrecision precision) {
        if (steps < 1 || steps > TRAIN_TIMESTEPS) {
            throw new IllegalArgumentException("UniPC: steps must be 1…1000; got " + steps);
        }
        if (!(shift > 0) || !Double.isFinite(shift)) {
            throw new IllegalArgumentException("UniPC: flow shift must be a positive number; got " + shift);
        }
        this.steps = steps;
        this.precision = precision;
        this.timesteps = new long[steps];
        this.sigmas = new float[steps + 1];
        for (int i = 0; i < steps; i++) {
            double u = SIGMA_MAX * (1 - (double) i / steps); // np.linspace(σ_max, 0, N + 1)[i]
            double sigma = shift * u / (1 + (shift - 1) * u);
            timesteps[i] = (long) (TRAIN_TIMESTEPS * sigma);
            sigmas[i] = (float) sigma;
        }
        if (steps > 1 && timesteps[1] == timesteps[0]) {
            throw new IllegalArgumentException("UniPC: " + steps + " steps at flow shift " + shift + " give two equal"
                    + " first timesteps (" + timesteps[0] + "), which musubi's scheduler cannot sample (it fails at the"
                    + " last step); use fewer steps or a smaller shift");
        }
        this.alpha = new double[steps + 1];
        this.lambda = new double[steps + 1];
        for (int i = 0; i <= steps; i++) {
            double s = sigmas[i];
            alpha[i] = precision.round(1 - s);
            lambda[i] = precision.round(precision.round(Math.log(alpha[i])) - precision.round(Math.log(s)));
        }
    }

    @Override public int steps() { return steps; }

    @Override public float modelTimestep(int k) { return timesteps[k]; }

    /** The integer model timestep t_k. */
    public long timestep(int k) { return timesteps[k]; }

    @Override public double sigma(int k) { return sigmas[k]; }

    @Override public int stepIndex() { return stepIndex; }

    @Override
    public float[] step(float[] modelOutput, float[] sample) {
        int k = stepIndex;
        if (k >= steps) throw new IllegalStateException("UniPC: all " + steps + " steps are done");
        if (modelOutput.length != sample.length || (m1 != null && sample.length != m1.length)) {
            throw new IllegalArgumentException("UniPC: model output and sample must have one length per run; got "
                    + modelOutput.length + " and " + sample.length);
        }
        SolverPrecision p = precision;
        // x0 prediction from the uncorrected sample the model saw: m_k = x_k − S_k·v_k
        double sk = sigmas[k];
        double[] xk = new double[sample.length], m = new double[sample.length];
        forEachChunk(xk.length, (from, to) -> {
            for (int i = from; i < to; i++) {
                xk[i] = sample[i];
                m[i] = p.round(xk[i] - p.round(sk * modelOutput[i]));
            }
        });
        double[] x = xk;
        lastCorrectorOrder = 0;
        if (k > 0) {
            x = correct(k, lastOrder, m);
            lastCorrectorOrder = lastOrder;
        }
        m2 = m1;
        m1 = m;
        int order = Math.min(2, Math.min(steps - k, k + 1));
        lastSample = x;
        lastOrder = order;
        lastX0 = m;
        lastCorrected = x;
        double[] next = predict(k, order, x);
        stepIndex++;
        float[] out = new float[next.length];
        forEachChunk(out.length, (from, to) -> {
            for (int i = from; i < to; i++) out[i] = (float) next[i];
        });
        return out;
    }

    /** UniP from index k (sample xc = x_k^c, m_k = m1, m_{k−1} = m2) to k + 1. */
    private double[] predict(int k, int order, double[] xc) {
        SolverPrecision p = precision;
        int t = k + 1;
        double h = p.round(lambda[t] - lambda[k]);
        double hh = -h;
        double phi = p.round(Math.expm1(hh)); // = B (bh2)
        double[] out = base(xc, m1, k, t, phi);
        if (order == 2) {
            double r = p.round(p.round(lambda[k - 1] - lambda[k]) / h);
            double coef = p.round(alpha[t] * phi);
            double[] mPrev = m2, mLast = m1;
            forEachChunk(out.length, (from, to) -> {
                for (int i = from; i < to; i++) {
                    double d = p.round(p.round(mPrev[i] - mLast[i]) / r);
                    out[i] = p.round(out[i] - p.round(coef * p.round(0.5 * d)));
                }
            });
        }
        return out;
    }

    /** UniC at step k, of order {@code order}: x_k^c from x_{k−1}^c (lastSample), m_{k−2} (m2), m_{k−1} (m1), m_k. */
    private double[] correct(int k, int order, double[] mk) {
        SolverPrecision p = precision;
        int s = k - 1;
        double h = p.round(lambda[k] - lambda[s]);
        double hh = -h;
        double phi = p.round(Math.expm1(hh)); // = B (bh2)
        double[] out = base(lastSample, m1, s, k, phi);
        double coef = p.round(alpha[k] * phi);
        double[] mPrev = m2, mLast = m1;
        if (order == 1) {
            forEachChunk(out.length, (from, to) -> {
                for (int i = from; i < to; i++) {
                    double dt = p.round(mk[i] - mLast[i]);
                    out[i] = p.round(out[i] - p.round(coef * p.round(0.5 * dt)));
                }
            });
            return out;
        }
        double r = p.round(p.round(lambda[k - 2] - lambda[s]) / h);
        // b_1 = (φ/hh − 1)/B, b_2 = 2·((φ/hh − 1)/hh − 1/2)/B; solve [[1, 1], [r, 1]]·ρ = b
        double hPhi1 = p.round(p.round(phi / hh) - 1);
        double b1 = p.round(hPhi1 / phi);
        double hPhi2 = p.round(p.round(hPhi1 / hh) - 0.5);
        double b2 = p.round(p.round(hPhi2 * 2) / phi);
        double det = 1 - r;
        double rho0 = p.round((b1 - b2) / det);
        double rho1 = p.round((b2 - r * b1) / det);
        forEachChunk(out.length, (from, to) -> {
            for (int i = from; i < to; i++) {
                double d = p.round(p.round(mPrev[i] - mLast[i]) / r);
                double dt = p.round(mk[i] - mLast[i]);
                double res = p.round(p.round(rho0 * d) + p.round(rho1 * dt));
                out[i] = p.round(out[i] - p.round(coef * res));
            }
        });
        return out;
    }

    /** x̃ = (S_t/S_s)·x_s − (α_t·φ)·m_s, scalar factors formed first (σ_t/σ_s is 0 at the final σ = 0). */
    private double[] base(double[] xs, double[] ms, int s, int t, double phi) {
        SolverPrecision p = precision;
        double ratio = p.round((double) sigmas[t] / sigmas[s]);
        double coef = p.round(alpha[t] * phi);
        double[] out = new double[xs.length];
        forEachChunk(out.length, (from, to) -> {
            for (int i = from; i < to; i++) out[i] = p.round(p.round(ratio * xs[i]) - p.round(coef * ms[i]));
        });
        return out;
    }

    /** A loop body over elements [from, to). */
    interface Chunk {
        void run(int from, int to);
    }

    /** Runs {@code body} over [0, n) in chunks of {@link #CHUNK} elements, in parallel (one task when n ≤ CHUNK). */
    static void forEachChunk(int n, Chunk body) {
        int chunks = (n + CHUNK - 1) / CHUNK;
        if (chunks <= 1) {
            body.run(0, n);
            return;
        }
        IntStream.range(0, chunks).parallel().forEach(c -> body.run(c * CHUNK, Math.min(n, (c + 1) * CHUNK)));
    }

    /** m_k of the latest step (tests). */
    double[] lastX0Prediction() { return lastX0; }

    /** x_k^c of the latest step: the sample its predictor started from (tests). */
    double[] lastCorrectedSample() { return lastCorrected; }

    /** p_k of the latest step (tests). */
    int lastPredictorOrder() { return lastOrder; }

    /** The corrector's order at the latest step, 0 when none ran (tests). */
    int lastCorrectorOrder() { return lastCorrectorOrder; }
}
