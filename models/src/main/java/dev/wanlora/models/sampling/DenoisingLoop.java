package dev.wanlora.models.sampling;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDit;

import java.util.List;

/**
 * The CFG denoising loop of musubi's training-time sampler (spec §10.5), one sample (batch 1):
 * <pre>
 * for k = 0 … N−1:
 *     cond   = DiT([x_k], t_k, [context_cond])                  forward-only, LoRA applied unmerged
 *     uncond = DiT([x_k], t_k, [context_uncond])                skipped when cfg = 1.0
 *     v_k    = uncond + cfg·(cond − uncond)                     float32, on the host
 *     x_{k+1} = solver.step(v_k, x_k)                           float32 or float64, on the host
 * </pre>
 * Like musubi, the guidance combine and the solver run in float32 on the CPU side: the latent is small (16·F·H·W), the
 * DiT forwards dominate. Two separate batch-1 forwards, cond first, as musubi runs them.
 */
public final class DenoisingLoop {

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

    public DenoisingLoop(Backend backend, WanDit dit) {
        this.backend = backend;
        this.dit = dit;
    }

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
        try (Tensor x = backend.allocate(DType.F32, Shape.of(1, d[0], d[1], d[2], d[3]));
             Tensor t = backend.allocate(DType.F32, Shape.of(1))) {
            float[] sample = noise.clone();
            for (int k = 0; k < solver.steps(); k++) {
                long start = System.nanoTime();
                backend.write(x, sample);
                backend.write(t, new float[] {solver.modelTimestep(k)});
                float[] cond = backend.toFloats(dit.forwardOnly(x, t, List.of(contextCond), lora));
                float[] uncond = null;
                float[] v = cond;
                if (settings.usesUncond()) {
                    uncond = backend.toFloats(dit.forwardOnly(x, t, List.of(contextUncond), lora));
                    v = new float[cond.length];
                    for (int i = 0; i < v.length; i++) v[i] = uncond[i] + cfg * (cond[i] - uncond[i]);
                }
                float[] next = solver.step(v, sample);
                listener.afterStep(k, solver.steps(), cond, uncond, v, next, (System.nanoTime() - start) / 1e9);
                sample = next;
            }
            return sample;
        }
    }
}
