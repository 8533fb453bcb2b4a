package dev.wanlora.cli.train;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.optim.GradClip;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.engine.optim.TrainableParameter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraModule;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDit;

import java.util.ArrayList;
import java.util.List;

/**
 * The device work of one optimizer step of musubi's loop, shared by {@code wanlora train} and {@code wanlora bench} so
 * that the benchmark times exactly what training runs: per batch the noisy input, the DiT's loss and LoRA gradients;
 * then the global-norm clip, the optimizer update with the scheduled learning rate, and zeroed gradients.
 */
final class TrainStep {
    private final Backend backend;
    private final WanDit dit;
    private final LoraNetwork lora;
    private final Optimizer optimizer;
    private final GradClip clip;
    private final List<Tensor> gradients = new ArrayList<>();
    private Tensor clipScale; // (1) F32: the coefficient of the last clip()

    TrainStep(Backend backend, WanDit dit, LoraNetwork lora, Optimizer optimizer, GradClip clip) {
        this.backend = backend;
        this.dit = dit;
        this.lora = lora;
        this.optimizer = optimizer;
        this.clip = clip;
        for (TrainableParameter p : optimizer.parameters()) gradients.add(p.grad());
    }

    /** The LoRA's parameters with their gradients, as musubi names them (the optimizer's list). */
    static List<TrainableParameter> trainableParameters(LoraNetwork lora) {
        List<TrainableParameter> params = new ArrayList<>();
        for (LoraModule m : lora.modules()) {
            params.add(new TrainableParameter(m.name() + ".lora_down.weight", m.down(), m.dDown()));
            params.add(new TrainableParameter(m.name() + ".lora_up.weight", m.up(), m.dUp()));
        }
        return params;
    }

    /**
     * One batch: timesteps from {@code ts}, noise at (seed, batchIndex), x_t and the target, then the DiT's loss and
     * LoRA gradients (+= gradScale·d loss); returns the loss, read back to the host.
     */
    float lossAndGradients(BatchTensors b, TimestepSampler.Batch ts, long seed, long batchIndex, float gradScale) {
        try (Tensor t = backend.fromFloats(DType.F32, Shape.of(b.batchSize()), ts.t());
             Tensor timesteps = backend.fromFloats(DType.F32, Shape.of(b.batchSize()), ts.modelTimestep())) {
            b.prepare(backend, seed, batchIndex, t);
            Tensor loss = dit.lossAndBackward(b.xt, timesteps, b.contexts, b.target, lora, gradScale);
            return backend.toFloats(loss)[0];
        }
    }

    /** The global-norm clip coefficient of the accumulated gradients; returns ‖g‖² (pre-clip), read back to the host. */
    float clip() {
        clipScale = clip.coefficient(gradients);
        return backend.toFloats(clip.normSquared())[0];
    }

    /** The optimizer update {@code step} (1-based) with the last {@link #clip()}'s coefficient, then zeroed gradients. */
    void update(long step, float learningRate) {
        optimizer.step(step, learningRate, clipScale);
        lora.zeroGrad();
    }
}
