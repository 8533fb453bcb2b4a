package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.rope.Rope3d;
import dev.wanlora.engine.stream.ActivationOffload;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Every buffer one forward + backward of the DiT needs for one input shape (B, F, H, W) and LoRA rank R, allocated
 * once and reused for every step with that shape. The buffers, their dtypes and shapes are those of the plan's
 * {@link WanDitActivationLayout}, which the memory plan counts: the constructor allocates that list and binds each
 * field to its buffer by name, so what is planned is what is allocated.
 *
 * <p>Dtypes: "act" is the {@link ComputePrecision}'s activation dtype (F32 or BF16); time embedding, modulation, norm
 * statistics, attention log-sum-exp, RoPE tables, the prediction and its gradient are always F32.
 *
 * <p>With gradient checkpointing (and for a forward without backward) there is one {@link BlockState}, reused by every
 * block in the forward and refilled by the recompute in the backward; the blocks' inputs {@link #blockInputs} are the
 * only saved activations. Without it ({@link Key#keepsBlockIntermediates()}) there is one {@link BlockState} per block,
 * so the backward reads the forward's intermediates.
 *
 * <p>{@link Key#savesAttentionOutputs()} (checkpointing only) adds one self-attention output and log-sum-exp per block,
 * written by the forward and read by the backward, so the recompute skips the self-attention call; the shared
 * {@link BlockState} then has no self-attention output or log-sum-exp of its own.
 *
 * <p>{@link Key#forwardOnly()} (sampling): a forward that no backward will follow. The residual stream ping-pongs
 * between two buffers instead of keeping every block's input, there is one {@link BlockState}, and no gradient
 * buffer exists ({@link #dPred}, {@link #dHeadOutput}, {@link #dStream},
 * {@link #blockGradients}, {@link #dHeadInput} are null).
 */
public final class WanDitActivations implements AutoCloseable {

    /**
     * The shape key of a plan. {@code savesAttentionOutputs}: keep every block's self-attention output and
     * log-sum-exp through gradient checkpointing (false when {@code keepsBlockIntermediates}, which keeps them anyway).
     * {@code offload}: which saved activations live in host memory ({@link Offload#NONE}: none).
     */
    public record Key(int batch, int frames, int height, int width, int loraRank, boolean keepsBlockIntermediates,
                      boolean savesAttentionOutputs, Offload offload, boolean forwardOnly) {
        public Key {
            if (keepsBlockIntermediates && savesAttentionOutputs) {
                throw new IllegalArgumentException("WanDitActivations.Key: savesAttentionOutputs needs gradient"
                        + " checkpointing (keepsBlockIntermediates false); without it every block keeps its attention output");
            }
            if (offload.isOffloading() && keepsBlockIntermediates) {
                throw new IllegalArgumentException("WanDitActivations.Key: activation offload needs gradient checkpointing"
                        + " (keepsBlockIntermediates false); got " + offload);
            }
            if (offload.attentionOutputs() > 0 && !savesAttentionOutputs) {
                throw new IllegalArgumentException("WanDitActivations.Key: offloaded attention outputs need"
                        + " savesAttentionOutputs; got " + offload);
            }
            if (forwardOnly && (keepsBlockIntermediates || savesAttentionOutputs || offload.isOffloading())) {
                throw new IllegalArgumentException("WanDitActivations.Key: a forward-only plan keeps no intermediates,"
                        + " saves no attention outputs and offloads nothing");
            }
        }

        /** A training key (forward followed by a backward). */
        public Key(int batch, int frames, int height, int width, int loraRank, boolean keepsBlockIntermediates,
                   boolean savesAttentionOutputs, Offload offload) {
            this(batch, frames, height, width, loraRank, keepsBlockIntermediates, savesAttentionOutputs, offload, false);
        }

        /** A forward-only key (sampling), see {@link WanDitActivations}. */
        public static Key forwardOnly(int batch, int frames, int height, int width, int loraRank) {
            return new Key(batch, frames, height, width, loraRank, false, false, Offload.NONE, true);
        }

        /** A key without offload. */
        public Key(int batch, int frames, int height, int width, int loraRank, boolean keepsBlockIntermediates,
                   boolean savesAttentionOutputs) {
            this(batch, frames, height, width, loraRank, keepsBlockIntermediates, savesAttentionOutputs, Offload.NONE);
        }

        /** A key without saved attention outputs or offload. */
        public Key(int batch, int frames, int height, int width, int loraRank, boolean keepsBlockIntermediates) {
            this(batch, frames, height, width, loraRank, keepsBlockIntermediates, false, Offload.NONE);
        }

        /** This key with {@code o} as its offload. */
        public Key withOffload(Offload o) {
            return new Key(batch, frames, height, width, loraRank, keepsBlockIntermediates, savesAttentionOutputs, o,
                    forwardOnly);
        }

        /** L = F·(H/2)·(W/2). */
        public long tokens() { return (long) frames * (height / 2) * (width / 2); }
    }

    /**
     * Activation offload (gradient checkpointing only; {@link dev.wanlora.engine.stream.ActivationOffload}): the
     * saved inputs of blocks 0 … {@code blockInputs} − 1 and the saved self-attention outputs (with log-sum-exp) of
     * blocks 0 … {@code attentionOutputs} − 1 live in host memory and pass through rings of {@code ringSlots} device
     * slots each (the forward holds two inputs at once; the backward prefetches {@code ringSlots} − 1 items ahead).
     */
    public record Offload(int blockInputs, int attentionOutputs, int ringSlots) {
        public static final Offload NONE = new Offload(0, 0, 0);

        public Offload {
            if (blockInputs < 0 || attentionOutputs < 0 || ((blockInputs > 0 || attentionOutputs > 0) && ringSlots < 2)) {
                throw new IllegalArgumentException("WanDitActivations.Offload: expected counts ≥ 0 and, when offloading,"
                        + " at least 2 ring slots; got " + blockInputs + " block inputs, " + attentionOutputs
                        + " attention outputs, " + ringSlots + " slots");
            }
        }

        public boolean isOffloading() { return blockInputs > 0 || attentionOutputs > 0; }

        /** Backward prefetch depth: items loaded ahead of the one being computed. */
        public int prefetchDepth() { return Math.max(0, ringSlots - 1); }
    }

    private final List<Tensor> owned = new ArrayList<>();
    /** Buffers allocated from the layout and not yet bound to a field (empty once constructed). */
    private final Map<String, Tensor> unbound = new HashMap<>();
    private final Backend backend;
    private final WanDitActivationLayout layout;
    /** Per saved block input / attention output: its slot's tensors while acquired from an offload, else null. */
    private final Tensor[][] acquiredInputs, acquiredAttention;

    public final Key key;
    /** L = F·(H/2)·(W/2). */
    public final int tokens;
    /** K text tokens (512). */
    public final int textTokens;

    // ---------------------------------------------------------------- embeddings
    /** (B, L, P) act: 64-element patch vectors of x_t (rounded to bf16 under BF16_MUSUBI, as autocast does). */
    public final Tensor patches;
    /** (B, Tf) F32: [cos, sin] of timestep·ω. */
    public final Tensor sinusoid;
    /** (B, C) F32: SiLU(time_embedding.0(sinusoid)). */
    public final Tensor timeHidden;
    /** (B, C) F32: e = time_embedding output (the head's modulation input). */
    public final Tensor e;
    /** (B, C) F32: SiLU(e), time_projection's input. */
    public final Tensor eSilu;
    /** (B, 6, C) F32: e0 = time_projection output (the blocks' modulation input). */
    public final Tensor e0;
    /** (B, K, Ct) act: each context zero-padded to K rows. */
    public final Tensor contextPadded;
    /** (B, K, C) act: GELU(text_embedding.0(contextPadded)). */
    public final Tensor textHidden;
    /** (B, K, C) act: the embedded context every cross-attention reads. */
    public final Tensor context;
    /** (L, D/2) F32: RoPE cos and sin for the (F, H/2, W/2) grid. */
    public final Rope3d.Tables rope;

    // ---------------------------------------------------------------- blocks
    /**
     * numLayers + 1 tensors (B, L, C) act: blockInputs[i] is the residual stream entering block i; [numLayers] leaves
 the last. Null for the offloaded ones (i &lt; {@link Offload#blockInputs()}): use {@link #blockInput(int)}.
     * Forward-only plans have 2 (the residual stream ping-pongs; {@link #blockInput(int)} maps block i to i % 2).
     */
    public final Tensor[] blockInputs;
    /** The saved block inputs as items of an offload (every one resident without {@link Key#offload()}). */
    public final ActivationOffload savedInputs;
    /** With {@link Key#savesAttentionOutputs()}: the saved (self-attention output, log-sum-exp) of each block; else null. */
    public final ActivationOffload savedAttention;
    /** (B, 6, C) F32: modulation + e0 of the block being run (recomputed per block; cheap). */
    public final Tensor blockModulation;
    /** One per block without checkpointing; a single reused one with checkpointing. */
    public final BlockState[] blockStates;
    /**
     * With {@link Key#savesAttentionOutputs()}: numLayers tensors (B, L, C) act, each block's self-attention output,
     * and numLayers (B, N, L) F32, its log-sum-exp (null for the offloaded ones: use {@link #savedAttention}); empty
     * otherwise.
     */
    public final Tensor[] savedSelfAttnOut, savedSelfLse;
    /** (B, L, C) act: a branch's output before its residual add (self-attn o, cross-attn o, ffn.2). */
    public final Tensor branchOut;

    // ---------------------------------------------------------------- head
    /** (B, 2, C) F32: head.modulation + e. */
    public final Tensor headModulation;
    /** (B, L) F32: statistics of the head's LayerNorm. */
    public final Tensor headMean;
    public final Tensor headRstd;
    /**
     * (B, L, C) act: modulated head input, bf16 under BF16_MUSUBI (autocast casts it for the Linear). Shares
     * {@link #branchOut}.
     */
    public final Tensor headInput;
    /** (B, L, 4·Cout) act: head Linear output, feature ph·32 + pw·16 + ch. */
    public final Tensor headOutput;
    /** (B, Cout, F, H, W) F32: the prediction. */
    public final Tensor pred;

    // ---------------------------------------------------------------- backward
    /** (B, Cout, F, H, W) F32: d loss / d pred, written by the caller's loss ({@link WanDit#predictionGradient()}). */
    public final Tensor dPred;
    /** (B, L, 4·Cout) act. */
    public final Tensor dHeadOutput;
    /**
     * (B, L, C) act: gradient w.r.t. the head's modulated input; it shares the block gradients' dInput (the head's
     * backward runs before any block's).
     */
    public final Tensor dHeadInput;
    /** (B, L, C) act: gradient of the residual stream, updated in place block by block (branch grads are added). */
    public final Tensor dStream;
    public final BlockGradients blockGradients;

    /** Forward intermediates of one block that its backward reads (shapes for this plan). */
    public static final class BlockState {
        /** (B, L) F32 LayerNorm statistics of norm1, norm3, norm2. */
        public final Tensor norm1Mean, norm1Rstd, norm3Mean, norm3Rstd, norm2Mean, norm2Rstd;
        /** (B, L, C) act: modulated norm1 output, input of self_attn q/k/v. */
        public final Tensor selfAttnInput;
        /** (B, L, C) act: q and k before their RMSNorm. */
        public final Tensor selfQ, selfK;
        /** (B, L) F32: RMSNorm statistics of q and k. */
        public final Tensor selfQRstd, selfKRstd;
        /** (B, L, C) act: q and k after RMSNorm and RoPE (attention inputs); v. */
        public final Tensor selfQRope, selfKRope, selfV;
        /** (B, N, L) F32; null with saved attention outputs (use {@link #selfLseOf}). */
        public final Tensor selfLse;
        /** (B, L, C) act: attention output (input of self_attn.o); null with saved attention outputs ({@link #selfAttnOutOf}). */
        public final Tensor selfAttnOut;
        /** (B, L, C) act: the stream after the self-attention residual (norm3's input). */
        public final Tensor afterSelfAttn;
        /** (B, L, C) act: norm3 output, input of cross_attn.q. */
        public final Tensor crossAttnInput;
        /** (B, L, C) act: cross q before / after RMSNorm; (B, L) F32 its statistics. */
        public final Tensor crossQ, crossQNorm, crossQRstd;
        /** (B, K, C) act: cross k before / after RMSNorm, v; (B, K) F32 k's statistics. */
        public final Tensor crossK, crossKNorm, crossV, crossKRstd;
        /** (B, N, L) F32. */
        public final Tensor crossLse;
        /** (B, L, C) act: attention output (input of cross_attn.o). */
        public final Tensor crossAttnOut;
        /** (B, L, C) act: the stream after the cross-attention residual (norm2's input). */
        public final Tensor afterCrossAttn;
        /** (B, L, C) act: modulated norm2 output, input of ffn.0. */
        public final Tensor ffnInput;
        /** (B, L, Fd) act: ffn.0 output before GELU, and after it (input of ffn.2). */
        public final Tensor ffnHidden, ffnActivated;
        /** Per {@link WanDitWeights.BlockLinear} ordinal: (rows, R) act down(x) of its LoRA; rows = B·L, or B·K for cross k/v. */
        public final Tensor[] loraHidden;

        private BlockState(WanDitActivations a, int i) {
            String p = "state" + i + ".";
            norm1Mean = a.take(p + "norm1Mean"); norm1Rstd = a.take(p + "norm1Rstd");
            norm3Mean = a.take(p + "norm3Mean"); norm3Rstd = a.take(p + "norm3Rstd");
            norm2Mean = a.take(p + "norm2Mean"); norm2Rstd = a.take(p + "norm2Rstd");
            selfAttnInput = a.take(p + "selfAttnInput");
            selfQ = a.take(p + "selfQ"); selfK = a.take(p + "selfK");
            selfQRstd = a.take(p + "selfQRstd"); selfKRstd = a.take(p + "selfKRstd");
            selfQRope = a.take(p + "selfQRope"); selfKRope = a.take(p + "selfKRope"); selfV = a.take(p + "selfV");
            boolean saved = a.key.savesAttentionOutputs();
            selfLse = saved ? null : a.take(p + "selfLse");
            selfAttnOut = saved ? null : a.take(p + "selfAttnOut");
            afterSelfAttn = a.take(p + "afterSelfAttn");
            crossAttnInput = a.take(p + "crossAttnInput");
            crossQ = a.take(p + "crossQ"); crossQNorm = a.take(p + "crossQNorm"); crossQRstd = a.take(p + "crossQRstd");
            crossK = a.take(p + "crossK"); crossKNorm = a.take(p + "crossKNorm"); crossV = a.take(p + "crossV");
            crossKRstd = a.take(p + "crossKRstd");
            crossLse = a.take(p + "crossLse");
            crossAttnOut = a.take(p + "crossAttnOut");
            afterCrossAttn = a.take(p + "afterCrossAttn");
            ffnInput = a.take(p + "ffnInput");
            ffnHidden = a.take(p + "ffnHidden");
            ffnActivated = a.take(p + "ffnActivated");
            loraHidden = new Tensor[WanDitWeights.BlockLinear.values().length];
            if (a.key.loraRank() > 0) {
                for (WanDitWeights.BlockLinear layer : WanDitWeights.BlockLinear.values()) {
                    loraHidden[layer.ordinal()] = a.take(p + "loraHidden." + layer.ordinal());
                }
            }
        }
    }

    /** Backward scratch of one block, shared by all blocks (act dtype). */
    public static final class BlockGradients {
        /** (B, L, C): gradient of a branch output (o / ffn.2 output), of the attention outputs. */
        public final Tensor dBranchOut, dAttnOut;
        /** (B, L, C): attention input grads (after RoPE/RMSNorm: dQ, dK; v: dV). */
        public final Tensor dQ, dK, dV;
        /**
         * (B, L, C): q and k grads before their RMSNorm. dQPre shares dBranchOut's storage and dKPre dAttnOut's: each is
         * written only after the o-projection's and the attention's backward have finished reading those.
         */
        public final Tensor dQPre, dKPre;
        /** (B, L, C): gradient of a Linear group's input (q/k/v, cross q, ffn.0). */
        public final Tensor dInput;
        /** (B, K, C): cross-attention k, v grads; k before RMSNorm. */
        public final Tensor dCrossK, dCrossV, dCrossKPre;
        /** (B, L, Fd): gradient of ffn.2's input, then (in place) of ffn.0's output. */
        public final Tensor dFfnHidden;
        /** (B·max(L, K), R): gradient of a LoRA down(x). */
        public final Tensor dLoraHidden;

        private BlockGradients(WanDitActivations a) {
            dBranchOut = a.take("grad.dBranchOut"); dAttnOut = a.take("grad.dAttnOut");
            dQ = a.take("grad.dQ"); dK = a.take("grad.dK"); dV = a.take("grad.dV");
            dQPre = dBranchOut;
            dKPre = dAttnOut;
            dInput = a.take("grad.dInput");
            dCrossK = a.take("grad.dCrossK"); dCrossV = a.take("grad.dCrossV"); dCrossKPre = a.take("grad.dCrossKPre");
            dFfnHidden = a.take("grad.dFfnHidden");
            dLoraHidden = a.take("grad.dLoraHidden");
        }
    }

    /**
     * Allocates the plan. height and width are latent sizes (even); {@code loraRank} is the largest LoRA rank that
     * will run with it (0: no LoRA); {@code keepsBlockIntermediates} gives every block its own {@link BlockState}.
     */
    public WanDitActivations(Backend backend, WanDitConfig config, ComputePrecision precision, Key key) {
        if (key.height() % 2 != 0 || key.width() % 2 != 0 || key.batch() <= 0 || key.frames() <= 0) {
            throw new IllegalArgumentException("WanDit: latent shape must have B, F > 0 and even H, W (patch 1×2×2); got"
                    + " B=" + key.batch() + " F=" + key.frames() + " H=" + key.height() + " W=" + key.width());
        }
        this.backend = backend;
        this.key = key;
        this.layout = WanDitActivationLayout.of(config, precision, key);
        this.acquiredInputs = new Tensor[config.numLayers() + 1][];
        this.acquiredAttention = new Tensor[config.numLayers()][];
        this.tokens = Math.toIntExact(key.tokens());
        this.textTokens = config.textLen();
        try {
            for (WanDitActivationLayout.Buffer buffer : layout.buffers()) {
                Tensor t = backend.allocate(buffer.dtype(), buffer.shape());
                owned.add(t);
                unbound.put(buffer.name(), t);
            }
            patches = take("patches");
            sinusoid = take("sinusoid");
            timeHidden = take("timeHidden");
            e = take("e");
            eSilu = take("eSilu");
            e0 = take("e0");
            contextPadded = take("contextPadded");
            textHidden = take("textHidden");
            context = take("context");
            rope = new Rope3d.Tables(take("rope.cos"), take("rope.sin"));
            Rope3d.write(backend, rope, key.frames(), key.height() / 2, key.width() / 2, config.headDim());

            Offload offload = key.offload();
            savedInputs = ActivationOffload.open(backend, layout.savedInputLayout(), layout.savedInputItems(),
                    offload.blockInputs(), offload.ringSlots());
            blockInputs = new Tensor[layout.savedInputItems()];
            for (int i = offload.blockInputs(); i < blockInputs.length; i++) blockInputs[i] = savedInputs.acquire(i).getFirst();
            blockModulation = take("blockModulation");
            blockStates = new BlockState[key.keepsBlockIntermediates() ? config.numLayers() : 1];
            for (int i = 0; i < blockStates.length; i++) blockStates[i] = new BlockState(this, i);
            int savedCount = layout.savedAttentionItems();
            savedAttention = savedCount == 0 ? null : ActivationOffload.open(backend, layout.savedAttentionLayout(),
                    savedCount, offload.attentionOutputs(), offload.ringSlots());
            savedSelfAttnOut = new Tensor[savedCount];
            savedSelfLse = new Tensor[savedCount];
            for (int i = offload.attentionOutputs(); i < savedCount; i++) {
                List<Tensor> saved = savedAttention.acquire(i);
                savedSelfAttnOut[i] = saved.get(0);
                savedSelfLse[i] = saved.get(1);
            }
            branchOut = take("branchOut");

            headModulation = take("headModulation");
            headMean = take("headMean");
            headRstd = take("headRstd");
            headInput = branchOut;
            headOutput = take("headOutput");
            pred = take("pred");

            boolean backward = !key.forwardOnly();
            dPred = backward ? take("dPred") : null;
            dHeadOutput = backward ? take("dHeadOutput") : null;
            dStream = backward ? take("dStream") : null;
            blockGradients = backward ? new BlockGradients(this) : null;
            dHeadInput = backward ? blockGradients.dInput : null;
            if (!unbound.isEmpty()) {
                throw new IllegalStateException("WanDitActivations: layout buffers " + unbound.keySet() + " have no field");
            }
        } catch (RuntimeException ex) {
            close();
            throw ex;
        }
    }

    /** The block state block {@code i} writes (index 0 for every block with checkpointing). */
    public BlockState stateOf(int block) {
        return blockStates[blockStates.length == 1 ? 0 : block];
    }

    /** Block {@code i}'s self-attention output (B, L, C) act: its saved one (acquired when offloaded), or its block state's. */
    public Tensor selfAttnOutOf(int block) {
        if (savedSelfAttnOut.length == 0) return stateOf(block).selfAttnOut;
        return savedSelfAttnOut[block] != null ? savedSelfAttnOut[block] : acquired(acquiredAttention, block, "attention output")[0];
    }

    /** Block {@code i}'s self-attention log-sum-exp (B, N, L) F32: its saved one (acquired when offloaded), or its block state's. */
    public Tensor selfLseOf(int block) {
        if (savedSelfLse.length == 0) return stateOf(block).selfLse;
        return savedSelfLse[block] != null ? savedSelfLse[block] : acquired(acquiredAttention, block, "attention output")[1];
    }

    /** The residual stream entering block i (i = numLayers: leaving the last), resident or acquired from the offload. */
    public Tensor blockInput(int i) {
        int j = slot(i);
        return blockInputs[j] != null ? blockInputs[j] : acquired(acquiredInputs, j, "block input")[0];
    }

    /** Block input i's item: i itself, or i % 2 in a forward-only plan (the ping-pong pair). */
    private int slot(int i) { return key.forwardOnly() ? i % 2 : i; }

    // The offload's use protocol (ActivationOffload): the forward acquires an item for writing, the backward for
    // reading; both release it after queueing their last op on it. Resident items make these no-ops.

    public void acquireInputForWrite(int i) { acquiredInputs[slot(i)] = savedInputs.acquireForWrite(slot(i)).toArray(Tensor[]::new); }

    public void acquireInput(int i) { acquiredInputs[slot(i)] = savedInputs.acquire(slot(i)).toArray(Tensor[]::new); }

    public void releaseInput(int i) {
        savedInputs.release(slot(i));
        acquiredInputs[slot(i)] = null;
    }

    public void prefetchInput(int i) { savedInputs.prefetch(slot(i)); }

    /** With saved attention outputs: block i's (output, log-sum-exp) for the forward to write. */
    public void acquireAttentionForWrite(int i) {
        if (savedAttention != null) acquiredAttention[i] = savedAttention.acquireForWrite(i).toArray(Tensor[]::new);
    }

    public void acquireAttention(int i) {
        if (savedAttention != null) acquiredAttention[i] = savedAttention.acquire(i).toArray(Tensor[]::new);
    }

    public void releaseAttention(int i) {
        if (savedAttention == null) return;
        savedAttention.release(i);
        acquiredAttention[i] = null;
    }

    public void prefetchAttention(int i) {
        if (savedAttention != null && i >= 0) savedAttention.prefetch(i);
    }

    private static Tensor[] acquired(Tensor[][] acquired, int i, String what) {
        if (acquired[i] == null) {
            throw new IllegalStateException("WanDitActivations: the offloaded " + what + " " + i + " is not acquired");
        }
        return acquired[i];
    }

    /**
     * Bytes {@code new WanDitActivations(…, key)} will allocate, without allocating (for planning memory before
     * loading anything): its {@link WanDitActivationLayout}'s, the list the constructor allocates from.
     */
    public static long sizeBytes(WanDitConfig config, ComputePrecision precision, Key key) {
        return WanDitActivationLayout.of(config, precision, key).deviceBytes();
    }

    /** Total device bytes of every buffer of this plan (for the startup memory report): its layout's. */
    public long sizeBytes() { return layout.deviceBytes(); }

    /** The layout buffer {@code name}, bound to the field being initialised (each exactly once). */
    private Tensor take(String name) {
        Tensor t = unbound.remove(name);
        if (t == null) throw new IllegalStateException("WanDitActivations: no unbound layout buffer " + name);
        return t;
    }

    @Override
    public void close() {
        owned.forEach(Tensor::close);
        owned.clear();
        if (savedInputs != null) savedInputs.close();
        if (savedAttention != null) savedAttention.close();
    }
}
