package dev.wanlora.models.sampling;

import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.umt5.UmT5Config;
import dev.wanlora.models.umt5.UmT5Weights;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.CrossAttentionContext;
import dev.wanlora.models.wan.TimeEmbeddings;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanMemoryPlan;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;

/**
 * The device memory of sampling (DESIGN.md §6 for {@code wanlora sample} and training's samples), phase by phase,
 * from the settings alone. The phases run one after another and each frees what the next does not need, so a run
 * fits when every phase fits:
 * <ol>
 * <li><b>encode</b>: the umT5 encoder (resident, or its last N layers streamed through {@link BlockStreamer} slots,
 *     {@link UmT5Weights.Streaming}) and its working buffers for one 512-token prompt, plus the encoded prompts; the
 *     encoder is closed before the DiT loads (musubi deletes T5);</li>
 * <li><b>denoise</b>: the DiT as {@link WanMemoryPlan} counts it (resident weights, swap slots, fp8 dequantization
 *     scratch), one LoRA (fp32 down/up, its gradient buffer, compute-dtype copies), the forward-only activations of the
 *     largest prompt ({@link WanDitActivations#sizeBytes} of a {@link WanDitActivations.Key#forwardOnly} key), the
 *     latent, the encoded prompts, what one sample keeps constant over its steps (each step's time embedding and, when
 *     it fits, the cross-attention k/v of its prompt and negative prompt: {@link #crossAttentionCacheBytes}) and the
 *     VAE decoder's weights (it is opened for the whole sampling phase);</li>
 * <li><b>decode</b>: the same minus the forward-only activations (freed before each decode) plus the decoder's working
 *     memory at the largest frame ({@code WanVae.decodeWorkingBytes}, freed after each decode).</li>
 * </ol>
 * CFG runs cond and uncond as one batch-2 forward ({@link DenoisingLoop.CfgMode#BATCH_2}: a batch-2 forward-only plan)
 * where the budget has room for it, else as two batch-1 forwards (as musubi does: a batch-1 plan); see {@link Choice}.
 * The caller adds what it allocates itself (the CUDA runtime, the allocation margin) as {@link Settings#others()}.
 */
public final class SamplingMemoryPlan {
    private SamplingMemoryPlan() {}

    /** Plan categories, in print order. */
    public static final String T5_WEIGHTS = "umT5 weights resident";
    public static final String T5_SLOTS = "umT5 layer slots";
    public static final String T5_WORK = "umT5 encode buffers";
    public static final String CONTEXTS = "encoded prompts";
    public static final String LORA = "LoRA";
    public static final String ACTIVATIONS = "forward-only activations";
    public static final String LATENTS = "latents";
    public static final String DECODER = "VAE decoder weights";
    public static final String DECODER_WORK = "VAE decode buffers";
    public static final String STEP_CONSTANTS = "per-sample constants";
    /** The category of {@link #duringTraining} in a training plan. */
    public static final String DURING_TRAINING = "sampling";

    /**
     * The umT5 encoder of the encode phase.
     *
     * @param dtype compute dtype (BF16 on the GPU, F32 on the CPU reference)
     * @param fp8   --fp8_t5: Linear weights as fp8 codes + F32 block scales
     * @param slots device slots of the layer ring when layers stream
     */
    public record TextEncoder(UmT5Config config, DType dtype, boolean fp8, int slots) {}

