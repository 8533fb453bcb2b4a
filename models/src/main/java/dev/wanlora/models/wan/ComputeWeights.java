package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitWeights.Block;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.Linear;

import java.util.EnumMap;
import java.util.EnumSet;
import java.util.Map;
import java.util.Set;

/**
 * {@link WanDit}'s Linear weights in the compute dtype: an unquantized weight as it is, an fp8 one dequantized into a
 * scratch buffer right before its GEMM; and, with {@link #keepBackwardWeights}, the {@link WanDit#BACKWARD_LINEARS}
 * of the block being recomputed dequantized once and kept for its backward.
 *
 * <p>Under {@code --fp8_compute} ({@link Linear#hasTensorScale()}) a block Linear's forward is {@link #fp8Forward}
 * instead; its backward weight is the same per-tensor codes dequantized.
 *
 * <p>Invariant: every path dequantizes the same codes with the same op, so which one serves a GEMM never changes a
 * number (the bit-identity WanDitBackwardWeightsTest checks).
 */
final class ComputeWeights implements AutoCloseable {
    private final Backend backend;
    private final WanDitConfig config;
    private final DType act;
    /** (largest quantized O·I) act: a quantized Linear's weight dequantized right before its GEMM; null when none. */
    private final Tensor dequantizedWeight;
    /**
     * With {@link #keepBackwardWeights}: (Σ O·I over {@link WanDit#BACKWARD_LINEARS}, each view padded to 128 elements)
     * act, the fp8 block Linears of the block being recomputed, dequantized once for its recompute and its backward;
     * null otherwise.
     */
    private Tensor backwardWeights;
    private final Map<BlockLinear, Tensor> backwardWeightViews = new EnumMap<>(BlockLinear.class);
    /** The block whose {@link #backwardWeights} are being filled and used (-1: none, the scratch path). */
    private int backwardWeightsBlock = -1;
    private final Set<BlockLinear> backwardWeightsFilled = EnumSet.noneOf(BlockLinear.class);
    /**
     * {@code --fp8_compute}: (rows · ffnDim) F8_E4M3, the per-tensor codes of a Linear's input, made before each fp8
     * GEMM; sized on first use for the largest input of that many rows and grown when a call has more rows. Null until
     * then.
     */
    private Tensor fp8InputCodes;
    /** (1) F32: the scale of {@link #fp8InputCodes}. */
    private Tensor fp8InputScale;
    /** The input whose codes {@link #fp8InputCodes} holds (checks a reuse); null before the first. */
    private Tensor fp8QuantizedInput;

    ComputeWeights(Backend backend, WanDitConfig config, WanDitWeights weights, DType act) {
        this.backend = backend;
        this.config = config;
        this.act = act;
        long scratch = weights.largestQuantizedWeightElements();
        this.dequantizedWeight = scratch > 0 ? backend.allocate(act, Shape.of(scratch)) : null;
    }

    /**
     * Allocates (or frees) the kept backward weights; {@code on} applies only when some weight is quantized (the
     * caller passes false without gradient checkpointing).
     */
    void keepBackwardWeights(boolean on) {
        boolean applies = on && dequantizedWeight != null;
        if (applies == (backwardWeights != null)) return;
        backwardWeightViews.clear();
        if (!applies) {
            backwardWeights.close();
            backwardWeights = null;
            return;
        }
        backwardWeights = backend.allocate(act, Shape.of(WanDit.backwardWeightElements(config)));
        long offset = 0;
        for (BlockLinear l : WanDit.BACKWARD_LINEARS) {
            Shape w = l.weightShape(config);
            backwardWeightViews.put(l, backwardWeights.view(offset, w));
            offset += WanDit.paddedElements(w.numElements());
        }
    }

    boolean keepsBackwardWeights() { return backwardWeights != null; }

    /** Block i's recompute and backward start: its backward weights are dequantized on first use from now on. */
    void startBlock(int i) {
        if (backwardWeights == null) return;
        backwardWeightsBlock = i;
        backwardWeightsFilled.clear();
    }

    /** The block's backward ended: back to the scratch path. */
    void endBlock() {
        backwardWeightsBlock = -1;
    }

    /** The Linear's weight in the compute dtype: itself, or its fp8 codes dequantized into the scratch buffer. */
    Tensor weightOf(Linear lin) {
        if (!lin.isQuantized()) return lin.weight();
        Tensor w = dequantizedWeight.view(0, lin.weightShape());
        dequantize(w, lin);
        return w;
    }

    /** w = the Linear's codes times its scales: musubi's block scales, or {@code --fp8_compute}'s per-tensor one. */
    private void dequantize(Tensor w, Linear lin) {
        if (lin.hasTensorScale()) backend.dequantizeFp8Tensor(w, lin.quantized(), lin.scale());
        else backend.dequantizeFp8(w, lin.quantized(), lin.scale());
    }

    /**
     * {@code --fp8_compute}'s forward of a Linear in that form ({@link Linear#hasTensorScale()}): x quantized per tensor
     * into the input scratch, then y = (sx·sw)·(xq·wqᵀ) + b by {@code Backend.gemmFp8}. x (R, I), y (R, O).
     * {@code isSameInput}: x is the very tensor of the previous call, unchanged since (q, k and v of one input), so its
     * codes are reused: the quantization is deterministic, so this changes no number.
     */
    void fp8Forward(Tensor y, Tensor x, Linear lin, boolean isSameInput) {
        long rows = x.shape().rows(), in = x.shape().cols();
        Tensor codes;
        if (isSameInput) {
            if (x != fp8QuantizedInput) {
                throw new IllegalStateException("ComputeWeights.fp8Forward: an input reuse for " + lin.key() + " whose input"
                        + " is not the one quantized last");
            }
            codes = fp8InputCodes.view(0, Shape.of(rows, in));
        } else {
            if (fp8InputCodes == null || fp8InputCodes.numElements() < rows * in) {
                if (fp8InputCodes != null) fp8InputCodes.close();
                fp8InputCodes = backend.allocate(DType.F8_E4M3, Shape.of(Math.multiplyExact(rows, Math.max(in, config.ffnDim()))));
                if (fp8InputScale == null) fp8InputScale = backend.allocate(DType.F32, Shape.of(1));
            }
            codes = fp8InputCodes.view(0, Shape.of(rows, in));
            backend.quantizeFp8Tensor(codes, fp8InputScale, x.view(0, Shape.of(rows, in)));
            fp8QuantizedInput = x;
        }
        backend.gemmFp8(y, codes, fp8InputScale, lin.quantized(), lin.scale(), lin.bias());
    }

    /**
     * Block Linear {@code layer}'s weight in the compute dtype: during block {@link #backwardWeightsBlock}'s recompute
     * and backward, a {@link WanDit#BACKWARD_LINEARS} weight is dequantized into its kept view on first use and reused
     * after; otherwise {@link #weightOf}.
     */
    Tensor blockWeight(Block blk, BlockLinear layer) {
        Linear lin = blk.linear(layer);
        if (blk.index() != backwardWeightsBlock || !lin.isQuantized() || !WanDit.BACKWARD_LINEARS.contains(layer)) {
            return weightOf(lin);
        }
        Tensor w = backwardWeightViews.get(layer);
        if (backwardWeightsFilled.add(layer)) dequantize(w, lin);
        return w;
    }

    @Override
    public void close() {
        if (dequantizedWeight != null) dequantizedWeight.close();
        if (backwardWeights != null) backwardWeights.close();
        if (fp8InputCodes != null) fp8InputCodes.close();
        if (fp8InputScale != null) fp8InputScale.close();
    }
}
