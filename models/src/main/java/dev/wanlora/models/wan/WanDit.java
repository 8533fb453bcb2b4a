package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitActivations.BlockGradients;
import dev.wanlora.models.wan.WanDitActivations.BlockState;
import dev.wanlora.models.wan.WanDitWeights.Block;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.Linear;

import java.util.Collections;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The Wan2.1 T2V DiT: forward (spec §1.2–§1.6) and a hand-written backward that yields the LoRA gradients, as
 * musubi-tuner's {@code WanModel} computes them
 * (<a href="https://github.com/kohya-ss/musubi-tuner/blob/30c658c4f4b0bf05038b3346eff9670259b10fc7/src/musubi_tuner/wan/modules/model.py">model.py</a>).
 * Only LoRA parameters are trained: frozen weights, modulation and embeddings get no gradients, but activation
 * gradients flow through the frozen Linears of the blocks. The backward stops at the first block's input (nothing
 * before it has a trainable parameter).
 *
 * <p>Invariant: every buffer comes from a {@link WanDitActivations} plan made once per input shape; a step with a
 * shape seen before allocates nothing. Results returned (the prediction, its gradient buffer) are views into that
 * plan, valid until the next call with the same shape.
 *
 * <p>Gradient checkpointing (musubi's granularity: one WanAttentionBlock): the forward keeps only each block's input;
 * the backward of block i first recomputes block i's forward from it. Without it every block keeps its intermediates.
 * Both give identical numbers (the recompute runs the same deterministic ops on the same inputs).
 * {@link #savesAttentionOutputs(boolean)} additionally keeps each block's self-attention output and log-sum-exp from the
 * forward, so the recompute skips the self-attention call (it still recomputes q, k, v for the attention backward):
 * the saved tensors are exactly what the recompute would write, so the numbers stay bit-identical.
 *
 * <p>Block streaming ({@link WanDitWeights.BlockSwap}): every block runs between {@code acquireBlock} and
 * {@code releaseBlock}; the recompute and backward of a block share one acquisition, and while block i computes, the
 * next blocks in the pass's order (i + 1 … forward, i − 1 … backward; as many as the ring has spare slots) are
 * prefetched. Streaming only changes where the weights are read from, never an op or its inputs, so swapped and
 * resident runs give bit-identical losses and gradients.
 */
public final class WanDit implements AutoCloseable {

    private final Backend backend;
    private final WanDitConfig config;
    private final WanDitWeights weights;
    private final ComputePrecision precision;
    private final boolean gradientCheckpointing;
    private boolean savesAttentionOutputs;
    private WanDitActivations.Offload offload = WanDitActivations.Offload.NONE;
    private final DType act;
    private final Map<WanDitActivations.Key, WanDitActivations> plans = new HashMap<>();
    /** The Linears' weights in the compute dtype (fp8 ones dequantized before use). */
    private final ComputeWeights computeWeights;
    /** The block Linears with their LoRA (forward, backward, the LoRA's compute-dtype copy). */
    private final LoraLinears linears;
    private WanDitActivations lastActivations;
    /** The plan of the latest {@link #trainingForward} until its {@link #backward}; null otherwise. */
    private WanDitActivations pendingBackward;

    /**
     * The block Linears whose weight the backward multiplies by (dx = dy·W); cross_attn.k and .v read the frozen
     * context, whose gradient is not needed, so only the recompute uses them.
     */
    public static final Set<BlockLinear> BACKWARD_LINEARS = Collections.unmodifiableSet(EnumSet.of(BlockLinear.SELF_ATTN_Q,
            BlockLinear.SELF_ATTN_K, BlockLinear.SELF_ATTN_V, BlockLinear.SELF_ATTN_O, BlockLinear.CROSS_ATTN_Q,
            BlockLinear.CROSS_ATTN_O, BlockLinear.FFN_0, BlockLinear.FFN_2));

    /**
     * Elements of the kept backward weights ({@link #keepsBackwardWeights(boolean)}) for a config (14B: 299 M, 0.56 GiB
     * in bf16).
     */
    public static long backwardWeightElements(WanDitConfig c) {
        long n = 0;
        for (BlockLinear l : BACKWARD_LINEARS) n += paddedElements(l.weightShape(c).numElements());
        return n;
    }

    /** Rounded up to 128 elements (256 bytes in bf16): each view as aligned as the scratch, so cuBLASLt sees the same key. */
    static long paddedElements(long n) { return (n + 127) / 128 * 128; }

    public WanDit(Backend backend, WanDitConfig config, WanDitWeights weights, ComputePrecision precision,
                  boolean gradientCheckpointing) {
        this.backend = backend;
        this.config = config;
        this.weights = weights;
        this.precision = precision;
        this.gradientCheckpointing = gradientCheckpointing;
        this.act = precision.activationDType();
        this.computeWeights = new ComputeWeights(backend, config, weights, act);
        this.linears = new LoraLinears(backend, act, computeWeights);
    }

    public WanDitConfig config() { return config; }

    public ComputePrecision precision() { return precision; }

    public boolean gradientCheckpointing() { return gradientCheckpointing; }

    /**
     * Keeps every block's self-attention output and log-sum-exp through gradient checkpointing (costs
     * {@link WanDitActivationLayout#savedAttentionBytes} per shape; see {@code WanMemoryPlan.SAVED_ATTENTION}). Applies to
     * the calls from now on; without gradient checkpointing it changes nothing. Off by default.
     */
    public void savesAttentionOutputs(boolean on) { this.savesAttentionOutputs = on; }

    /**
     * Keeps the saved block inputs and attention outputs of the first blocks in host memory ({@link WanDitActivations.Offload};
     * issue 12): they are stored on the copy stream as the forward writes them and loaded back ahead of the backward,
     * so the numbers are those of a run without offload, bit for bit. Applies to the checkpointed plans made from now
     * on; without gradient checkpointing it changes nothing. None by default.
     */
    public void offloadActivations(WanDitActivations.Offload o) { this.offload = o; }

    public WanDitActivations.Offload offloadActivations() { return offload; }

    /** Whether the next checkpointed call keeps the self-attention outputs ({@link #savesAttentionOutputs(boolean)}). */
    public boolean savesAttentionOutputs() { return gradientCheckpointing && savesAttentionOutputs; }

    /**
     * With gradient checkpointing and fp8 block weights kept as codes: dequantizes each block's
     * {@link #BACKWARD_LINEARS} once in its checkpoint recompute and keeps them for its backward (one block at a time,
     * {@link #backwardWeightElements} elements; count {@code WanMemoryPlan.backwardWeights} in the plan), instead of
     * dequantizing them again before each backward GEMM: 7 of a block's 27 dequantizations per step saved (ffn.2 is
     * first needed in the backward). The values are those of the scratch path (one deterministic op on the same codes),
     * so results are bit-identical. Otherwise (or off, the default) nothing changes. Allocates or frees the buffer now.
     */
    public void keepsBackwardWeights(boolean on) {
        computeWeights.keepBackwardWeights(on && gradientCheckpointing);
    }

    /** Whether {@link #keepsBackwardWeights(boolean)} is in effect (on, checkpointing, fp8 codes on the backend). */
    public boolean keepsBackwardWeights() { return computeWeights.keepsBackwardWeights(); }

    /** The plan used by the latest {@link #forward} or {@link #trainingForward} (its e, e0, context, block outputs). */
    public WanDitActivations lastActivations() { return lastActivations; }

    /**
     * The prediction (velocity, spec §4.3) for noisy latents.
     *
     * @param xt        (B, Cin, F, H, W) F32 noisy latents x_t
     * @param timesteps (B) F32 model timesteps, already 1000·t + 1 (spec §4.2)
     * @param contexts  B text embeddings, each (L_i, Ct) with L_i ≤ K, F32 or BF16
     * @param lora      adapters to apply, or null
     * @return pred (B, Cout, F, H, W) F32, a view into the plan (valid until the next call with this shape)
     */
    public Tensor forward(Tensor xt, Tensor timesteps, List<Tensor> contexts, BlockAdapters lora) {
        return runForward(xt, timesteps, contexts, lora, false).pred;
    }

    /**
     * {@link #forward} for sampling: the same ops on the same inputs (so the same prediction, bit for bit), in a
     * forward-only plan ({@link WanDitActivations.Key#forwardOnly}) that has no saved block inputs and no gradient
     * buffers. The LoRA is applied unmerged, as in training; blocks stream as in training.
     *
     * @param timesteps (B) F32 model timesteps as the sampler gives them (UniPC: integer t_k, no +1; spec §10.4)
     * @return pred (B, Cout, F, H, W) F32, a view into the forward-only plan (valid until the next call with this shape)
     */
    public Tensor forwardOnly(Tensor xt, Tensor timesteps, List<Tensor> contexts, BlockAdapters lora) {
        long[] d = checkInputs(xt, timesteps, contexts);
        WanDitActivations a = plans.computeIfAbsent(WanDitActivations.Key.forwardOnly((int) d[0], (int) d[2],
                (int) d[3], (int) d[4], LoraLinears.maxRank(lora)), k -> new WanDitActivations(backend, config, precision, k));
        return runForward(a, xt, timesteps, contexts, lora).pred;
    }

    /**
     * {@link #forwardOnly(Tensor, Tensor, List, BlockAdapters)} for a sampler's step k, reusing what is constant over the
     * denoising steps: the time embedding of step k ({@code time}, computed by the step's first forward, copied back by
     * the next: CFG's uncond pass, or the second row of a batch-2 forward) and the text side of every block
     * ({@code text}: with caching, the contexts' embedding and each block's cross-attention k and v, computed by the
     * first forward and read back by the later ones). Every skipped op would have recomputed exactly what is kept, so
     * the prediction equals that of the uncached call with the same inputs, bit for bit. The LoRA must not change while
     * {@code time} is in use (one sample's loop): its compute-dtype copy is refreshed by the first forward with
     * {@code time} only.
     *
     * <p>Batch B = {@code text.batch()}: 1 (one text), or 2 for CFG in one forward (row 0 the prompt, row 1 the negative
     * prompt, the same latent in both rows). Every op of the forward works row by row or on each batch row apart (the
     * GEMMs' rows, the norms' rows, attention and modulation per batch row), and the time embedding is computed on one
     * row as a batch-1 forward computes it and copied to the others, so each row's prediction is that of a batch-1
     * forward with its text, up to the GEMM kernels a GPU picks for 2× the rows (the CPU reference: bit for bit).
     *
     * @param xt   (B, Cin, F, H, W) F32
     * @param time the schedule's time embeddings ({@link #timeEmbeddings})
     * @param step k, 0 ≤ k &lt; time.steps()
     * @param text the contexts ({@link #crossAttentionContext}), made with this {@code lora}, one per row of xt
     * @return pred (B, Cout, F, H, W) F32, a view into the forward-only plan (valid until the next call with this shape)
     */
    public Tensor forwardOnly(Tensor xt, TimeEmbeddings time, int step, CrossAttentionContext text, BlockAdapters lora) {
        if (text.lora() != lora) {
            throw new IllegalArgumentException("WanDit.forwardOnly: the text context was made for another LoRA; make one"
                    + " per LoRA (its cached cross-attention k and v include the LoRA)");
        }
        if (step < 0 || step >= time.steps()) {
            throw new IllegalArgumentException("WanDit.forwardOnly: step " + step + " outside the schedule of " + time.steps()
                    + " steps");
        }
        long[] d = checkLatent(xt);
        if (d[0] != text.batch()) {
            throw new IllegalArgumentException("WanDit.forwardOnly: x_t has one row per text of the context; got "
                    + xt.shape() + " for " + text.batch() + " text(s)");
        }
        checkContexts(text.contexts(), d[0]);
        int batch = (int) d[0];
        WanDitActivations a = plans.computeIfAbsent(WanDitActivations.Key.forwardOnly(batch, (int) d[2], (int) d[3],
                (int) d[4], LoraLinears.maxRank(lora)), k -> new WanDitActivations(backend, config, precision, k));
        lastActivations = a;
        linears.syncFor(lora, time);
        embedPatches(a, xt);
        boolean computed = time.isComputed(step);
        if (!computed) { // on row 0 alone, as a batch-1 forward computes it
            embedTime(a, time.timestep(step), 1);
            time.keep(step, timeRow(a.e, 0), timeRow(a.e0, 0));
        }
        for (int b = computed ? 0 : 1; b < batch; b++) time.restore(step, timeRow(a.e, b), timeRow(a.e0, b));
        if (!text.isFilled()) embedText(a, text.contexts());
        runBlocks(a, lora, text);
        text.markFilled();
        return runHead(a).pred;
    }

    /** Row b of e (B, C) or e0 (B, 6, C): (1, C) or (1, 6, C). */
    private static Tensor timeRow(Tensor t, int b) {
        long[] d = t.shape().dims();
        d[0] = 1;
        Shape row = Shape.of(d);
        return t.view(b * row.numElements(), row);
    }

    /** The time embeddings of a sampler's schedule ({@code modelTimesteps}: t_k as the forward takes them), to close. */
    public TimeEmbeddings timeEmbeddings(float[] modelTimesteps) {
        return new TimeEmbeddings(backend, config, modelTimesteps);
    }

    /**
     * A sampler's text context (L, Ct) for batch-1 forwards with {@code lora} (null: none); {@code caches}: keep each
     * block's cross-attention k and v ({@link CrossAttentionContext#cacheBytes} on the backend). To close.
     */
    public CrossAttentionContext crossAttentionContext(Tensor context, BlockAdapters lora, boolean caches) {
        return crossAttentionContext(List.of(context), lora, caches);
    }

    /**
     * {@link #crossAttentionContext(Tensor, BlockAdapters, boolean)} for batch-B forwards: one (L_b, Ct) text per batch
     * row (CFG in one forward: the prompt, then the negative prompt); the cache holds B texts' k and v.
     */
    public CrossAttentionContext crossAttentionContext(List<Tensor> contexts, BlockAdapters lora, boolean caches) {
        return new CrossAttentionContext(backend, config, precision, contexts, lora, caches);
    }

    /**
     * The forward of a training step: the prediction, in a plan that keeps what {@link #backward} needs (every block's
     * intermediates, or with gradient checkpointing each block's input). The caller's loss then writes d loss / d pred
     * into {@link #predictionGradient()} and calls {@link #backward}; the flow-matching MSE lives with the objective
     * ({@code pipeline.train.FlowMatchingObjective}), not here.
     *
     * @return pred (B, Cout, F, H, W) F32, a view into the plan
     */
    public Tensor trainingForward(Tensor xt, Tensor timesteps, List<Tensor> contexts, BlockAdapters lora) {
        if (lora == null) {
            throw new IllegalArgumentException("WanDit.trainingForward: lora is null; expected the LoRA network to train");
        }
        pendingBackward = runForward(xt, timesteps, contexts, lora, !gradientCheckpointing);
        return pendingBackward.pred;
    }

    /** (B, Cout, F, H, W) F32: d loss / d pred of the latest {@link #trainingForward}, for the caller to write (=). */
    public Tensor predictionGradient() {
        return requirePendingBackward("predictionGradient").dPred;
    }

    /**
     * The backward of the latest {@link #trainingForward} from {@link #predictionGradient()}: the LoRA gradients
     * d loss / d(down, up) are accumulated (+=) into each module's dDown and dUp.
     */
    public void backward(BlockAdapters lora) {
        WanDitActivations a = requirePendingBackward("backward");
        pendingBackward = null;
        headBackward(a);
        for (int i = config.numLayers() - 1; i >= 0; i--) blockBackward(i, a, lora);
    }

    /** The plan of the latest trainingForward, unless another forward has run since (it may have overwritten it). */
    private WanDitActivations requirePendingBackward(String op) {
        if (pendingBackward == null) {
            throw new IllegalStateException("WanDit." + op + ": no trainingForward before it (or another forward ran"
                    + " since); call trainingForward, write predictionGradient(), then backward");
        }
        return pendingBackward;
    }

    /** The plan for a shape, made on first use (public so a trainer can make and report it before step 1). */
    public WanDitActivations plan(int batch, int frames, int height, int width, int loraRank,
                                  boolean keepsBlockIntermediates) {
        boolean saves = !keepsBlockIntermediates && savesAttentionOutputs();
        WanDitActivations.Offload o = keepsBlockIntermediates || !gradientCheckpointing ? WanDitActivations.Offload.NONE
                : new WanDitActivations.Offload(Math.min(offload.blockInputs(), config.numLayers() + 1),
                saves ? Math.min(offload.attentionOutputs(), config.numLayers()) : 0, offload.ringSlots());
        WanDitActivations.Key key = new WanDitActivations.Key(batch, frames, height, width, loraRank,
                keepsBlockIntermediates, saves, o.isOffloading() ? o : WanDitActivations.Offload.NONE);
        return plans.computeIfAbsent(key, k -> new WanDitActivations(backend, config, precision, k));
    }

    /** Frees every activation plan (e.g. after sampling at another resolution). */
    public void releaseActivations() {
        plans.values().forEach(WanDitActivations::close);
        plans.clear();
        lastActivations = null;
        pendingBackward = null;
    }

    /** Frees the forward-only plans of {@link #forwardOnly} (after a sampling phase), keeping the training plans. */
    public void releaseForwardOnlyPlans() {
        plans.entrySet().removeIf(e -> {
            if (!e.getKey().forwardOnly()) return false;
            if (lastActivations == e.getValue()) lastActivations = null;
            e.getValue().close();
            return true;
        });
    }

    @Override
    public void close() {
        releaseActivations();
        linears.close();
        computeWeights.close();
    }

    // ================================================================ forward

    private WanDitActivations runForward(Tensor xt, Tensor timesteps, List<Tensor> contexts, BlockAdapters lora,
                                         boolean keepsBlockIntermediates) {
        long[] d = checkInputs(xt, timesteps, contexts);
        WanDitActivations a = plan((int) d[0], (int) d[2], (int) d[3], (int) d[4], LoraLinears.maxRank(lora),
                keepsBlockIntermediates);
        return runForward(a, xt, timesteps, contexts, lora);
    }

    /** The forward into plan {@code a} (inputs already checked against the plan's shape). */
    private WanDitActivations runForward(WanDitActivations a, Tensor xt, Tensor timesteps, List<Tensor> contexts,
                                         BlockAdapters lora) {
        lastActivations = a;
        pendingBackward = null; // any forward may overwrite the plan a pending backward would read
        linears.sync(lora);
        embedPatches(a, xt);
        embedTime(a, timesteps);
        embedText(a, contexts);
        runBlocks(a, lora, null);
        return runHead(a);
    }

    /** Patch embedding (§1.2.1): Conv3d with kernel = stride = (1,2,2) as a GEMM over 64-element patches. */
    private void embedPatches(WanDitActivations a, Tensor xt) {
        backend.patchify(a.patches, xt, config.inChannels(), a.key.frames(), a.key.height(), a.key.width());
        a.acquireInputForWrite(0);
        linear(a.blockInput(0), a.patches, weights.patchEmbedding());
    }

    /** Time embedding (§1.2.2), fp32: e = time_embedding(sinusoid(t)); e0 = time_projection(SiLU(e)). */
    private void embedTime(WanDitActivations a, Tensor timesteps) {
        embedTime(a, timesteps, a.key.batch());
    }

    /** {@link #embedTime(WanDitActivations, Tensor)} of {@code timesteps} (rows) into the plan's first {@code rows} rows. */
    private void embedTime(WanDitActivations a, Tensor timesteps, int rows) {
        Tensor sinusoid = firstRows(a.sinusoid, rows), timeHidden = firstRows(a.timeHidden, rows);
        Tensor e = firstRows(a.e, rows), eSilu = firstRows(a.eSilu, rows);
        Tensor e0 = firstRows(a.e0.reshape(Shape.of(a.key.batch(), 6L * config.dim())), rows);
        backend.sinusoidalEmbedding(sinusoid, timesteps);
        linear(timeHidden, sinusoid, weights.timeEmbedding0());
        backend.silu(timeHidden, timeHidden);
        linear(e, timeHidden, weights.timeEmbedding2());
        backend.silu(eSilu, e);
        linear(e0, eSilu, weights.timeProjection());
    }

    /** The first {@code rows} rows of a (B, N) tensor: the tensor itself when rows = B. */
    private static Tensor firstRows(Tensor t, int rows) {
        return rows == t.shape().dim(0) ? t : t.view(0, Shape.of(rows, t.shape().dim(1)));
    }

    /** Text embedding (§1.2.3): zero-pad each context to K rows, Linear → GELU(tanh) → Linear. */
    private void embedText(WanDitActivations a, List<Tensor> contexts) {
        for (int b = 0; b < a.key.batch(); b++) {
            Tensor rows = a.contextPadded.slice(b);
            Tensor ctx = contexts.get(b);
            long n = ctx.shape().dim(0), cols = config.textDim();
            backend.copy(rows.view(0, Shape.of(n, cols)), ctx);
            if (n < a.textTokens) backend.fill(rows.view(n * cols, Shape.of(a.textTokens - n, cols)), 0);
        }
        linear(a.textHidden, a.contextPadded, weights.textEmbedding0());
        backend.geluTanh(a.textHidden, a.textHidden);
        linear(a.context, a.textHidden, weights.textEmbedding2());
    }

    /** Every block in order (streamed blocks acquired and released around each); {@code text}: see {@link #blockForward}. */
    private void runBlocks(WanDitActivations a, BlockAdapters lora, CrossAttentionContext text) {
        for (int i = 0; i < config.numLayers(); i++) {
            Block blk = weights.acquireBlock(i);
            prefetchAfter(i, 1);
            blockForward(blk, a, lora, false, text);
            a.releaseInput(i); // block i was its last forward reader: an offloaded input is stored now
            weights.releaseBlock(i);
        }
    }

    /** Head (§1.5) and unpatchify (§1.6) into {@code a.pred}. */
    private WanDitActivations runHead(WanDitActivations a) {
        headForward(a);
        a.releaseInput(config.numLayers());
        backend.unpatchify(a.pred, a.headOutput, config.outChannels(), a.key.frames(), a.key.height(), a.key.width());
        return a;
    }

    /**
     * One WanAttentionBlock (§1.3), i = blk.index(): x → blockInputs[i + 1]; intermediates into {@code a.stateOf(i)}.
     * blk is acquired (its Linear weights are on the device). {@code isRecompute}: the checkpoint recompute of the
     * backward, which reuses the self-attention output and log-sum-exp when the plan saved them. {@code text} (sampling,
     * else null): when it caches, the cross-attention k and v are computed into the block state and kept in it by the
     * first forward, and read from it afterwards.
     */
    private void blockForward(Block blk, WanDitActivations a, BlockAdapters lora, boolean isRecompute,
                              CrossAttentionContext text) {
        int i = blk.index();
        BlockState s = a.stateOf(i);
        Tensor x = a.blockInput(i);
        Tensor mod = a.blockModulation;
        int heads = config.numHeads();
        float eps = config.eps();
        blockModulation(blk, a);

        // Self-attention: h = LN1(x)·(1 + m1) + m0; x1 = x + SelfAttn(h)·m2.
        backend.layerNormModulate(s.selfAttnInput, s.norm1Mean, s.norm1Rstd, x, mod, 0, 1, eps);
        linears.forward(s.selfQ, s.selfAttnInput, blk, BlockLinear.SELF_ATTN_Q, lora, s);
        linears.forwardSameInput(s.selfK, s.selfAttnInput, blk, BlockLinear.SELF_ATTN_K, lora, s);
        linears.forwardSameInput(s.selfV, s.selfAttnInput, blk, BlockLinear.SELF_ATTN_V, lora, s);
        backend.rmsNorm(s.selfQRope, s.selfQRstd, s.selfQ, blk.selfAttnNormQ(), eps);
        backend.rmsNorm(s.selfKRope, s.selfKRstd, s.selfK, blk.selfAttnNormK(), eps);
        backend.rope(s.selfQRope, s.selfQRope, a.rope.cos(), a.rope.sin(), heads);
        backend.rope(s.selfKRope, s.selfKRope, a.rope.cos(), a.rope.sin(), heads);
        if (!isRecompute) a.acquireAttentionForWrite(i); // the recompute's caller acquired it for reading
        Tensor selfAttnOut = a.selfAttnOutOf(i);
        if (!(isRecompute && a.key.savesAttentionOutputs())) {
            backend.attention(selfAttnOut, a.selfLseOf(i), s.selfQRope, s.selfKRope, s.selfV, heads);
        }
        linears.forward(a.branchOut, selfAttnOut, blk, BlockLinear.SELF_ATTN_O, lora, s);
        if (!isRecompute) a.releaseAttention(i);
        backend.addGatedResidual(s.afterSelfAttn, x, a.branchOut, mod, 2);

        // Cross-attention, no modulation or gate: x2 = x1 + CrossAttn(LN3(x1), context).
        backend.layerNorm(s.crossAttnInput, s.norm3Mean, s.norm3Rstd, s.afterSelfAttn, blk.norm3Weight(),
                blk.norm3Bias(), eps);
        linears.forward(s.crossQ, s.crossAttnInput, blk, BlockLinear.CROSS_ATTN_Q, lora, s);
        boolean cached = text != null && text.caches() && text.isFilled();
        if (!cached) {
            linears.forward(s.crossK, a.context, blk, BlockLinear.CROSS_ATTN_K, lora, s);
            linears.forwardSameInput(s.crossV, a.context, blk, BlockLinear.CROSS_ATTN_V, lora, s);
        }
        backend.rmsNorm(s.crossQNorm, s.crossQRstd, s.crossQ, blk.crossAttnNormQ(), eps);
        if (!cached) backend.rmsNorm(s.crossKNorm, s.crossKRstd, s.crossK, blk.crossAttnNormK(), eps);
        Tensor crossKeys = s.crossKNorm, crossValues = s.crossV;
        if (text != null && text.caches()) {
            if (!cached) { // the first forward: keep what it computed, unchanged
                backend.copy(text.keys(i), s.crossKNorm);
                backend.copy(text.values(i), s.crossV);
            }
            crossKeys = text.keys(i);
            crossValues = text.values(i);
        }
        backend.attention(s.crossAttnOut, s.crossLse, s.crossQNorm, crossKeys, crossValues, heads);
        linears.forward(a.branchOut, s.crossAttnOut, blk, BlockLinear.CROSS_ATTN_O, lora, s);
        backend.addGatedResidual(s.afterCrossAttn, s.afterSelfAttn, a.branchOut, mod, -1);

        // FFN: h = LN2(x2)·(1 + m4) + m3; out = x2 + ffn.2(GELU(ffn.0(h)))·m5.
        backend.layerNormModulate(s.ffnInput, s.norm2Mean, s.norm2Rstd, s.afterCrossAttn, mod, 3, 4, eps);
        linears.forward(s.ffnHidden, s.ffnInput, blk, BlockLinear.FFN_0, lora, s);
        backend.geluTanh(s.ffnActivated, s.ffnHidden);
        if (isRecompute) {
            // The recompute's block output would equal the saved input of block i + 1, which the backward never reads
            // again: of ffn.2 only its LoRA down(x), kept for the backward, is needed.
            linears.down(s.ffnActivated, blk, BlockLinear.FFN_2, lora, s);
            return;
        }
        linears.forward(a.branchOut, s.ffnActivated, blk, BlockLinear.FFN_2, lora, s);
        a.acquireInputForWrite(i + 1); // as late as possible: the slot's previous store had the whole block to finish
        Tensor out = a.blockInput(i + 1);
        backend.addGatedResidual(out, s.afterCrossAttn, a.branchOut, mod, 5);
    }

    /** m = modulation + e0 (B, 6, C) in fp32 (musubi: {@code self.modulation.to(float32) + e}). */
    private void blockModulation(Block blk, WanDitActivations a) {
        Tensor modulation = blk.modulation().reshape(Shape.of(6, config.dim()));
        for (int b = 0; b < a.key.batch(); b++) {
            backend.add(a.blockModulation.slice(b), modulation, a.e0.slice(b));
        }
    }

    /** Head (§1.5): out = head.head(LN(x)·(1 + c) + s) with (s, c) = head.modulation + e (e, not e0). */
    private void headForward(WanDitActivations a) {
        Tensor modulation = weights.headModulation().reshape(Shape.of(2, config.dim()));
        for (int b = 0; b < a.key.batch(); b++) {
            backend.addRowVector(a.headModulation.slice(b), modulation, a.e.slice(b));
        }
        Tensor x = a.blockInput(config.numLayers());
        backend.layerNormModulate(a.headInput, a.headMean, a.headRstd, x, a.headModulation, 0, 1, config.eps());
        linear(a.headOutput, a.headInput, weights.head());
    }

    /** y = x·Wᵀ + b for a frozen Linear without LoRA. */
    private void linear(Tensor y, Tensor x, Linear lin) {
        backend.gemm(y, x, false, computeWeights.weightOf(lin), true, 1, 0, lin.bias());
    }

    // ================================================================ backward

    /** Backward of {@link #headForward} and the unpatchify: dPred → dStream (=). */
    private void headBackward(WanDitActivations a) {
        backend.unpatchifyBackward(a.dHeadOutput, a.dPred, config.outChannels(), a.key.frames(), a.key.height(),
                a.key.width());
        // forward: headOutput = headInput·Wᵀ + b, so dHeadInput = dHeadOutput·W.
        backend.gemm(a.dHeadInput, a.dHeadOutput, false, computeWeights.weightOf(weights.head()), false, 1, 0, null);
        // forward: headInput = LN(x_last)·(1 + c) + s.
        a.acquireInput(config.numLayers());
        backend.layerNormModulateBackward(a.dStream, a.dHeadInput, a.blockInput(config.numLayers()), a.headMean,
                a.headRstd, a.headModulation, 1, false);
        a.releaseInput(config.numLayers());
    }

    /**
     * Backward of block i: on entry {@code a.dStream} holds d loss / d blockInputs[i + 1]; on exit d loss /
     * d blockInputs[i]. Each residual branch's input gradient is added into dStream in place, in reverse order.
     */
    private void blockBackward(int i, WanDitActivations a, BlockAdapters lora) {
        Block blk = weights.acquireBlock(i); // one residency for the recompute and the backward
        computeWeights.startBlock(i); // one dequantization of each kept backward Linear for the recompute and the backward
        prefetchAfter(i, -1);
        a.acquireInput(i);
        a.acquireAttention(i);
        for (int d = 1; d <= a.key.offload().prefetchDepth(); d++) { // offloaded activations of the next blocks
            a.prefetchInput(i - d);
            a.prefetchAttention(i - d);
        }
        if (gradientCheckpointing) {
            blockForward(blk, a, lora, true, null); // recompute the intermediates from the saved block input
        } else {
            blockModulation(blk, a);
        }
        BlockState s = a.stateOf(i);
        BlockGradients g = a.blockGradients;
        Tensor mod = a.blockModulation;
        int heads = config.numHeads();

        // forward: out = x2 + ffn.2(GELU(ffn.0(h2)))·m5
        backend.gatedResidualBackward(g.dBranchOut, a.dStream, mod, 5);
        linears.backward(g.dFfnHidden, false, g.dBranchOut, s.ffnActivated, blk, BlockLinear.FFN_2, lora, s, g);
        // forward: ffnActivated = GELU(ffnHidden) (in place on the gradient)
        backend.geluTanhBackward(g.dFfnHidden, g.dFfnHidden, s.ffnHidden);
        linears.backward(g.dInput, false, g.dFfnHidden, s.ffnInput, blk, BlockLinear.FFN_0, lora, s, g);
        // forward: ffnInput = LN2(x2)·(1 + m4) + m3
        backend.layerNormModulateBackward(a.dStream, g.dInput, s.afterCrossAttn, s.norm2Mean, s.norm2Rstd, mod, 4, true);

        // forward: x2 = x1 + cross_attn.o(attention(q, k, v))
        backend.gatedResidualBackward(g.dBranchOut, a.dStream, mod, -1);
        linears.backward(g.dAttnOut, false, g.dBranchOut, s.crossAttnOut, blk, BlockLinear.CROSS_ATTN_O, lora, s, g);
        backend.attentionBackward(g.dQ, g.dCrossK, g.dCrossV, g.dAttnOut, s.crossQNorm, s.crossKNorm, s.crossV,
                s.crossAttnOut, s.crossLse, heads);
        // forward: crossV = context·Wvᵀ (+LoRA); context is frozen, only the LoRA gradient is needed.
        linears.backward(null, false, g.dCrossV, a.context, blk, BlockLinear.CROSS_ATTN_V, lora, s, g);
        // forward: crossKNorm = RMSNorm(crossK), crossK = context·Wkᵀ (+LoRA)
        backend.rmsNormBackward(g.dCrossKPre, null, g.dCrossK, s.crossK, blk.crossAttnNormK(), s.crossKRstd);
        linears.backward(null, false, g.dCrossKPre, a.context, blk, BlockLinear.CROSS_ATTN_K, lora, s, g);
        // forward: crossQNorm = RMSNorm(crossQ), crossQ = LN3(x1)·Wqᵀ (+LoRA)
        backend.rmsNormBackward(g.dQPre, null, g.dQ, s.crossQ, blk.crossAttnNormQ(), s.crossQRstd);
        linears.backward(g.dInput, false, g.dQPre, s.crossAttnInput, blk, BlockLinear.CROSS_ATTN_Q, lora, s, g);
        // forward: crossAttnInput = LN3(x1) with affine weight and bias
        backend.layerNormBackward(a.dStream, null, null, g.dInput, s.afterSelfAttn, blk.norm3Weight(), s.norm3Mean,
                s.norm3Rstd, true);

        // forward: x1 = x + self_attn.o(attention(rope(q), rope(k), v))·m2
        backend.gatedResidualBackward(g.dBranchOut, a.dStream, mod, 2);
        linears.backward(g.dAttnOut, false, g.dBranchOut, a.selfAttnOutOf(i), blk, BlockLinear.SELF_ATTN_O, lora, s,
                g);
        backend.attentionBackward(g.dQ, g.dK, g.dV, g.dAttnOut, s.selfQRope, s.selfKRope, s.selfV, a.selfAttnOutOf(i),
                a.selfLseOf(i), heads);
        a.releaseAttention(i);
        // forward: selfQRope = rope(RMSNorm(selfQ)), likewise k (rope's backward is the inverse rotation, in place)
        backend.ropeBackward(g.dQ, g.dQ, a.rope.cos(), a.rope.sin(), heads);
        backend.ropeBackward(g.dK, g.dK, a.rope.cos(), a.rope.sin(), heads);
        backend.rmsNormBackward(g.dQPre, null, g.dQ, s.selfQ, blk.selfAttnNormQ(), s.selfQRstd);
        backend.rmsNormBackward(g.dKPre, null, g.dK, s.selfK, blk.selfAttnNormK(), s.selfKRstd);
        // forward: q, k, v = h1·W{q,k,v}ᵀ (+LoRA): the three input gradients add up
        linears.backward(g.dInput, false, g.dQPre, s.selfAttnInput, blk, BlockLinear.SELF_ATTN_Q, lora, s, g);
        linears.backward(g.dInput, true, g.dKPre, s.selfAttnInput, blk, BlockLinear.SELF_ATTN_K, lora, s, g);
        linears.backward(g.dInput, true, g.dV, s.selfAttnInput, blk, BlockLinear.SELF_ATTN_V, lora, s, g);
        // forward: h1 = LN1(x)·(1 + m1) + m0
        backend.layerNormModulateBackward(a.dStream, g.dInput, a.blockInput(i), s.norm1Mean, s.norm1Rstd, mod, 1, true);
        a.releaseInput(i);
        computeWeights.endBlock();
        weights.releaseBlock(i);
    }

    /** Prefetches the blocks after i in a pass's direction (+1 forward, −1 backward), one per spare streaming slot. */
    private void prefetchAfter(int i, int direction) {
        for (int d = 1; d < weights.swap().slots(); d++) weights.prefetchBlock(i + d * direction);
    }

    // ================================================================ helpers

    /** Checks shapes; returns xt's dims (B, Cin, F, H, W). */
    private long[] checkInputs(Tensor xt, Tensor timesteps, List<Tensor> contexts) {
        long[] d = checkLatent(xt);
        if (!timesteps.shape().equals(Shape.of(d[0])) || timesteps.dtype() != DType.F32) {
            throw new IllegalArgumentException("WanDit.forward: timesteps must be (B) F32 with B = " + d[0] + "; got "
                    + timesteps.shape() + " " + timesteps.dtype());
        }
        checkContexts(contexts, d[0]);
        return d;
    }

    /** Checks x_t's shape; returns its dims (B, Cin, F, H, W). */
    private long[] checkLatent(Tensor xt) {
        long[] d = xt.shape().dims();
        if (d.length != 5 || d[1] != config.inChannels() || d[3] % 2 != 0 || d[4] % 2 != 0) {
            throw new IllegalArgumentException("WanDit.forward: x_t must be (B, " + config.inChannels()
                    + ", F, H, W) with even H and W; got " + xt.shape());
        }
        return d;
    }

    /** Checks one (L_b, Ct) context per batch row, L_b ≤ K. */
    private void checkContexts(List<Tensor> contexts, long batch) {
        if (contexts.size() != batch) {
            throw new IllegalArgumentException("WanDit.forward: one context per sample expected; got " + contexts.size()
                    + " contexts for B = " + batch);
        }
        for (int b = 0; b < contexts.size(); b++) {
            Shape c = contexts.get(b).shape();
            if (c.rank() != 2 || c.dim(1) != config.textDim() || c.dim(0) > config.textLen()) {
                throw new IllegalArgumentException("WanDit.forward: context " + b + " must be (L, " + config.textDim()
                        + ") with L ≤ " + config.textLen() + "; got " + c);
            }
        }
    }
}
