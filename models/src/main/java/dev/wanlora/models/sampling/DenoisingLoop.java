package dev.wanlora.models.sampling;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.CrossAttentionContext;
import dev.wanlora.models.wan.TimeEmbeddings;
import dev.wanlora.models.wan.WanDit;

import java.util.Arrays;
import java.util.List;

/**
 * The CFG denoising loop of musubi's training-time sampler (spec §10.5), one sample:
 * <pre>
 * for k = 0 … N−1:
 *     cond   = DiT([x_k], t_k, [context_cond])                  forward-only, LoRA applied unmerged
 *     uncond = DiT([x_k], t_k, [context_uncond])                skipped when cfg = 1.0
 *     v_k    = uncond + cfg·(cond − uncond)                     float32, on the host
 *     x_{k+1} = solver.step(v_k, x_k)                           float32 or float64, on the host
 * </pre>
 * Like musubi, the guidance combine and the solver run in float32 on the CPU side: the latent is small (16·F·H·W), the
 * DiT forwards dominate. musubi runs cond and uncond as two batch-1 forwards ({@link CfgMode#TWO_BATCH_1}); with
 * {@link CfgMode#BATCH_2} both are one batch-2 forward on [x_k, x_k] with [context_cond, context_uncond] (both texts
 * are zero-padded to K = 512 rows by the text embedding and attended without a mask, so the rows line up), which reads
 * (and for fp8 dequantizes, for streamed blocks uploads) each block's weights once per step instead of twice and runs
 * half the ops on twice the rows. Each row is computed as its batch-1 forward is ({@link WanDit#forwardOnly(Tensor,
 * TimeEmbeddings, int, CrossAttentionContext, dev.wanlora.models.wan.BlockAdapters)}): on the CPU reference the
 * latents are those of {@link CfgMode#TWO_BATCH_1} bit for bit; a GPU may pick other GEMM kernels for twice the rows
 * (bf16 rounding noise). What does not change from step to step is computed once ({@link WanDit#forwardOnly(Tensor, TimeEmbeddings, int, CrossAttentionContext,
 * dev.wanlora.models.wan.BlockAdapters)}): each step's time embedding serves both passes, and with
 * {@code cachesCrossAttention} each context's text embedding and per-block cross-attention k and v serve every step.
 */
public final class DenoisingLoop {

    /**
     * How a CFG step runs its two passes: one batch-2 forward (cond row 0, uncond row 1) when the memory plan has room
     * for batch-2 activations, else two batch-1 forwards, cond first (musubi's way). Without CFG (scale 1.0) either is
     * one batch-1 forward.
     */
    public enum CfgMode {
        BATCH_2("cond and uncond in one batch-2 forward"),
        TWO_BATCH_1("cond and uncond as two batch-1 forwards");

        private final String description;

        CfgMode(String description) { this.description = description; }

        /** E.g. "cond and uncond in one batch-2 forward", for the sampling log. */
        public String describe() { return description; }
    }

    /** One sample's settings: steps, flow shift, CFG scale (1.0: no uncond pass) and solver. */
    public record Settings(int steps, double shift, double cfg, FlowSolver.Kind solver) {
        public Settings {
            if (!Double.isFinite(cfg)) throw new IllegalArgumentException("CFG scale must be finite; got " + cfg);
        }

        /** Whether the negative prompt's pass runs (musubi: CFG is on unless the scale is exactly 1.0). */
        public boolean usesUncond() { return cfg != 1.0; }
    }

    /** Sees every step (progress bars, tests); arrays are the loop's own, read them before returning. */
    public interface StepListener {
        /**
         * After step k: {@code cond}, {@code uncond} (null without CFG) and {@code v} the model outputs, {@code next}
         * = x_{k+1}; {@code seconds} the step's wall time.
         */
        void afterStep(int k, int steps, float[] cond, float[] uncond, float[] v, float[] next, double seconds);

        StepListener NONE = (k, n, c, u, v, x, s) -> { };
    }

    private final Backend backend;
    private final WanDit dit;
    private final boolean cachesCrossAttention;
    private final CfgMode cfgMode;
    /** Seconds since construction in the DiT forwards (with the prediction's copy to the host) and in the solver. */
    private double ditSeconds, solverSeconds;

    /**
     * {@code cachesCrossAttention}: keep each block's cross-attention k and v of the prompt and the negative prompt for
     * the whole loop ({@link CrossAttentionContext#cacheBytes} each; the memory plan decides) instead of recomputing
     * them at every step. The time embedding of each step is always computed once for both passes. Either way the
     * latents are those of plain per-step forwards, bit for bit. {@code cfgMode}: see {@link CfgMode} (the memory plan
     * counts {@link CfgMode#BATCH_2}'s activations at batch 2).
     */
    public DenoisingLoop(Backend backend, WanDit dit, boolean cachesCrossAttention, CfgMode cfgMode) {
        this.backend = backend;
        this.dit = dit;
        this.cachesCrossAttention = cachesCrossAttention;
        this.cfgMode = cfgMode;
    }

    /** With CFG as one batch-2 forward, for callers without a memory budget (benchmarks on a large GPU). */
    public DenoisingLoop(Backend backend, WanDit dit, boolean cachesCrossAttention) {
        this(backend, dit, cachesCrossAttention, CfgMode.BATCH_2);
    }

    /**
     * Seconds spent in the DiT forwards over every {@link #run}: each step until both predictions are on the host and
     * combined (the copies and the combine are small beside the forwards).
     */
    public double ditSeconds() { return ditSeconds; }

