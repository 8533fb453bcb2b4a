package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

/**
 * The time embedding of every step of a sampler's fixed schedule (spec §1.2.2): e = time_embedding(sinusoid(t_k)) and
 * e0 = time_projection(SiLU(e)), F32. The first forward at step k computes them as the forward always does (batch 1,
 * the same ops) and keeps them here; every later forward at step k (CFG's uncond pass), and the other rows of a
 * batch-2 CFG forward, copy them back instead of running the three Linears again. The kept values are the computed
 * ones, so predictions are identical, bit for bit.
 * Size: {@link #bytes}.
 */
public final class TimeEmbeddings implements AutoCloseable {

    private final float[] timesteps;
    private final Backend backend;
    /** (steps, C) F32 and (steps, 6, C) F32: e and e0 of each step. */
    private final Tensor e, e0;
    /** (1) F32: t_k for the step being computed. */
    private final Tensor timestep;
    private final boolean[] computed;
    private final int dim;

    TimeEmbeddings(Backend backend, WanDitConfig config, float[] timesteps) {
        this.backend = backend;
        this.timesteps = timesteps.clone();
        this.dim = config.dim();
        this.computed = new boolean[timesteps.length];
        this.e = backend.allocate(DType.F32, Shape.of(timesteps.length, dim));
        this.e0 = backend.allocate(DType.F32, Shape.of(timesteps.length, 6, dim));
        this.timestep = backend.allocate(DType.F32, Shape.of(1));
    }

    /** Device bytes for {@code steps} steps: 7 · C · 4 per step, plus the timestep (14B, 20 steps: 2.7 MiB). */
    public static long bytes(WanDitConfig config, int steps) {
        return (7L * config.dim() * steps + 1) * Float.BYTES;
    }

    public int steps() { return timesteps.length; }

    boolean isComputed(int step) { return computed[step]; }

    /** (1) F32 holding t_{step}, written now (the input of the step's first time embedding). */
    Tensor timestep(int step) {
        backend.write(timestep, new float[] {timesteps[step]});
        return timestep;
    }

    /** Keeps the step's computed e (1, C) and e0 (1, 6, C). */
    void keep(int step, Tensor stepE, Tensor stepE0) {
        backend.copy(e.view((long) step * dim, Shape.of(1, dim)), stepE);
        backend.copy(e0.view(6L * step * dim, Shape.of(1, 6, dim)), stepE0);
        computed[step] = true;
    }

    /** Copies the kept e and e0 of {@code step} into a forward's buffers. */
    void restore(int step, Tensor stepE, Tensor stepE0) {
        backend.copy(stepE, e.view((long) step * dim, Shape.of(1, dim)));
        backend.copy(stepE0, e0.view(6L * step * dim, Shape.of(1, 6, dim)));
    }

    @Override
    public void close() {
        e.close();
        e0.close();
        timestep.close();
    }
}