    /**
     * What the plan depends on.
     *
     * @param dit             the DiT's settings; {@code shapes} holds one forward-only key per prompt (batch 1, its
     *                        latent frames, height, width and the largest LoRA rank)
     * @param loraParameters  the largest LoRA's parameter count (one LoRA is loaded at a time); 0 without a LoRA
     * @param textEncoder     the umT5 encoder, or null when the encoder is not planned (the demo's stand-ins)
     * @param promptTokens    Σ over the distinct encoded texts of their token counts (at most 512 each)
     * @param steps           the most denoising steps of a prompt
     * @param contextsPerSample 2 when a prompt runs CFG (prompt and negative prompt), else 1
     * @param decoderWeightBytes  the VAE decoder's weights on the device (0 when unknown)
     * @param decoderWorkBytes    the decoder's working memory at the largest prompt's frame (0 when unknown)
     * @param others          categories the caller allocates, present in every phase
     */
    public record Settings(WanMemoryPlan.Settings dit, long loraParameters, TextEncoder textEncoder, long promptTokens,
                           int steps, int contextsPerSample, long decoderWeightBytes, long decoderWorkBytes,
                           List<MemoryPlan.Item> others) {
        public Settings {
            others = List.copyOf(others);
            if (steps < 1 || contextsPerSample < 1 || contextsPerSample > 2) {
                throw new IllegalArgumentException("SamplingMemoryPlan: expected ≥ 1 step and 1 or 2 contexts per sample;"
                        + " got " + steps + " and " + contextsPerSample);
            }
            for (WanDitActivations.Key k : dit.shapes()) {
                if (!k.forwardOnly()) throw new IllegalArgumentException("SamplingMemoryPlan: shape " + k + " is not forward-only");
            }
        }

        DType act() { return dit.precision().activationDType(); }
    }

    /** The three phases' plans; the run fits when each does. */
    public record Phases(MemoryPlan encode, MemoryPlan denoise, MemoryPlan decode) {
        public boolean fits(long budgetBytes) {
            return encode.fits(budgetBytes) && denoise.fits(budgetBytes) && decode.fits(budgetBytes);
        }

        /** The largest phase total: what the run needs at its peak. */
        public long peakBytes() {
            return Math.max(encode.totalBytes(), Math.max(denoise.totalBytes(), decode.totalBytes()));
        }

        /** The plan as printed: each phase's lines under its name, then the peak against the budget. */
        public List<String> format(long budgetBytes) {
            List<String> lines = new ArrayList<>();
            String[] names = {"encode prompts (before the DiT loads)", "denoise", "decode"};
            MemoryPlan[] plans = {encode, denoise, decode};
            for (int i = 0; i < plans.length; i++) {
                lines.add(" phase " + (i + 1) + ", " + names[i] + ":");
                lines.addAll(plans[i].format(budgetBytes));
            }
            lines.add(String.format(Locale.ROOT, " peak %s%s", MemoryPlan.formatBytes(peakBytes()), budgetBytes <= 0 ? ""
                    : " of " + MemoryPlan.formatBytes(budgetBytes) + (fits(budgetBytes) ? ", fits" : ", DOES NOT FIT")));
            return lines;
        }
    }

    /**
     * One configuration: DiT blocks streamed (--blocks_to_swap), umT5 layers streamed, whether each sample keeps the
     * cross-attention k/v of its texts ({@link #crossAttentionCacheBytes}), and how CFG runs its two passes (at batch 2
     * the forward-only activations are planned for batch 2).
     */
    public record Choice(int blocksToSwap, int t5LayersStreamed, boolean cachesCrossAttention, DenoisingLoop.CfgMode cfgMode) {}

    /**
     * The choice for {@code blocksToSwap} streamed blocks (chosen before, never raised here) and {@code t5LayersStreamed}:
     * CFG as one batch-2 forward where its activations fit {@code budgetBytes} (≤ 0: no budget, always), else two batch-1
     * forwards; then the k/v cache where it still fits. Batch 2 comes first: it halves the reads (and fp8
     * dequantizations, and uploads of streamed blocks) of every block weight per step, where the cache saves the text's
     * k/v projections alone (two (K, C)·(C, C) GEMMs per block and pass, ~1 % of a 14B forward at 6912 tokens).
     */
    public static Choice choose(Settings s, int blocksToSwap, int t5LayersStreamed, long budgetBytes) {
        DenoisingLoop.CfgMode mode = s.contextsPerSample() == 2
                && (budgetBytes <= 0 || denoisePlan(s, blocksToSwap, true, false, DenoisingLoop.CfgMode.BATCH_2).fits(budgetBytes))
                ? DenoisingLoop.CfgMode.BATCH_2 : DenoisingLoop.CfgMode.TWO_BATCH_1;
        boolean caches = budgetBytes <= 0 || denoisePlan(s, blocksToSwap, true, true, mode).fits(budgetBytes);
        return new Choice(blocksToSwap, t5LayersStreamed, caches, mode);
    }

