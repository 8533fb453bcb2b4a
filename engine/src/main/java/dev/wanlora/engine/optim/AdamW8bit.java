package dev.wanlora.engine.optim;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * bitsandbytes.optim.AdamW8bit over {@link Backend#adamw8bit} (bitsandbytes {@code optim/optimizer.py}
 * {@code Optimizer2State} at 95f9af309d4d5793847169c39288dcd3fcbdf564). A parameter with at least
 * {@code min_8bit_size} elements keeps both moments as 8-bit codes of the dynamic maps ({@link DynamicQuantization})
 * with one fp32 absmax per block of {@link #BLOCK_SIZE}; a smaller one keeps fp32 moments and is updated by
 * {@link Backend#adamw}.
 *
 * <p><b>Block size 256.</b> bitsandbytes changed the 8-bit optimizers' block from 2048 to 256 in 0.46.0 (PR #1365,
 * "Change 8bit optimizer blocksize 2048->256"); musubi installs an unpinned bitsandbytes, so current installs use
 * 256 (the spec's 2048 describes bitsandbytes ≤ 0.45).
 *
 * <p><b>fp32 fallback.</b> bitsandbytes' 32-bit kernel applies the weight decay after the Adam step
 * (p ← (p + Δ)·(1 − lr·wd)) where torch's AdamW applies it first (p ← p·(1 − lr·wd) + Δ); the two differ by
 * lr·wd·Δ ≈ 1e-4·1e-2·1e-4 relative per step at LoRA settings, far below fp32 rounding (6e-8), so the fallback uses
 * {@link Backend#adamw}.
 *
 * <p>State file keys: {@code <name>.state1}/{@code .state2} (U8 codes of m and v), {@code <name>.absmax1}/
 * {@code .absmax2} (F32), bitsandbytes' names; fp32-fallback parameters use {@code .exp_avg}/{@code .exp_avg_sq}.
 */
public final class AdamW8bit extends MomentOptimizer {

    /** Elements per quantization block of the 8-bit state: the op's, {@link Backend#ADAMW8BIT_BLOCK_SIZE}. */
    public static final int BLOCK_SIZE = Backend.ADAMW8BIT_BLOCK_SIZE;

    /** One parameter's state: 8-bit (codes + absmax) or fp32 (m, v). */
    private record State(TrainableParameter parameter, boolean is8bit, Tensor first, Tensor firstAbsMax, Tensor second,
                         Tensor secondAbsMax) {}

    private final List<State> states = new ArrayList<>();
    /** Every parameter back to back when the update runs as one op (the states then hold views of flat), else null. */
    private final TrainableParameter contiguous;
    /** {mCodes, mAbsMax, vCodes, vAbsMax} over all parameters under contiguous, else null. */
    private final Tensor[] flat;

    public AdamW8bit(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters) {
        this(backend, config, parameters, null);
    }

    /**
     * With {@code contiguous} (see {@link Optimizer#create(Backend, OptimizerConfig, List, TrainableParameter)}), when
     * every parameter is 8-bit and a whole number of {@link #BLOCK_SIZE} blocks, the state is flat too and one op
     * updates everything: the quantization blocks are then the same as per parameter, and each is updated on its own.
     */
    AdamW8bit(Backend backend, OptimizerConfig config, List<TrainableParameter> parameters, TrainableParameter contiguous) {
        super(backend, config, parameters);
        boolean isFlat = contiguous != null;
        long total = 0;
        for (TrainableParameter p : this.parameters) {
            long n = p.value().numElements();
            isFlat &= n >= config.min8bitSize() && n % BLOCK_SIZE == 0;
            total += n;
        }
        if (isFlat) {
            this.contiguous = contiguous;
            flat = new Tensor[] {backend.allocate(DType.U8, Shape.of(total)), backend.allocate(DType.F32, Shape.of(total / BLOCK_SIZE)),
                    backend.allocate(DType.U8, Shape.of(total)), backend.allocate(DType.F32, Shape.of(total / BLOCK_SIZE))};
            long at = 0;
            for (TrainableParameter p : this.parameters) {
                long n = p.value().numElements();
                Shape blocks = Shape.of(n / BLOCK_SIZE);
                states.add(new State(p, true, flat[0].view(at, Shape.of(n)), flat[1].view(at / BLOCK_SIZE, blocks),
                        flat[2].view(at, Shape.of(n)), flat[3].view(at / BLOCK_SIZE, blocks)));
                at += n;
            }
            return;
        }
        this.contiguous = null;
        this.flat = null;
        for (TrainableParameter p : this.parameters) {
            Shape shape = p.value().shape();
            long n = shape.numElements();
            if (n >= config.min8bitSize()) {
                Shape blocks = Shape.of((n + BLOCK_SIZE - 1) / BLOCK_SIZE);
                // codes 0 and absmax 0 dequantize to 0: bitsandbytes' zero-initialized state
                states.add(new State(p, true, backend.allocate(DType.U8, Shape.of(n)), backend.allocate(DType.F32, blocks),
                        backend.allocate(DType.U8, Shape.of(n)), backend.allocate(DType.F32, blocks)));
            } else {
                states.add(new State(p, false, backend.allocate(DType.F32, shape), null,
                        backend.allocate(DType.F32, shape), null));
            }
        }
    }

    @Override
    void update(Backend.AdamWStep hyper, Tensor gradScale) {
        if (contiguous != null) {
            backend.adamw8bit(contiguous.value(), contiguous.grad(), flat[0], flat[1], flat[2], flat[3], gradScale, hyper);
            return;
        }
        for (State s : states) {
            TrainableParameter p = s.parameter();
            if (s.is8bit()) {
                backend.adamw8bit(p.value(), p.grad(), s.first(), s.firstAbsMax(), s.second(), s.secondAbsMax(), gradScale,
                        scaled(hyper, p));
            } else {
                backend.adamw(p.value(), p.grad(), s.first(), s.second(), gradScale, scaled(hyper, p));
            }
        }
    }

    /** Number of parameters whose state is 8-bit (the rest are below min_8bit_size). */
    public long count8bit() {
        return states.stream().filter(State::is8bit).count();
    }

    @Override
    List<OptimizerStateFile.Slot> slots() {
        List<OptimizerStateFile.Slot> slots = new ArrayList<>();
        for (State s : states) {
            String name = s.parameter().name();
            if (s.is8bit()) {
                slots.add(new OptimizerStateFile.Slot(name + ".state1", s.first()));
                slots.add(new OptimizerStateFile.Slot(name + ".absmax1", s.firstAbsMax()));
                slots.add(new OptimizerStateFile.Slot(name + ".state2", s.second()));
                slots.add(new OptimizerStateFile.Slot(name + ".absmax2", s.secondAbsMax()));
            } else {
                slots.add(new OptimizerStateFile.Slot(name + ".exp_avg", s.first()));
                slots.add(new OptimizerStateFile.Slot(name + ".exp_avg_sq", s.second()));
            }
        }
        return slots;
    }

    @Override
    public void close() {
        if (flat != null) for (Tensor t : flat) t.close();
        for (State s : states) {
            s.first().close();
            s.second().close();
            if (s.is8bit()) {
                s.firstAbsMax().close();
                s.secondAbsMax().close();
            }
        }
    }
}
