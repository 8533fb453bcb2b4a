package dev.wanlora.pipeline.train;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.flow.TimestepSampling;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDit;

import java.util.Arrays;

/**
 * musubi's rectified-flow objective in one place (spec §4, §5.3): draw t, noise the latents, x_t = (1 − t)·x0 + t·noise,
 * the target noise − x0, the mean squared error of the DiT's prediction against the target, and the seed of its
 * gradient, d loss / d pred = 2·(pred − target)/n, from which the DiT's backward yields the LoRA gradients (or, for
 * validation, the loss at a fixed t without gradients).
 *
 * <p>The ops stay where they are computed: the t samplers in {@code engine/flow}, the noise, x_t and MSE ops on the
 * {@link Backend} ({@code gaussianNoise}, {@code flowMatchingInput}, {@code mseLoss}) over {@link BatchTensors}'
 * buffers, the forward and backward in {@link WanDit}. This class orders them, so training, the benchmark and
 * validation run the same objective.
 */
public final class FlowMatchingObjective {
    private final TimestepSampler sampler;

    /** {@code sampler}: draws the training t (its generator state is the run's to save). */
    public FlowMatchingObjective(TimestepSampler sampler) {
        this.sampler = sampler;
    }

    public TimestepSampler sampler() { return sampler; }

    /**
     * A batch's training inputs: t for each item from the sampler, noise at (seed, batchIndex), x_t and the target in
     * {@code b}'s buffers. Returns the drawn t (for the log's mean t).
     */
    public TimestepSampler.Batch prepare(BatchTensors b, long seed, long batchIndex) {
        TimestepSampler.Batch ts = sampler.sample(b.batchSize());
        b.timesteps(ts.t(), ts.modelTimestep());
        b.prepare(seed, batchIndex);
        return ts;
    }

    /**
     * The DiT's loss on {@code b}'s prepared x_t and target into {@code loss} (1) F32 on the device, and the LoRA
     * gradients (+= gradScale·d loss): forward, the MSE with its gradient seeded into the DiT's prediction gradient
     * (musubi: {@code loss = F.mse_loss(model_pred, target)}), backward.
     */
    public static void lossAndGradients(Backend backend, WanDit dit, LoraNetwork lora, BatchTensors b, float gradScale,
                                        Tensor loss) {
        Tensor pred = dit.trainingForward(b.xt, b.timesteps, b.contexts(), lora);
        backend.mseLoss(loss, dit.predictionGradient(), pred, b.target, gradScale);
        dit.backward(lora);
    }

    /**
     * A validation batch at the fixed level {@code t} for every item (the model timestep in the training sampler's
     * convention: 1000·t, plus 1 outside sigma mode), noise at (seed, index), x_t and the target in {@code b}.
     */
    public static void prepareAt(BatchTensors b, float t, TimestepSampling mode, long seed, long index) {
        float[] ts = new float[b.batchSize()];
        float[] model = new float[b.batchSize()];
        Arrays.fill(ts, t);
        Arrays.fill(model, mode == TimestepSampling.SIGMA ? t * 1000f : t * 1000f + 1f);
        b.timesteps(ts, model);
        b.prepare(seed, index);
    }

    /**
     * The mean squared error of the DiT's prediction on {@code b}'s prepared x_t against its target, no gradient;
     * summed in double on the host.
     */
    public static double meanSquaredError(Backend backend, WanDit dit, LoraNetwork lora, BatchTensors b) {
        float[] pred = backend.toFloats(dit.forward(b.xt, b.timesteps, b.contexts(), lora));
        float[] target = backend.toFloats(b.target);
        double se = 0;
        for (int i = 0; i < pred.length; i++) {
            double d = (double) pred[i] - target[i];
            se += d * d;
        }
        return se / pred.length;
    }
}
