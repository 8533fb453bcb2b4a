package dev.wanlora.models.wan;

import dev.wanlora.engine.stream.ActivationOffload;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.wan.WanDitActivations.Key;
import dev.wanlora.models.wan.WanDitActivations.Offload;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Every buffer of one {@link WanDitActivations} plan with its dtype and shape, from (config, precision, key): the one
 * list that the plan allocates and that the memory plan ({@link WanMemoryPlan}) counts, so the two cannot drift
 * (STYLE.md §8: shape arithmetic lives in the plan, not in the forward code). Buffer names are the plan's fields
 * ({@code patches}, {@code state0.selfQ}, {@code grad.dQ}, …); the plan binds each field to its buffer by name and
 * fails at once if one is missing or left over.
 *
 * <p>Beside the buffers, two {@link ActivationOffload} item lists: the saved block inputs (numLayers + 1 items of
 * {@link #savedInputLayout()}; 2 in a forward-only plan, whose residual stream ping-pongs) and, with
 * {@link Key#savesAttentionOutputs()}, every block's self-attention output and log-sum-exp.
 *
 * <p>Dtypes: "act" is the {@link ComputePrecision}'s activation dtype; time embedding, modulation, norm statistics,
 * log-sum-exps, RoPE tables, the prediction and its gradient are F32. A forward-only key ({@link Key#forwardOnly})
 * has one block state and no gradient buffer.
 */
public final class WanDitActivationLayout {

    /** One buffer of the plan. */
    public record Buffer(String name, DType dtype, Shape shape) {
        public long sizeBytes() { return Math.multiplyExact(shape.numElements(), dtype.sizeBytes()); }
    }

    private final Key key;
    private final List<Buffer> buffers = new ArrayList<>();
    private final BlockLayout savedInputLayout;
    private final int savedInputItems;
    /** Null without saved attention outputs. */
    private final BlockLayout savedAttentionLayout;
    private final int savedAttentionItems;

    private WanDitActivationLayout(WanDitConfig config, ComputePrecision precision, Key key) {
        this.key = key;
        DType act = precision.activationDType();
        long b = key.batch(), l = key.tokens(), k = config.textLen(), c = config.dim();
        Shape stream = Shape.of(b, l, c);
        Shape latent = Shape.of(b, config.outChannels(), key.frames(), key.height(), key.width());

        f32("sinusoid", Shape.of(b, config.freqDim()));
        f32("timeHidden", Shape.of(b, c));
        f32("e", Shape.of(b, c));
        f32("eSilu", Shape.of(b, c));
        f32("e0", Shape.of(b, 6, c));
        add("patches", act, Shape.of(b, l, config.patchLength()));
        add("contextPadded", act, Shape.of(b, k, config.textDim()));
        add("textHidden", act, Shape.of(b, k, c));
        add("context", act, Shape.of(b, k, c));
        f32("rope.cos", Shape.of(l, config.headDim() / 2));
        f32("rope.sin", Shape.of(l, config.headDim() / 2));

        savedInputLayout = new BlockLayout(List.of(new BlockLayout.Entry(act, stream)));
        savedInputItems = key.forwardOnly() ? 2 : config.numLayers() + 1;
        f32("blockModulation", Shape.of(b, 6, c));
        int states = key.keepsBlockIntermediates() ? config.numLayers() : 1;
        for (int i = 0; i < states; i++) blockState(i, config, act);
        savedAttentionItems = key.savesAttentionOutputs() ? config.numLayers() : 0;
        savedAttentionLayout = savedAttentionItems == 0 ? null : new BlockLayout(List.of(new BlockLayout.Entry(act, stream),
                new BlockLayout.Entry(DType.F32, Shape.of(b, config.numHeads(), l))));
        add("branchOut", act, stream);

        f32("headModulation", Shape.of(b, 2, c));
        f32("headMean", Shape.of(b, l));
        f32("headRstd", Shape.of(b, l));
        add("headOutput", act, Shape.of(b, l, config.headOutFeatures()));
        f32("pred", latent);

        if (!key.forwardOnly()) {
            f32("dPred", latent);
            add("dHeadOutput", act, Shape.of(b, l, config.headOutFeatures()));
            add("dStream", act, stream);
            blockGradients(config, act);
        }
    }

    /** The layout of a plan for {@code key}. */
    public static WanDitActivationLayout of(WanDitConfig config, ComputePrecision precision, Key key) {
        return new WanDitActivationLayout(config, precision, key);
    }

    /** Buffers in allocation order (the saved inputs and attention outputs are items of the two offloads). */
    public List<Buffer> buffers() { return Collections.unmodifiableList(buffers); }

    /** One saved block input: (B, L, C) act. */
    public BlockLayout savedInputLayout() { return savedInputLayout; }

    /** numLayers + 1 saved block inputs; 2 in a forward-only plan (the residual stream's ping-pong pair). */
    public int savedInputItems() { return savedInputItems; }

    /** One block's saved self-attention output (B, L, C) act and log-sum-exp (B, N, L) F32; null without saving. */
    public BlockLayout savedAttentionLayout() { return savedAttentionLayout; }

    /** numLayers with {@link Key#savesAttentionOutputs()}, else 0. */
    public int savedAttentionItems() { return savedAttentionItems; }

    /** Device bytes of the saved block inputs: the resident ones and the offload ring. */
    public long savedInputBytes() {
        return ActivationOffload.deviceBytes(savedInputLayout, savedInputItems, key.offload().blockInputs(),
                key.offload().ringSlots());
    }

    /** Device bytes of the saved self-attention outputs and log-sum-exps (0 without). */
    public long savedAttentionBytes() {
        return savedAttentionLayout == null ? 0 : ActivationOffload.deviceBytes(savedAttentionLayout, savedAttentionItems,
                key.offload().attentionOutputs(), key.offload().ringSlots());
    }

    /** Pinned host bytes of the offloaded saved inputs and attention outputs. */
    public long offloadedHostBytes() {
        Offload o = key.offload();
        long n = ActivationOffload.hostBytes(savedInputLayout, o.blockInputs());
        return savedAttentionLayout == null ? n : n + ActivationOffload.hostBytes(savedAttentionLayout, o.attentionOutputs());
    }

    /** Every device byte of the plan: the buffers, the saved inputs and the saved attention outputs. */
    public long deviceBytes() {
        long n = savedInputBytes() + savedAttentionBytes();
        for (Buffer buffer : buffers) n += buffer.sizeBytes();
        return n;
    }

    /** Forward intermediates of block state i ({@link WanDitActivations.BlockState} names them). */
    private void blockState(int i, WanDitConfig config, DType act) {
        String p = "state" + i + ".";
        long b = key.batch(), l = key.tokens(), k = config.textLen(), dim = config.dim();
        Shape stats = Shape.of(b, l);
        Shape tokens = Shape.of(b, l, dim);
        Shape text = Shape.of(b, k, dim);
        Shape lse = Shape.of(b, config.numHeads(), l);
        for (String s : List.of("norm1Mean", "norm1Rstd", "norm3Mean", "norm3Rstd", "norm2Mean", "norm2Rstd",
                "selfQRstd", "selfKRstd", "crossQRstd")) {
            f32(p + s, stats);
        }
        for (String s : List.of("selfAttnInput", "selfQ", "selfK", "selfQRope", "selfKRope", "selfV", "afterSelfAttn",
                "crossAttnInput", "crossQ", "crossQNorm", "crossAttnOut", "afterCrossAttn", "ffnInput")) {
            add(p + s, act, tokens);
        }
        if (!key.savesAttentionOutputs()) { // else every block's are saved (savedAttentionLayout)
            f32(p + "selfLse", lse);
            add(p + "selfAttnOut", act, tokens);
        }
        for (String s : List.of("crossK", "crossKNorm", "crossV")) add(p + s, act, text);
        f32(p + "crossKRstd", Shape.of(b, k));
        f32(p + "crossLse", lse);
        add(p + "ffnHidden", act, Shape.of(b, l, config.ffnDim()));
        add(p + "ffnActivated", act, Shape.of(b, l, config.ffnDim()));
        if (key.loraRank() > 0) {
            for (BlockLinear layer : BlockLinear.values()) {
                boolean readsContext = layer == BlockLinear.CROSS_ATTN_K || layer == BlockLinear.CROSS_ATTN_V;
                add(p + "loraHidden." + layer.ordinal(), act, Shape.of(b * (readsContext ? k : l), key.loraRank()));
            }
        }
    }

    /** Backward scratch shared by all blocks ({@link WanDitActivations.BlockGradients} names it). */
    private void blockGradients(WanDitConfig config, DType act) {
        long b = key.batch(), l = key.tokens(), k = config.textLen();
        Shape tokens = Shape.of(b, l, config.dim());
        for (String s : List.of("dBranchOut", "dAttnOut", "dQ", "dK", "dV", "dInput")) add("grad." + s, act, tokens);
        for (String s : List.of("dCrossK", "dCrossV", "dCrossKPre")) add("grad." + s, act, Shape.of(b, k, config.dim()));
        add("grad.dFfnHidden", act, Shape.of(b, l, config.ffnDim()));
        add("grad.dLoraHidden", act, Shape.of(b * Math.max(l, k), Math.max(1, key.loraRank())));
    }

    private void add(String name, DType dtype, Shape shape) { buffers.add(new Buffer(name, dtype, shape)); }

    private void f32(String name, Shape shape) { add(name, DType.F32, shape); }
}
