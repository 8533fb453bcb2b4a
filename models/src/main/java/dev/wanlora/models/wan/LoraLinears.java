package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.BlockAdapters.Adapter;
import dev.wanlora.models.wan.WanDitActivations.BlockGradients;
import dev.wanlora.models.wan.WanDitActivations.BlockState;
import dev.wanlora.models.wan.WanDitWeights.Block;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.Linear;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * {@link WanDit}'s block Linears with their LoRA (musubi {@code LoRAModule.forward}: y = x·Wᵀ + b + scale·up(down(x))),
 * forward and backward, and the compute-dtype copy of the LoRA parameters they multiply by. Under {@code --fp8_compute}
 * the frozen part of the forward, x·Wᵀ + b, is {@link ComputeWeights#fp8Forward}; the LoRA stays in the compute dtype. The frozen weight comes from
 * {@link ComputeWeights} (fp8 codes dequantized there). Split from WanDit so that the model keeps the block's dataflow
 * and this class the Linear's arithmetic; the ops and their order are WanDit's as before.
 */
final class LoraLinears implements AutoCloseable {

    /**
     * The rank-r GEMM first (issue 11, LoRA without extra passes): y = s·h·Uᵀ + b, then y += x·Wᵀ in the frozen GEMM,
     * which reads the partial sum in its epilogue, under its own compute; likewise the backward's dx = dh·D, then
     * dx += dy·W. The other order had a memory-bound K = r GEMM read and write all of y after the frozen one. Same
     * sums, another bf16 rounding order (the goldens' bounds hold: verify-golden). NVIDIA H200, 14B 384x208x45
     * fp8_scaled swap 10, one call: 0.638 → 0.633 s/it, GEMM time 394.9 → 384.4 ms per step.
     * {@code -Dwanlora.loraUpFirst=off} restores the old order for an A/B. Not under {@code --fp8_compute}, whose
     * frozen GEMM writes its own output.
     */
    static final boolean IS_UP_FIRST = !"off".equals(System.getProperty("wanlora.loraUpFirst", "on"));

    private final Backend backend;
    private final DType act;
    private final ComputeWeights computeWeights;
    /**
     * Under BF16_MUSUBI, bf16 copies {down, up} of each LoRA module's F32 parameters, refreshed at the start of every
     * forward: autocast rounds fp32 LoRA weights to bf16 for each matmul (musubi lora.py forward under autocast). They
     * are views into {@link #loraComputeFlat}, laid out as {@link BlockAdapters#parameters()}, so one copy refreshes all.
     */
    private final Map<Adapter, Tensor[]> loraComputeWeights = new IdentityHashMap<>();
    private Tensor loraComputeFlat; // (P) act: the bf16 copy of every LoRA parameter
    private BlockAdapters loraComputeNetwork;
    /** The sampler's schedule the copies were last refreshed for ({@link #syncFor}); null after a plain {@link #sync}. */
    private TimeEmbeddings syncedFor;

    LoraLinears(Backend backend, DType act, ComputeWeights computeWeights) {
        this.backend = backend;
        this.act = act;
        this.computeWeights = computeWeights;
    }

    /** y = x·Wᵀ + b + scale·(x·Dᵀ)·Uᵀ for block Linear {@code layer}; down(x) is kept in the state for the backward. */
    void forward(Tensor y, Tensor x, Block blk, BlockLinear layer, BlockAdapters lora, BlockState s) {
        forward(y, x, blk, layer, lora, s, false);
    }

    /**
     * {@link #forward} of a Linear whose input x is that of the previous {@link #forward} call, unchanged since (self
     * attention's k and v after q, cross attention's v after k): under {@code --fp8_compute} x's codes are reused.
     */
    void forwardSameInput(Tensor y, Tensor x, Block blk, BlockLinear layer, BlockAdapters lora, BlockState s) {
        forward(y, x, blk, layer, lora, s, true);
    }

    private void forward(Tensor y, Tensor x, Block blk, BlockLinear layer, BlockAdapters lora, BlockState s,
                         boolean isSameInput) {
        Linear lin = blk.linear(layer);
        if (IS_UP_FIRST && !lin.hasTensorScale()) {
            Tensor hidden = down(x, blk, layer, lora, s);
            if (hidden != null) {
                Adapter m = lora.module(blk.index(), layer);
                backend.gemm(y, hidden, false, computeUp(m), true, m.scale(), 0, lin.bias());
                backend.gemm(y, x, false, computeWeights.blockWeight(blk, layer), true, 1, 1, null);
                return;
            }
        }
        if (lin.hasTensorScale()) computeWeights.fp8Forward(y, x, lin, isSameInput);
        else backend.gemm(y, x, false, computeWeights.blockWeight(blk, layer), true, 1, 0, lin.bias());
        Tensor hidden = down(x, blk, layer, lora, s);
        if (hidden == null) return;
        Adapter m = lora.module(blk.index(), layer);
        backend.gemm(y, hidden, false, computeUp(m), true, m.scale(), 1, null);
    }

    /** The LoRA's down(x) = x·Dᵀ of block Linear {@code layer} into its state buffer; null without a LoRA module there. */
    Tensor down(Tensor x, Block blk, BlockLinear layer, BlockAdapters lora, BlockState s) {
        Adapter m = lora == null ? null : lora.module(blk.index(), layer);
        if (m == null) return null;
        Tensor hidden = loraHidden(s, layer, m, x.shape().rows());
        backend.gemm(hidden, x, false, computeDown(m), true, 1, 0, null);
        return hidden;
    }

    /**
     * Backward of {@link #forward}: forward y = x·Wᵀ + b + s·h·Uᵀ with h = x·Dᵀ, so
     * dU += s·dyᵀ·h, dh = s·dy·U, dD += dhᵀ·x, and dx (= or +=) dy·W + dh·D. W and b are frozen. dx null: the
     * input gradient is not needed (the context).
     */
    void backward(Tensor dx, boolean accumulateDx, Tensor dy, Tensor x, Block blk,
                  BlockLinear layer, BlockAdapters lora, BlockState s, BlockGradients g) {
        Adapter m = lora.module(blk.index(), layer);
        Tensor dHidden = null;
        if (m != null) {
            long rows = dy.shape().rows();
            Tensor hidden = loraHidden(s, layer, m, rows);
            dHidden = g.dLoraHidden.view(0, Shape.of(rows, m.rank()));
            backend.gemm(m.dUp(), dy, true, hidden, false, m.scale(), 1, null);
            backend.gemm(dHidden, dy, false, computeUp(m), false, m.scale(), 0, null);
            backend.gemm(m.dDown(), dHidden, true, x, false, 1, 1, null);
        }
        if (dx == null) return;
        if (IS_UP_FIRST && m != null) {
            backend.gemm(dx, dHidden, false, computeDown(m), false, 1, accumulateDx ? 1 : 0, null);
            backend.gemm(dx, dy, false, computeWeights.blockWeight(blk, layer), false, 1, 1, null);
            return;
        }
        backend.gemm(dx, dy, false, computeWeights.blockWeight(blk, layer), false, 1, accumulateDx ? 1 : 0, null);
        if (m != null) backend.gemm(dx, dHidden, false, computeDown(m), false, 1, 1, null);
    }

    private static Tensor loraHidden(BlockState s, BlockLinear layer, Adapter m, long rows) {
        return s.loraHidden[layer.ordinal()].view(0, Shape.of(rows, m.rank()));
    }

    private Tensor computeDown(Adapter m) {
        return act == DType.F32 ? m.down() : loraComputeWeights.get(m)[0];
    }

    private Tensor computeUp(Adapter m) {
        return act == DType.F32 ? m.up() : loraComputeWeights.get(m)[1];
    }

    /** Refreshes the bf16 LoRA copies (BF16_MUSUBI) from the F32 parameters, in one op; allocates them once per network. */
    void sync(BlockAdapters lora) {
        if (act == DType.F32 || lora == null) return;
        if (loraComputeNetwork != lora) {
            loraComputeWeights.clear();
            if (loraComputeFlat != null) loraComputeFlat.close();
            loraComputeFlat = backend.allocate(act, lora.parameters().shape());
            for (Adapter m : lora.modules()) loraComputeWeights.put(m, lora.views(loraComputeFlat, m));
            loraComputeNetwork = lora;
        }
        backend.copy(loraComputeFlat, lora.parameters());
        syncedFor = null;
    }

    /**
     * {@link #sync} for a sampler's forwards with the schedule {@code time}: the LoRA does not change during one
     * sample's loop (the contract of {@link WanDit#forwardOnly(Tensor, TimeEmbeddings, int, CrossAttentionContext,
     * BlockAdapters)}; the cached cross-attention k/v depend on it too), so the copies are refreshed by its first
     * forward only, unless another network or a plain {@link #sync} came in between. The copy is a deterministic
     * function of the parameters, so skipping it leaves every value as a refresh would write it (14B rank 32: one
     * 153 M-element fp32→bf16 copy, ~1 ms on an H200, saved per forward).
     */
    void syncFor(BlockAdapters lora, TimeEmbeddings time) {
        if (act == DType.F32 || lora == null) return;
        if (loraComputeNetwork == lora && syncedFor == time) return;
        sync(lora);
        syncedFor = time;
    }

    static int maxRank(BlockAdapters lora) {
        int r = 0;
        if (lora != null) for (Adapter m : lora.modules()) r = Math.max(r, m.rank());
        return r;
    }

    @Override
    public void close() {
        loraComputeWeights.clear();
        if (loraComputeFlat != null) loraComputeFlat.close();
        loraComputeFlat = null;
        loraComputeNetwork = null;
        syncedFor = null;
    }
}