    /** Seconds spent in the solver's steps on the host over every {@link #run}. */
    public double solverSeconds() { return solverSeconds; }

    /**
     * Denoises {@code noise} (the initial latent x_0, flat (16, F, H, W)) and returns x_N.
     *
     * @param latentShape    (Cout, F, H, W) of the latent
     * @param contextCond    (L_c, Ct) the prompt's text embedding on the backend (F32 or BF16)
     * @param contextUncond  (L_u, Ct) the negative prompt's; may be null when {@code settings.usesUncond()} is false
     * @param lora           the LoRA to apply (unmerged), or null
     */
    public float[] run(float[] noise, Shape latentShape, Tensor contextCond, Tensor contextUncond, LoraNetwork lora,
                       Settings settings, SolverPrecision precision, StepListener listener) {
        if (latentShape.rank() != 4 || latentShape.numElements() != noise.length) {
            throw new IllegalArgumentException("DenoisingLoop: latent shape must be (C, F, H, W) with "
                    + noise.length + " elements; got " + latentShape);
        }
        if (settings.usesUncond() && contextUncond == null) {
            throw new IllegalArgumentException("DenoisingLoop: CFG " + settings.cfg() + " needs a negative-prompt context");
        }
        FlowSolver solver = FlowSolver.create(settings.solver(), settings.steps(), settings.shift(), precision);
        long[] d = latentShape.dims();
        float cfg = (float) settings.cfg();
        float[] timesteps = new float[solver.steps()];
        for (int k = 0; k < timesteps.length; k++) timesteps[k] = solver.modelTimestep(k);
        if (settings.usesUncond() && cfgMode == CfgMode.BATCH_2) {
            return runBatch2(noise, d, timesteps, contextCond, contextUncond, lora, solver, cfg, listener);
        }
        try (Tensor x = backend.allocate(DType.F32, Shape.of(1, d[0], d[1], d[2], d[3]));
             TimeEmbeddings time = dit.timeEmbeddings(timesteps);
             CrossAttentionContext cond = dit.crossAttentionContext(contextCond, lora, cachesCrossAttention);
             CrossAttentionContext uncond = settings.usesUncond()
                     ? dit.crossAttentionContext(contextUncond, lora, cachesCrossAttention) : null) {
            float[] sample = noise.clone();
            for (int k = 0; k < solver.steps(); k++) {
                long start = System.nanoTime();
                backend.write(x, sample);
                float[] condPred = backend.toFloats(dit.forwardOnly(x, time, k, cond, lora));
                float[] uncondPred = null;
                float[] v = condPred;
                if (uncond != null) {
                    uncondPred = backend.toFloats(dit.forwardOnly(x, time, k, uncond, lora));
                    v = guide(condPred, uncondPred, cfg);
                }
                sample = solve(solver, k, start, v, sample, condPred, uncondPred, listener);
            }
            return sample;
        }
    }

    /** {@link CfgMode#BATCH_2}: x = [x_k, x_k] with [cond, uncond]; prediction row 0 is cond's, row 1 uncond's. */
    private float[] runBatch2(float[] noise, long[] d, float[] timesteps, Tensor contextCond, Tensor contextUncond,
                              LoraNetwork lora, FlowSolver solver, float cfg, StepListener listener) {
        int n = noise.length;
        try (Tensor x = backend.allocate(DType.F32, Shape.of(2, d[0], d[1], d[2], d[3]));
             TimeEmbeddings time = dit.timeEmbeddings(timesteps);
             CrossAttentionContext both = dit.crossAttentionContext(List.of(contextCond, contextUncond), lora,
                     cachesCrossAttention)) {
            Shape row = Shape.of(1, d[0], d[1], d[2], d[3]);
            Tensor condRow = x.view(0, row), uncondRow = x.view(n, row);
            float[] sample = noise.clone();
            for (int k = 0; k < solver.steps(); k++) {
                long start = System.nanoTime();
                backend.write(condRow, sample); // one upload; the second row is a device copy of it
                backend.copy(uncondRow, condRow);
                float[] pred = backend.toFloats(dit.forwardOnly(x, time, k, both, lora));
                float[] condPred = Arrays.copyOfRange(pred, 0, n), uncondPred = Arrays.copyOfRange(pred, n, 2 * n);
                sample = solve(solver, k, start, guide(condPred, uncondPred, cfg), sample, condPred, uncondPred, listener);
            }
            return sample;
        }
    }

    /** v = uncond + cfg·(cond − uncond), float32 (musubi's order); elementwise, in the solver's parallel chunks. */
    private static float[] guide(float[] cond, float[] uncond, float cfg) {
        float[] v = new float[cond.length];
        UniPcFlowSolver.forEachChunk(v.length, (from, to) -> {
            for (int i = from; i < to; i++) v[i] = uncond[i] + cfg * (cond[i] - uncond[i]);
        });
        return v;
    }

    /** Step k of the solver from v; times the step (from {@code start}), tells the listener, returns x_{k+1}. */
    private float[] solve(FlowSolver solver, int k, long start, float[] v, float[] sample, float[] condPred,
                          float[] uncondPred, StepListener listener) {
        long solverStart = System.nanoTime();
        float[] next = solver.step(v, sample);
        long end = System.nanoTime();
        listener.afterStep(k, solver.steps(), condPred, uncondPred, v, next, (end - start) / 1e9);
        ditSeconds += (solverStart - start) / 1e9;
        solverSeconds += (end - solverStart) / 1e9;
        return next;
    }
}