    /** The phases of a choice. */
    public static Phases plan(Settings s, Choice choice) {
        return new Phases(encodePlan(s, choice.t5LayersStreamed()),
                denoisePlan(s, choice.blocksToSwap(), true, choice.cachesCrossAttention(), choice.cfgMode()),
                denoisePlan(s, choice.blocksToSwap(), false, choice.cachesCrossAttention(), choice.cfgMode()));
    }

    /**
     * Device bytes of one sample's kept cross-attention k/v: {@link CrossAttentionContext#cacheBytes} per text (prompt,
     * and negative prompt under CFG). 14B bf16 with CFG: 800 MiB.
     */
    public static long crossAttentionCacheBytes(Settings s) {
        return s.contextsPerSample() * CrossAttentionContext.cacheBytes(s.dit().config(), s.dit().precision());
    }

    /**
     * Whether the k/v cache fits with {@code blocksToSwap} streamed blocks and CFG as {@code cfgMode} (always without a
     * budget): the cache is taken only where it fits, never at the price of streaming more blocks (streaming a block
     * costs more than recomputing the k/v projections of the text).
     */
    public static boolean fitsCrossAttentionCache(Settings s, int blocksToSwap, long budgetBytes,
                                                  DenoisingLoop.CfgMode cfgMode) {
        return budgetBytes <= 0 || denoisePlan(s, blocksToSwap, true, true, cfgMode).fits(budgetBytes);
    }

    /** The encode phase with the last {@code layersStreamed} umT5 layers streamed. */
    public static MemoryPlan encodePlan(Settings s, int layersStreamed) {
        List<MemoryPlan.Item> items = new ArrayList<>();
        TextEncoder t = s.textEncoder();
        if (t != null) items.addAll(textEncoderItems(t, layersStreamed));
        items.add(contexts(s));
        items.addAll(s.others());
        return new MemoryPlan(items);
    }

    /**
     * The umT5 encoder's own categories for {@code layersStreamed} streamed layers: resident weights, the slot ring,
     * the working buffers of one encode. The trainer's start-up encode can use these alone (nothing else is loaded yet).
     */
    public static List<MemoryPlan.Item> textEncoderItems(TextEncoder t, int layersStreamed) {
        UmT5Config c = t.config();
        if (layersStreamed < 0 || layersStreamed > c.numLayers()) {
            throw new IllegalArgumentException("SamplingMemoryPlan: " + layersStreamed + " umT5 layers streamed; expected 0 to "
                    + c.numLayers());
        }
        long b = t.dtype().sizeBytes();
        long layerBytes = layerBytes(t);
        long always = ((long) c.vocab() * c.dim() + c.dim()) * b; // token embedding, final norm
        List<MemoryPlan.Item> items = new ArrayList<>();
        int resident = c.numLayers() - layersStreamed;
        items.add(new MemoryPlan.Item(T5_WEIGHTS, always + resident * layerBytes, String.format(Locale.ROOT,
                "%d of %d layers%s; token embedding (%d × %d) and final norm %s", resident, c.numLayers(),
                t.fp8() ? " (Linears fp8 + fp32 block scales)" : "", c.vocab(), c.dim(), shortName(t.dtype()))));
        long slot = UmT5Weights.streamedLayout(c, t.dtype(), t.fp8()).sizeBytes();
        items.add(new MemoryPlan.Item(T5_SLOTS, layersStreamed == 0 ? 0 : BlockStreamer.deviceBytes(
                UmT5Weights.streamedLayout(c, t.dtype(), t.fp8()), t.slots()), layersStreamed == 0 ? "every layer resident"
                : String.format(Locale.ROOT, "%d × %s; %d layer%s streamed from %s of pinned host memory", t.slots(),
                MemoryPlan.formatBytes(slot), layersStreamed, layersStreamed == 1 ? "" : "s",
                MemoryPlan.formatBytes(layersStreamed * slot))));
        // loading a streamed layer holds its tensors on the device once before they go to the host image; the
        // encode buffers do not exist yet then, so the phase needs the larger of the two
        long work = encodeWorkingBytes(c, t.dtype(), t.fp8(), 512);
        long loading = layersStreamed == 0 ? 0 : layerBytes;
        items.add(new MemoryPlan.Item(T5_WORK, Math.max(work, loading), String.format(Locale.ROOT,
                "one 512-token prompt: residual, q/k/v, (%d, 512, 512) bias, FFN hidden%s%s", c.numHeads(),
                t.fp8() ? ", one dequantized Linear" : "", loading > work ? "; loading one streamed layer needs more" : "")));
        return items;
    }

