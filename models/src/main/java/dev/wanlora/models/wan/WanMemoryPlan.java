package dev.wanlora.models.wan;

import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.stream.BlockLayout;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.Quantization;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;

/**
 * The device memory of training a LoRA on a Wan DiT (DESIGN.md §6), per category, from the settings alone: what
 * {@link WanDitWeights#load} keeps resident and streams, what {@link WanDit} and its {@link WanDitActivations} plan
 * allocate for the largest bucket, the LoRA network and its optimizer. Sizes count each tensor in its dtype, as the
 * GPU holds it. The caller adds what it allocates itself (batch tensors, attention workspace, the CUDA runtime) as
 * {@link Settings#others()}.
 *
 * <p>{@link WanDit} keeps one {@link WanDitActivations} plan per input shape it has seen, all alive at once, so the
 * activation categories are the sum over every shape a run feeds it (each bucket's latent shape and batch size).
 */
public final class WanMemoryPlan {
    private WanMemoryPlan() {}

    /** Plan categories, in print order. */
    public static final String WEIGHTS = "weights resident";
    public static final String SWAP_SLOTS = "swap slots";
    public static final String DEQUANTIZATION = "fp8 dequantization scratch";
    public static final String LORA = "LoRA + optimizer";
    public static final String SAVED_INPUTS = "saved block inputs";
    /** Each block's self-attention output and log-sum-exp kept through checkpointing (0 when off). */
    public static final String SAVED_ATTENTION = "saved attention outputs";
    public static final String RECOMPUTE = "block activations";

    /**
     * What the plan depends on.
     *
     * @param keepsFp8Codes     fp8 block weights kept as codes + scales on the device (the GPU), not dequantized at load
     * @param checkpointDType   the dtype of the checkpoint's block Linear weights (fixes the fp8 scale dtype, spec §3.2)
     * @param shapes            the activation plan keys of the run, one per distinct (batch, latent frames, height,
     *                          width); all with the LoRA rank, keepsBlockIntermediates = no gradient checkpointing
     *                          and savesAttentionOutputs = {@link WanDit#savesAttentionOutputs()}
     * @param swapSlots         device slots of the streaming ring
     * @param others            categories the caller allocates (e.g. batch inputs, attention workspace, CUDA runtime)
     */
    public record Settings(WanDitConfig config, ComputePrecision precision, Quantization quantization,
                           boolean keepsFp8Codes, DType checkpointDType, List<WanDitActivations.Key> shapes,
                           OptimizerConfig optimizer, int swapSlots, List<MemoryPlan.Item> others) {
        public Settings {
            if (shapes.isEmpty()) throw new IllegalArgumentException("WanMemoryPlan: no input shape; expected at least one");
            shapes = List.copyOf(shapes);
            others = List.copyOf(others);
        }

        int loraRank() { return shapes.getFirst().loraRank(); }

        boolean isFp8OnDevice() { return quantization != Quantization.NONE && keepsFp8Codes; }

        DType act() { return precision.activationDType(); }

        /** The fp8 scales' dtype: the checkpoint's for bf16 files under --fp8_scaled, else F32; FP8_BASE's unit scales BF16. */
        DType scaleDType() {
            return quantization == Quantization.FP8_SCALED && checkpointDType != DType.BF16 ? DType.F32 : DType.BF16;
        }
    }

