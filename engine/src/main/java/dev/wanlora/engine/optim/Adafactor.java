package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * transformers.optimization.Adafactor (huggingface/transformers {@code src/transformers/optimization.py} at 005edacb)
 * over {@link Backend#adafactor}, one op per parameter: a matrix keeps its second moment factored into a row vector
 * and a column vector (F32), a vector keeps it whole; m (the parameter's shape) only with beta1. With relative_step
 * (musubi's default) the step size is the optimizer's own min(1e-2, 1/√t)·max(eps2, RMS(p)) and the scheduled
 * learning rate is not used, as upstream.
 *
 * <p>State file keys: {@code <name>.exp_avg_sq_row}, {@code .exp_avg_sq_col} (matrices) or {@code .exp_avg_sq}
 * (vectors), {@code .exp_avg} with beta1 (upstream's names). The step count is the optimizer step (every parameter
 * is updated at every step, as every LoRA parameter has a gradient).
 */
public final class Adafactor extends StatefulOptimizer {
    /** One parameter's state; unused tensors are null. */
    private record State(TrainableParameter parameter, Tensor m, Tensor row, Tensor col, Tensor v) {}

    private final OptimizerConfig.AdafactorSettings settings;
    private final List<State> states = new ArrayList<>();

    public Adafactor(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters) {
        super(backend, config, parameters);
        this.settings = config.adafactor();
        for (TrainableParameter p : this.parameters) {
            Shape shape = p.value().shape();
            Tensor m = settings.hasFirstMoment() ? backend.allocate(DType.F32, shape) : null;
            if (shape.rank() == 2) {
                states.add(new State(p, m, backend.allocate(DType.F32, Shape.of(shape.dim(0))),
                        backend.allocate(DType.F32, Shape.of(shape.dim(1))), null));
            } else if (shape.rank() == 1) {
                states.add(new State(p, m, null, null, backend.allocate(DType.F32, shape)));
            } else {
                throw new UnsupportedOperationException("Adafactor: parameter " + p.name() + " " + shape
                        + " has rank " + shape.rank() + "; supported: 1-D and 2-D parameters (LoRA matrices)");
            }
        }
    }

    @Override
    public void step(long step, float learningRate, Tensor gradScale) {
        Backend.AdafactorStep h = new Backend.AdafactorStep(learningRate, step, settings.eps1(), settings.eps2(),
                settings.clipThreshold(), settings.decayRate(), settings.beta1(), settings.weightDecay(),
                settings.scaleParameter(), settings.relativeStep(), settings.warmupInit());
        for (State s : states) {
            float scale = s.parameter().learningRateScale();
            Backend.AdafactorStep hp = scale == 1f ? h : new Backend.AdafactorStep(learningRate * scale, step, h.eps1(),
                    h.eps2(), h.clipThreshold(), h.decayRate(), h.beta1(), h.weightDecay(), h.scaleParameter(),
                    h.relativeStep(), h.warmupInit());
            backend.adafactor(s.parameter().value(), s.parameter().grad(), s.m(), s.row(), s.col(), s.v(), gradScale, hp);
        }
        stepDone(step);
    }

    @Override
    List<OptimizerStateFile.Slot> slots() {
        List<OptimizerStateFile.Slot> slots = new ArrayList<>();
        for (State s : states) {
            String name = s.parameter().name();
            if (s.m() != null) slots.add(new OptimizerStateFile.Slot(name + ".exp_avg", s.m()));
            if (s.row() != null) {
                slots.add(new OptimizerStateFile.Slot(name + ".exp_avg_sq_row", s.row()));
                slots.add(new OptimizerStateFile.Slot(name + ".exp_avg_sq_col", s.col()));
            } else {
                slots.add(new OptimizerStateFile.Slot(name + ".exp_avg_sq", s.v()));
            }
        }
        return slots;
    }

    @Override
    public void close() {
        for (State s : states) {
            for (Tensor t : new Tensor[] {s.m(), s.row(), s.col(), s.v()}) if (t != null) t.close();
        }
    }
}
