package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * torch.optim.AdamW over {@link Backend#adamw}: fp32 first and second moments per parameter, decoupled weight
 * decay, bias correction with the 1-based step. State file keys: {@code <name>.exp_avg}, {@code <name>.exp_avg_sq}
 * (torch's names).
 */
public final class AdamW extends MomentOptimizer {
    private final List<Tensor> expAvg = new ArrayList<>();   // per parameter, its shape, F32
    private final List<Tensor> expAvgSq = new ArrayList<>(); // per parameter, its shape, F32
    private final TrainableParameter contiguous;             // every parameter back to back, or null
    private final Tensor flatExpAvg, flatExpAvgSq;           // (Σ n) F32 under contiguous (the lists hold views), else null

    public AdamW(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters) {
        this(backend, config, parameters, null);
    }

    /** With {@code contiguous} (see {@link Optimizer#create(Backend, OptimizerConfig, List, TrainableParameter)}) the moments are flat too and one op updates everything. */
    AdamW(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters, TrainableParameter contiguous) {
        super(backend, config, parameters);
        this.contiguous = contiguous;
        if (contiguous != null) {
            flatExpAvg = backend.allocate(DType.F32, contiguous.value().shape());
            flatExpAvgSq = backend.allocate(DType.F32, contiguous.value().shape());
            long at = 0;
            for (TrainableParameter p : this.parameters) {
                expAvg.add(flatExpAvg.view(at, p.value().shape()));
                expAvgSq.add(flatExpAvgSq.view(at, p.value().shape()));
                at += p.value().numElements();
            }
        } else {
            flatExpAvg = null;
            flatExpAvgSq = null;
            for (TrainableParameter p : this.parameters) {
                expAvg.add(backend.allocate(DType.F32, p.value().shape()));
                expAvgSq.add(backend.allocate(DType.F32, p.value().shape()));
            }
        }
    }

    @Override
    void update(Backend.AdamWStep hyper, Tensor gradScale) {
        if (contiguous != null) {
            // elementwise: one op over the concatenation computes exactly what one op per parameter does
            backend.adamw(contiguous.value(), contiguous.grad(), flatExpAvg, flatExpAvgSq, gradScale, hyper);
        } else {
            for (int i = 0; i < parameters.size(); i++) {
                TrainableParameter p = parameters.get(i);
                backend.adamw(p.value(), p.grad(), expAvg.get(i), expAvgSq.get(i), gradScale, scaled(hyper, p));
            }
        }
    }

    @Override
    List<OptimizerStateFile.Slot> slots() {
        List<OptimizerStateFile.Slot> slots = new ArrayList<>();
        for (int i = 0; i < parameters.size(); i++) {
            String name = parameters.get(i).name();
            slots.add(new OptimizerStateFile.Slot(name + ".exp_avg", expAvg.get(i)));
            slots.add(new OptimizerStateFile.Slot(name + ".exp_avg_sq", expAvgSq.get(i)));
        }
        return slots;
    }

    @Override
    public void close() {
        expAvg.forEach(Tensor::close);
        expAvgSq.forEach(Tensor::close);
        if (flatExpAvg != null) {
            flatExpAvg.close();
            flatExpAvgSq.close();
        }
    }
}