    /** The plan with the last {@code blocksToSwap} blocks streamed (0 ≤ blocksToSwap &lt; numLayers). */
    public static MemoryPlan plan(Settings s, int blocksToSwap) {
        WanDitConfig c = s.config();
        int layers = c.numLayers();
        if (blocksToSwap < 0 || blocksToSwap >= layers) {
            throw new IllegalArgumentException("WanMemoryPlan: blocksToSwap " + blocksToSwap + " outside [0, " + (layers - 1) + "]");
        }
        String act = shortName(s.act());
        List<MemoryPlan.Item> items = new ArrayList<>();

        long residentLinears = (layers - blocksToSwap) * blockLinearBytes(s);
        // fp8 weights not kept as codes (the CPU backend) hold the fp8 values dequantized: say so, not just "bf16"
        String linearForm = s.isFp8OnDevice() ? "fp8 + " + shortName(s.scaleDType()) + " scales"
                : s.quantization() != Quantization.NONE ? act + " (fp8 values, dequantized at load)" : act;
        items.add(new MemoryPlan.Item(WEIGHTS, nonLinearBytes(s) + residentLinears, String.format(Locale.ROOT,
                "%d of %d blocks' Linears %s; embeddings, head, norms, biases, modulation %s", layers - blocksToSwap, layers,
                linearForm, act)));

        BlockLayout layout = streamedLayout(s);
        items.add(new MemoryPlan.Item(SWAP_SLOTS, blocksToSwap == 0 ? 0 : BlockStreamer.deviceBytes(layout, s.swapSlots()),
                blocksToSwap == 0 ? "--blocks_to_swap 0" : String.format(Locale.ROOT,
                        "%d × %s, one block's Linears each; %d block%s streamed from %s of host memory",
                        s.swapSlots(), MemoryPlan.formatBytes(layout.sizeBytes()), blocksToSwap, blocksToSwap == 1 ? "" : "s",
                        MemoryPlan.formatBytes(hostBytes(s, blocksToSwap)))));

        if (s.isFp8OnDevice()) {
            Shape largest = largestLinear(c);
            items.add(new MemoryPlan.Item(DEQUANTIZATION, largest.numElements() * s.act().sizeBytes(),
                    "the largest Linear weight " + largest + " " + act + ", dequantized before each GEMM"));
        }

        int rank = s.loraRank();
        long params = loraParameters(c, rank);
        long optimizer = 0;
        for (int i = 0; i < layers; i++) {
            for (BlockLinear l : BlockLinear.values()) {
                Shape w = l.weightShape(c);
                optimizer += Optimizer.stateBytes(s.optimizer(), rank * w.dim(1));
                optimizer += Optimizer.stateBytes(s.optimizer(), w.dim(0) * rank);
            }
        }
        long computeCopies = s.act() == DType.F32 ? 0 : params * s.act().sizeBytes();
        items.add(new MemoryPlan.Item(LORA, params * 2 * Float.BYTES + computeCopies + optimizer, String.format(Locale.ROOT,
                "%,d parameters (rank %d): fp32 weights and gradients%s, %s state", params, rank,
                computeCopies == 0 ? "" : ", " + act + " copies", s.optimizer().kind() == OptimizerConfig.Kind.ADAMW ? "AdamW"
                        : "AdamW8bit")));

        long saved = 0, savedAttention = 0, activations = 0;
        List<String> streams = new ArrayList<>(), lses = new ArrayList<>();
        for (WanDitActivations.Key k : s.shapes()) {
            long tokens = (long) k.frames() * (k.height() / 2) * (k.width() / 2);
            saved += (layers + 1L) * k.batch() * tokens * c.dim() * s.act().sizeBytes();
            savedAttention += WanDitActivations.savedAttentionBytes(c, s.precision(), k);
            activations += WanDitActivations.sizeBytes(c, s.precision(), k);
            streams.add("(" + k.batch() + ", " + tokens + ", " + c.dim() + ")");
            lses.add("(" + k.batch() + ", " + c.numHeads() + ", " + tokens + ")");
        }
        String perShape = s.shapes().size() == 1 ? "" : " for each of " + s.shapes().size() + " input shapes";
        String stream = streams.size() == 1 ? streams.getFirst() : "[" + String.join(" + ", streams) + "]";
        String lse = lses.size() == 1 ? lses.getFirst() : "[" + String.join(" + ", lses) + "]";
        items.add(new MemoryPlan.Item(SAVED_INPUTS, saved, String.format(Locale.ROOT, "%d × %s %s", layers + 1, stream, act)));
        WanDitActivations.Key first = s.shapes().getFirst();
        items.add(new MemoryPlan.Item(SAVED_ATTENTION, savedAttention, first.savesAttentionOutputs()
                ? String.format(Locale.ROOT, "%d × (%s %s output + %s fp32 log-sum-exp): the recompute skips self-attention"
                        + " (--checkpoint_attention on)", layers, stream, act, lse)
                : first.keepsBlockIntermediates() ? "none: every block keeps its intermediates"
                : "--checkpoint_attention off: the recompute runs self-attention again"));
        items.add(new MemoryPlan.Item(RECOMPUTE, activations - saved - savedAttention, (first.keepsBlockIntermediates()
                ? "every block's intermediates (no --gradient_checkpointing)" : "one block's intermediates (recomputed)")
                + ", block gradients, embeddings, head" + perShape));

        items.addAll(s.others());
        return new MemoryPlan(items);
    }

