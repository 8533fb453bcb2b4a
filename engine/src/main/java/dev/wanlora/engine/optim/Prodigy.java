package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * prodigyopt.Prodigy (konstmish/prodigy {@code prodigyopt/prodigy.py} at 3efb213) over {@link Backend#prodigyAccumulate},
 * {@link Backend#prodigyAdapt} and {@link Backend#prodigyUpdate}: Adam whose step size d·lr is estimated from
 * Σ g·(p0 − p) / Σ|s| over all parameters. Per parameter it keeps m, v, s and the initial point p0 (F32, the
 * parameter's shape); the scalars d, d_max, d_numerator and the update count k live in one (8) F32 tensor on the
 * parameters' backend, so a step never waits for the host. With β1 = 0 m holds d·g (upstream keeps no first moment).
 *
 * <p>State file keys: {@code <name>.exp_avg}, {@code .exp_avg_sq}, {@code .s}, {@code .p0} (upstream's names) and
 * {@code prodigy.d}, {@code prodigy.d_max}, {@code prodigy.d_numerator}, {@code prodigy.k}.
 */
public final class Prodigy extends StatefulOptimizer {
    private static final String[] SCALARS = {"d", "d_max", "d_numerator", "k"};

    private final OptimizerConfig.ProdigySettings settings;
    private final TrainableParameter contiguous; // every parameter back to back, or null
    private final Tensor state;                  // (8) F32: d, d_max, d_numerator, k, two sums, dlr, skip
    private final List<Tensor[]> buffers = new ArrayList<>(); // per parameter {m, v, s, p0}, its shape, F32
    private final Tensor[] flat;                  // {m, v, s, p0} (Σ n) F32 under contiguous (buffers holds views), else null

    public Prodigy(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters) {
        this(backend, config, parameters, null);
    }

    /** With {@code contiguous}, each pass is one op over the flat buffers (all of Prodigy is elementwise or global sums). */
    Prodigy(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters, TrainableParameter contiguous) {
        super(backend, config, parameters);
        this.settings = config.prodigy();
        this.contiguous = contiguous;
        float d0 = settings.d0();
        this.state = backend.fromFloats(DType.F32, Shape.of(Backend.PRODIGY_STATE_SIZE), new float[] {d0, d0, 0, 0, 0, 0, 0, 0});
        if (contiguous != null) {
            Shape shape = contiguous.value().shape();
            flat = new Tensor[4];
            for (int j = 0; j < 4; j++) flat[j] = backend.allocate(DType.F32, shape);
            long at = 0;
            for (TrainableParameter p : this.parameters) {
                Tensor[] views = new Tensor[4];
                for (int j = 0; j < 4; j++) views[j] = flat[j].view(at, p.value().shape());
                buffers.add(views);
                at += p.value().numElements();
            }
        } else {
            flat = null;
            for (TrainableParameter p : this.parameters) {
                Tensor[] own = new Tensor[4];
                for (int j = 0; j < 4; j++) own[j] = backend.allocate(DType.F32, p.value().shape());
                buffers.add(own);
            }
        }
    }

    @Override
    public void step(long step, float learningRate, Tensor gradScale) {
        Backend.ProdigyStep h = new Backend.ProdigyStep(learningRate, config.beta1(), config.beta2(), settings.beta3(),
                config.eps(), config.weightDecay(), settings.decouple(), settings.useBiasCorrection(),
                settings.safeguardWarmup(), settings.d0(), settings.dCoef(), settings.growthRate());
        if (contiguous != null) {
            backend.prodigyAccumulate(contiguous.value(), contiguous.grad(), flat[3], flat[0], flat[1], flat[2], gradScale,
                    state, h);
            backend.prodigyAdapt(state, h);
            backend.prodigyUpdate(contiguous.value(), contiguous.grad(), flat[0], flat[1], gradScale, state, h);
        } else {
            for (int i = 0; i < parameters.size(); i++) {
                TrainableParameter p = parameters.get(i);
                Tensor[] b = buffers.get(i);
                backend.prodigyAccumulate(p.value(), p.grad(), b[3], b[0], b[1], b[2], gradScale, state, h);
            }
            backend.prodigyAdapt(state, h);
            for (int i = 0; i < parameters.size(); i++) {
                TrainableParameter p = parameters.get(i);
                Tensor[] b = buffers.get(i);
                backend.prodigyUpdate(p.value(), p.grad(), b[0], b[1], gradScale, state, h);
            }
        }
        stepDone(step);
    }

    /** {d, d_max, d_numerator, k} as they are now (reads the device: for tests and reports, not the step loop). */
    public float[] scalars() {
        float[] all = backend.toFloats(state);
        return new float[] {all[0], all[1], all[2], all[3]};
    }

    @Override
    List<OptimizerStateFile.Slot> slots() {
        List<OptimizerStateFile.Slot> slots = new ArrayList<>();
        String[] suffixes = {".exp_avg", ".exp_avg_sq", ".s", ".p0"};
        for (int i = 0; i < parameters.size(); i++) {
            for (int j = 0; j < 4; j++) {
                slots.add(new OptimizerStateFile.Slot(parameters.get(i).name() + suffixes[j], buffers.get(i)[j]));
            }
        }
        for (int j = 0; j < SCALARS.length; j++) {
            slots.add(new OptimizerStateFile.Slot("prodigy." + SCALARS[j], state.view(j, Shape.of(1))));
        }
        return slots;
    }

    @Override
    public void close() {
        state.close();
        if (flat != null) {
            for (Tensor t : flat) t.close();
        } else {
            for (Tensor[] b : buffers) for (Tensor t : b) t.close();
        }
    }
}