    /** The smallest number of streamed umT5 layers whose encode phase fits, or empty when none does. */
    public static OptionalInt smallestFittingT5Streaming(Settings s, long budgetBytes) {
        int layers = s.textEncoder() == null ? 0 : s.textEncoder().config().numLayers();
        return MemoryPlan.smallestFitting(0, layers, n -> encodePlan(s, n), budgetBytes);
    }

    /**
     * The smallest --blocks_to_swap whose denoise and decode phases fit without the k/v cache and with CFG as two batch-1
     * forwards (neither is worth a streamed block), or empty when none does.
     */
    public static OptionalInt smallestFittingSwap(Settings s, long budgetBytes) {
        DenoisingLoop.CfgMode least = DenoisingLoop.CfgMode.TWO_BATCH_1;
        for (int n = 0; n < s.dit().config().numLayers(); n++) {
            if (denoisePlan(s, n, true, false, least).fits(budgetBytes) && denoisePlan(s, n, false, false, least).fits(budgetBytes)) {
                return OptionalInt.of(n);
            }
        }
        return OptionalInt.empty();
    }

    /**
     * The denoise phase ({@code denoising}) or the decode phase with {@code blocksToSwap} DiT blocks streamed;
     * {@code caches}: each sample keeps its texts' cross-attention k/v; {@code cfgMode}: the batch of the CFG forwards.
     */
    static MemoryPlan denoisePlan(Settings s, int blocksToSwap, boolean denoising, boolean caches,
                                  DenoisingLoop.CfgMode cfgMode) {
        MemoryPlan dit = WanMemoryPlan.plan(s.dit(), blocksToSwap);
        List<MemoryPlan.Item> items = new ArrayList<>();
        for (String category : List.of(WanMemoryPlan.WEIGHTS, WanMemoryPlan.SWAP_SLOTS, WanMemoryPlan.DEQUANTIZATION)) {
            for (MemoryPlan.Item i : dit.items()) if (i.category().equals(category)) items.add(i);
        }
        items.add(lora(s));
        WanDitActivations.Key largest = largestShape(s);
        long tokens = (long) largest.frames() * (largest.height() / 2) * (largest.width() / 2);
        int batch = cfgBatch(s, cfgMode);
        items.add(new MemoryPlan.Item(ACTIVATIONS, denoising ? forwardOnlyBytes(s, batch) : 0, denoising
                ? String.format(Locale.ROOT, "batch %d at %d latent frames × %d × %d (%d tokens); %s", batch,
                        largest.frames(), largest.height(), largest.width(), tokens, s.contextsPerSample() == 1
                                ? "no CFG pass" : "CFG runs " + cfgMode.describe())
                : "freed before the decode"));
        long latent = 16L * largest.frames() * largest.height() * largest.width() * Float.BYTES;
        items.add(new MemoryPlan.Item(LATENTS, denoising ? 2 * latent : latent, denoising
                ? "the sample x_k and its noise, fp32" : "the denoised latent, fp32"));
        items.add(denoising ? stepConstants(s, caches) : new MemoryPlan.Item(STEP_CONSTANTS, 0, "freed after the last step"));
        items.add(contexts(s));
        items.add(new MemoryPlan.Item(DECODER, s.decoderWeightBytes(), s.decoderWeightBytes() == 0 ? "not counted"
                : "decoder and conv2, opened for the sampling phase"));
        items.add(new MemoryPlan.Item(DECODER_WORK, denoising ? 0 : s.decoderWorkBytes(), denoising ? "not yet allocated"
                : s.decoderWorkBytes() == 0 ? "not counted" : "frame caches and one chunk's buffers at the largest frame,"
                + " flat in the frame count"));
        items.addAll(s.others());
        return new MemoryPlan(items);
    }

