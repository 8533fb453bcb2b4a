package dev.wanlora.pipeline.train;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.optim.GradClip;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.optim.TrainableParameter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraModule;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitConfig;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The device work of one optimizer step of musubi's loop, shared by {@code wanlora train} and {@code wanlora bench} so
 * that the benchmark times exactly what training runs: per batch the noisy input, the DiT's loss and LoRA gradients;
 * then the global-norm clip, the optimizer update with the scheduled learning rate, and zeroed gradients.
 *
 * <p>Invariant (DESIGN.md §4): after a shape's first batch nothing here allocates device memory, and the host waits for
 * the device once per step, in {@link #clipAndRead}: each batch's loss is written on the device into a slot of a small
 * read-back buffer, and one copy brings those losses and the squared gradient norm back together.
 */
public final class TrainStep implements AutoCloseable {
    private final Backend backend;
    private final WanDit dit;
    private final LoraNetwork lora;
    private final Optimizer optimizer;
    private final GradClip clip;
    private final List<Tensor> gradients; // the LoRA's flat gradient: one norm reduction for every module
    private final Map<Shape, BatchTensors> buffers = new HashMap<>();
    private final Tensor readBack; // (maxBatchesPerStep + 1) F32: the loss of each batch of the step, then ‖g‖²
    private Tensor clipScale;      // (1) F32: the coefficient of the last clipAndRead

    /** {@code maxBatchesPerStep}: the most batches one optimizer step accumulates (gradient_accumulation_steps). */
    public TrainStep(Backend backend, WanDit dit, LoraNetwork lora, Optimizer optimizer, GradClip clip, int maxBatchesPerStep) {
        this.backend = backend;
        this.dit = dit;
        this.lora = lora;
        this.optimizer = optimizer;
        this.clip = clip;
        this.gradients = List.of(lora.gradients());
        this.readBack = backend.allocate(DType.F32, Shape.of(maxBatchesPerStep + 1L));
    }

    /**
     * The optimizer {@code config} names over the LoRA's parameters, named as musubi names them (the state file's
     * keys), updating the network's flat buffers in one op where the optimizer allows.
     */
    public static Optimizer optimizer(Backend backend, OptimizerConfig config, LoraNetwork lora) {
        return optimizer(backend, config, lora, 1f);
    }

    /** As {@link #optimizer(Backend, OptimizerConfig, LoraNetwork)} with LoRA+: the lora_up parameters train at lr × ratio. */
    public static Optimizer optimizer(Backend backend, OptimizerConfig config, LoraNetwork lora, float loraplusRatio) {
        List<TrainableParameter> params = new ArrayList<>();
        for (LoraModule m : lora.modules()) {
            params.add(new TrainableParameter(m.name() + ".lora_down.weight", m.down(), m.dDown()));
            params.add(new TrainableParameter(m.name() + ".lora_up.weight", m.up(), m.dUp(), loraplusRatio));
        }
        return Optimizer.create(backend, config, params, new TrainableParameter("lora", lora.parameters(), lora.gradients()));
    }

    /** The reused buffers for latents of {@code latentShape} (B, 16, F, H, W), made on the shape's first use. */
    public BatchTensors buffers(Shape latentShape) {
        WanDitConfig c = dit.config();
        return buffers.computeIfAbsent(latentShape, s -> new BatchTensors(backend, s, c.textLen(), c.textDim()));
    }

    /**
     * One uploaded batch through the {@code objective}: t drawn, noise at (seed, batchIndex), x_t and the target, then
     * the DiT's loss and LoRA gradients (+= gradScale·d loss). The loss is written on the device into slot
     * {@code slot} (&lt; the step's batch count) of the step's read-back. Returns the drawn t.
     */
    public TimestepSampler.Batch lossAndGradients(BatchTensors b, FlowMatchingObjective objective, long seed, long batchIndex,
                                                  float gradScale, int slot) {
        TimestepSampler.Batch ts = objective.prepare(b, seed, batchIndex);
        FlowMatchingObjective.lossAndGradients(backend, dit, lora, b, gradScale, readBack.view(slot, Shape.of(1)));
        return ts;
    }

    /**
     * The global-norm clip coefficient of the accumulated gradients, then the step's one read-back: returns
     * {loss of batch 0, …, loss of batch {@code batches} − 1, ‖g‖² before clipping}.
     */
    public float[] clipAndRead(int batches) {
        clipScale = clip.coefficient(gradients);
        backend.copy(readBack.view(batches, Shape.of(1)), clip.normSquared());
        return backend.toFloats(readBack.view(0, Shape.of(batches + 1L)));
    }

    /** The optimizer update {@code step} (1-based) with the last {@link #clipAndRead}'s coefficient, then zeroed gradients. */
    public void update(long step, float learningRate) {
        optimizer.step(step, learningRate, clipScale);
        lora.zeroGrad();
    }

    /** Frees the batch buffers of every shape seen (the model, LoRA and optimizer belong to the caller). */
    @Override
    public void close() {
        buffers.values().forEach(BatchTensors::close);
        buffers.clear();
        readBack.close();
    }
}
