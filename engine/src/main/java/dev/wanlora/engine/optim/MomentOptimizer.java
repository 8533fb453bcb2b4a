package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.Tensor;

import java.util.List;

/**
 * What {@link AdamW} and {@link AdamW8bit} share beyond {@link StatefulOptimizer}: the AdamW hyper-parameters each
 * step hands to the update op. A subclass owns its moment buffers: it allocates them, applies one {@link #update} with
 * them and lists them as {@link #slots()}.
 */
abstract sealed class MomentOptimizer extends StatefulOptimizer permits AdamW, AdamW8bit {

    MomentOptimizer(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters) {
        super(backend, config, parameters);
    }

    /** Updates every parameter with {@code hyper}; {@code gradScale} (1) F32 as in {@link Optimizer#step}. */
    abstract void update(Backend.AdamWStep hyper, Tensor gradScale);

    /** {@code hyper} with the learning rate of parameter {@code p} (its LoRA+ scale applied). */
    static Backend.AdamWStep scaled(Backend.AdamWStep hyper, TrainableParameter p) {
        if (p.learningRateScale() == 1f) return hyper;
        return new Backend.AdamWStep(hyper.learningRate() * p.learningRateScale(), hyper.beta1(), hyper.beta2(), hyper.eps(),
                hyper.weightDecay(), hyper.step());
    }

    @Override
    public final void step(long step, float learningRate, Tensor gradScale) {
        update(new Backend.AdamWStep(learningRate, config.beta1(), config.beta2(), config.eps(), config.weightDecay(), step),
                gradScale);
        stepDone(step);
    }
}