    /**
     * What sampling adds to a training run's device plan (training's weights, LoRA, optimizer and activation plans stay
     * allocated while it samples): the encoded prompts, the decoder's weights, and the larger of the forward-only
     * activations with the per-sample constants ({@code cachesCrossAttention}: the texts' k/v included) (denoise) and
     * the decoder's working memory (decode), since each is freed before the other is made; the activations at batch 2
     * when {@code cfgMode} runs CFG as one batch-2 forward. The prompts are encoded before the DiT loads, so the encoder
     * is planned apart: {@link #encodePlan} with no DiT item in it.
     */
    public static MemoryPlan.Item duringTraining(Settings s, boolean cachesCrossAttention, DenoisingLoop.CfgMode cfgMode) {
        int batch = cfgBatch(s, cfgMode);
        long activations = forwardOnlyBytes(s, batch);
        MemoryPlan.Item constants = stepConstants(s, cachesCrossAttention);
        long peak = Math.max(activations + constants.bytes(), s.decoderWorkBytes());
        WanDitActivations.Key largest = largestShape(s);
        return new MemoryPlan.Item(DURING_TRAINING, contexts(s).bytes() + s.decoderWeightBytes() + peak, String.format(Locale.ROOT,
                "%s + VAE decoder %s + the larger of batch-" + batch + " forward-only activations at %d×%d×%d latent (%s) with the step"
                        + " constants (%s%s) and the decode buffers (%s)",
                MemoryPlan.formatBytes(contexts(s).bytes()) + " encoded prompts",
                MemoryPlan.formatBytes(s.decoderWeightBytes()), largest.frames(), largest.height(), largest.width(),
                MemoryPlan.formatBytes(activations), MemoryPlan.formatBytes(constants.bytes()),
                cachesCrossAttention ? ", cross-attention k/v kept" : "", MemoryPlan.formatBytes(s.decoderWorkBytes())));
    }

    /**
     * Device bytes {@code UmT5Encoder.encode} allocates for one sequence of {@code length} tokens (and the full output
     * it returns): ids, mask, bucket table and norm statistics F32; residual, normed, projection and output (L, C);
     * q, k, v, attention (L, dimAttn); the (N, L, L) bias; gate and hidden (L, dimFfn); with fp8 the largest Linear
     * dequantized. Compute-dtype elements are b bytes.
     */
    public static long encodeWorkingBytes(UmT5Config c, DType dtype, boolean fp8, int length) {
        long b = dtype.sizeBytes(), l = length;
        long f32 = (3 * l + 2 * l - 1) * Float.BYTES;
        long stream = 4 * l * c.dim() * b + 4 * l * c.dimAttn() * b + (long) c.numHeads() * l * l * b
                + 2 * l * c.dimFfn() * b;
        long dequant = fp8 ? Math.max((long) c.dimAttn() * c.dim(), (long) c.dimFfn() * c.dim()) * b : 0;
        return f32 + stream + dequant;
    }

    /** One umT5 layer's tensors as the device holds them resident (no alignment padding). */
    private static long layerBytes(TextEncoder t) {
        long n = 0;
        for (var e : UmT5Weights.streamedLayout(t.config(), t.dtype(), t.fp8()).entries()) n += e.sizeBytes();
        return n;
    }

    /** One sample's constants over its steps: the time embeddings and, when {@code caches}, its texts' k/v. */
    private static MemoryPlan.Item stepConstants(Settings s, boolean caches) {
        long time = TimeEmbeddings.bytes(s.dit().config(), s.steps());
        long kv = caches ? crossAttentionCacheBytes(s) : 0;
        WanDitConfig c = s.dit().config();
        return new MemoryPlan.Item(STEP_CONSTANTS, time + kv, String.format(Locale.ROOT, "time embeddings of %d steps%s",
                s.steps(), caches ? String.format(Locale.ROOT, "; cross-attention k/v of %d text%s (%d blocks × 2 × %d × %d)",
                        s.contextsPerSample(), s.contextsPerSample() == 1 ? "" : "s", c.numLayers(), c.textLen(), c.dim())
                        : "; cross-attention k/v recomputed every step (keeping them does not fit)"));
    }