    /** The smallest swap count in [0, numLayers − 1] whose plan fits the budget, or empty when none does. */
    public static OptionalInt smallestFittingSwap(Settings s, long budgetBytes) {
        return MemoryPlan.smallestFitting(0, s.config().numLayers() - 1, n -> plan(s, n), budgetBytes);
    }

    /** Pinned host bytes of {@code blocksToSwap} streamed blocks (whole-block images). */
    public static long hostBytes(Settings s, int blocksToSwap) {
        return blocksToSwap * streamedLayout(s).sizeBytes();
    }

    /**
     * The streamer's layout for one block, as {@link WanDitWeights#load} builds it: per {@link BlockLinear}, the
     * weight in the compute dtype, or the fp8 codes then the scale (O, I/64, 1).
     */
    static BlockLayout streamedLayout(Settings s) {
        List<BlockLayout.Entry> entries = new ArrayList<>();
        for (BlockLinear l : BlockLinear.values()) {
            Shape w = l.weightShape(s.config());
            if (s.isFp8OnDevice()) {
                entries.add(new BlockLayout.Entry(DType.F8_E4M3, w));
                entries.add(new BlockLayout.Entry(s.scaleDType(), Shape.of(w.dim(0), w.dim(1) / 64, 1)));
            } else {
                entries.add(new BlockLayout.Entry(s.act(), w));
            }
        }
        return new BlockLayout(entries);
    }

    /** One block's ten Linear weights as resident tensors (no alignment padding). */
    private static long blockLinearBytes(Settings s) {
        long n = 0;
        for (BlockLayout.Entry e : streamedLayout(s).entries()) n += e.sizeBytes();
        return n;
    }

    /**
     * Everything but the block Linear weights, in the compute dtype: the embeddings (patch, text, time, projection),
     * the head and its modulation, and per block modulation (6C), ten biases (9C + Fd), four RMSNorm weights (4C) and
     * norm3's weight and bias (2C).
     */
    private static long nonLinearBytes(Settings s) {
        WanDitConfig c = s.config();
        long dim = c.dim();
        long embeddings = dim * c.patchLength() + dim       // patch_embedding
                + dim * c.textDim() + dim + dim * dim + dim // text_embedding.0, .2
                + dim * c.freqDim() + dim + dim * dim + dim // time_embedding.0, .2
                + 6 * dim * dim + 6 * dim                   // time_projection.1
                + c.headOutFeatures() * dim + c.headOutFeatures() // head.head
                + 2 * dim;                                  // head.modulation
        long perBlock = 6 * dim + 9 * dim + c.ffnDim() + 4 * dim + 2 * dim;
        return (embeddings + c.numLayers() * perBlock) * s.act().sizeBytes();
    }

    /** Σ over the LoRA modules of rank·(in + out). */
    static long loraParameters(WanDitConfig c, int rank) {
        long perBlock = 0;
        for (BlockLinear l : BlockLinear.values()) {
            Shape w = l.weightShape(c);
            perBlock += rank * (w.dim(0) + w.dim(1));
        }
        return c.numLayers() * perBlock;
    }

    /** "bf16", "fp32" (the names musubi users know from --mixed_precision). */
    private static String shortName(DType t) {
        return switch (t) {
            case BF16 -> "bf16";
            case F32 -> "fp32";
            case F16 -> "fp16";
            default -> t.torchName();
        };
    }

    private static Shape largestLinear(WanDitConfig c) {
        Shape best = null;
        for (BlockLinear l : BlockLinear.values()) {
            Shape w = l.weightShape(c);
            if (best == null || w.numElements() > best.numElements()) best = w;
        }
        return best;
    }
}