    private static MemoryPlan.Item contexts(Settings s) {
        long width = s.dit().config().textDim();
        // on the GPU the contexts are kept in the encoder's compute dtype (bf16); the CPU reference keeps F32
        long b = s.textEncoder() == null ? s.act().sizeBytes() : s.textEncoder().dtype().sizeBytes();
        return new MemoryPlan.Item(CONTEXTS, s.promptTokens() * width * b, String.format(Locale.ROOT,
                "at most %,d tokens × %d, kept for the run", s.promptTokens(), width));
    }

    private static MemoryPlan.Item lora(Settings s) {
        long p = s.loraParameters();
        long computeCopies = s.act() == DType.F32 ? 0 : p * s.act().sizeBytes();
        return new MemoryPlan.Item(LORA, p * 2 * Float.BYTES + computeCopies, p == 0 ? "none: the base model"
                : String.format(Locale.ROOT, "%,d parameters (the largest --lora): fp32 weights and their gradient"
                        + " buffer%s; one LoRA at a time", p, computeCopies == 0 ? "" : ", " + shortName(s.act()) + " copies"));
    }

    /**
     * The batch of a sample's forwards: 2 when CFG runs as one batch-2 forward and some prompt uses CFG (every prompt
     * is then counted at batch 2: the plan holds the largest), else 1.
     */
    private static int cfgBatch(Settings s, DenoisingLoop.CfgMode cfgMode) {
        return s.contextsPerSample() == 2 && cfgMode == DenoisingLoop.CfgMode.BATCH_2 ? 2 : 1;
    }

    /** The largest forward-only plan of the prompts' shapes at {@code batch}. */
    private static long forwardOnlyBytes(Settings s, int batch) {
        long max = 0;
        for (WanDitActivations.Key k : s.dit().shapes()) {
            WanDitActivations.Key atBatch = WanDitActivations.Key.forwardOnly(batch, k.frames(), k.height(), k.width(),
                    k.loraRank());
            max = Math.max(max, WanDitActivations.sizeBytes(s.dit().config(), s.dit().precision(), atBatch));
        }
        return max;
    }

    private static WanDitActivations.Key largestShape(Settings s) {
        WanDitActivations.Key best = s.dit().shapes().getFirst();
        for (WanDitActivations.Key k : s.dit().shapes()) {
            if (WanDitActivations.sizeBytes(s.dit().config(), s.dit().precision(), k)
                    > WanDitActivations.sizeBytes(s.dit().config(), s.dit().precision(), best)) best = k;
        }
        return best;
    }

    /**
     * The DiT settings for sampling: {@code shapes} are the prompts' latent (frames, height, width), each a batch-1
     * forward-only key with {@code loraRank} (0 without a LoRA). The optimizer is irrelevant to sampling (its items are
     * not used); AdamW fills the field.
     */
    public static WanMemoryPlan.Settings ditSettings(WanDitConfig config, ComputePrecision precision,
                                                     dev.wanlora.models.wan.WanDitWeights.Quantization quantization,
                                                     boolean keepsFp8Codes, DType checkpointDType, List<int[]> shapes,
                                                     int loraRank, int swapSlots) {
        List<WanDitActivations.Key> keys = new ArrayList<>();
        for (int[] fhw : shapes) {
            WanDitActivations.Key k = WanDitActivations.Key.forwardOnly(1, fhw[0], fhw[1], fhw[2], loraRank);
            if (!keys.contains(k)) keys.add(k);
        }
        return new WanMemoryPlan.Settings(config, precision, quantization, keepsFp8Codes, checkpointDType, keys,
                OptimizerConfig.adamw(), swapSlots, List.of());
    }

    private static String shortName(DType t) {
        return switch (t) {
            case BF16 -> "bf16";
            case F32 -> "fp32";
            case F16 -> "fp16";
            default -> t.torchName();
        };
    }
}
