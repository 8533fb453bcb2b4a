package dev.wanlora.models.wan;

import dev.wanlora.engine.memory.HostMemory;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.memory.BlockLayout;
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
 * {@link WanDitWeights#load} keeps resident and streams (from the key tree, {@link WanDitTree}), what {@link WanDit}
 * and its {@link WanDitActivations} plans allocate (their {@link WanDitActivationLayout}s), the LoRA network and its
 * optimizer. Sizes count each tensor in its dtype, as the GPU holds it. The caller adds what it allocates itself (batch
 * tensors, attention workspace, the CUDA runtime) as {@link Settings#others()}.
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

    /**
     * The fp8 block Linears of the block being recomputed, dequantized once for its recompute and backward
     * ({@link WanDit#keepsBackwardWeights(boolean)}); callers that turn it on add {@link #backwardWeights} to
     * {@link Settings#others()}.
     */
    public static final String BACKWARD_WEIGHTS = "fp8 weights kept for the backward";

    /** The {@link #BACKWARD_WEIGHTS} item: one block's {@link WanDit#BACKWARD_LINEARS} in the compute dtype. */
    public static MemoryPlan.Item backwardWeights(WanDitConfig c, ComputePrecision precision) {
        return new MemoryPlan.Item(BACKWARD_WEIGHTS, WanDit.backwardWeightElements(c) * precision.activationDType().sizeBytes(),
                "one block's " + WanDit.BACKWARD_LINEARS.size() + " Linears the backward multiplies by, "
                        + shortName(precision.activationDType()) + ", dequantized once in its recompute");
    }

    /** {@code s} with {@link #backwardWeights} added to its others. */
    public static Settings withBackwardWeights(Settings s) {
        List<MemoryPlan.Item> others = new ArrayList<>(s.others());
        others.add(backwardWeights(s.config(), s.precision()));
        return new Settings(s.config(), s.precision(), s.quantization(), s.keepsFp8Codes(), s.checkpointDType(), s.shapes(),
                s.optimizer(), s.swapSlots(), others);
    }

    /**
     * Whether keeping {@link #BACKWARD_WEIGHTS} is worth planning: fp8 codes on the device, gradient checkpointing,
     * and not turned off with {@code WANLORA_KEEP_BACKWARD_WEIGHTS=off} (an A/B switch; the results are the same).
     */
    public static boolean considersBackwardWeights(Settings s, boolean gradientCheckpointing) {
        return gradientCheckpointing && s.isFp8OnDevice() && !"off".equalsIgnoreCase(System.getenv("WANLORA_KEEP_BACKWARD_WEIGHTS"));
    }

    /** Host plan categories. */
    public static final String HOST_SWAPPED = "swapped blocks (pinned)";
    public static final String HOST_OFFLOADED = "offloaded activations (pinned)";
    public static final String HOST_STAGING = "staging";

    /**
     * Device slots of each activation-offload ring: the forward holds two saved inputs at once (reads block i's, writes
     * block i + 1's), and the backward prefetches one item ahead, whose copy (item bytes ÷ ~20 GB/s of pinned PCIe
     * bandwidth) must hide under one block's backward: 335 MB ≈ 17 ms against ~0.5 s at 32760 tokens, 38 MB ≈ 2 ms
     * against ~15 ms at 3744.
     */
    public static final int OFFLOAD_RING_SLOTS = 2;

    /**
     * What the CUDA driver holds before wanlora allocates anything, when no GPU is at hand to measure it (--dry_run
     * with --max_vram): the context, our kernel modules, the cuBLASLt handle and its 32 MiB workspace. An estimate:
     * on an H100 the driver's count exceeded our allocations by 1.3 GiB (benchmarks/TRAIN_STEP.md: 21.2 against 19.9
     * GiB), context and rounding together; this takes 768 MiB of it, {@link #ALLOCATION_MARGIN_BYTES} the rest.
     */
    public static final long ESTIMATED_CUDA_RUNTIME_BYTES = 768L << 20;

    /**
     * Fragmentation margin: the driver rounds each cuMemAlloc up to its page granularity (2 MiB for large
     * allocations) and the run makes a few hundred of them (per-tensor weights, plan buffers), so the driver counts
     * more than the sum of the tensors. 512 MiB ≈ 250 allocations × 2 MiB.
     */
    public static final long ALLOCATION_MARGIN_BYTES = 512L << 20;

    /** The plan item of what the driver holds now, measured ({@code usedBytes}: the device's memory in use). */
    public static MemoryPlan.Item cudaRuntime(long usedBytes) {
        return new MemoryPlan.Item("CUDA runtime", usedBytes,
                "in use before loading: context, kernels, cuBLASLt workspace, other processes");
    }

    /** The plan item of the CUDA runtime when no GPU is touched ({@link #ESTIMATED_CUDA_RUNTIME_BYTES}). */
    public static MemoryPlan.Item estimatedCudaRuntime() {
        return new MemoryPlan.Item("CUDA runtime", ESTIMATED_CUDA_RUNTIME_BYTES,
                "estimated, no GPU touched: context, kernels, cuBLASLt handle and workspace");
    }

    /** The plan item of {@link #ALLOCATION_MARGIN_BYTES}. */
    public static MemoryPlan.Item allocationMargin() {
        return new MemoryPlan.Item("allocation margin", ALLOCATION_MARGIN_BYTES,
                "the driver's rounding of a few hundred allocations to 2 MiB pages");
    }

    /** One configuration the plan can take: streamed blocks and offloaded activations. */
    public record Choice(int blocksToSwap, WanDitActivations.Offload offload) {
        public static Choice swapping(int blocksToSwap) { return new Choice(blocksToSwap, WanDitActivations.Offload.NONE); }
    }

    /** The plan with the last {@code blocksToSwap} blocks streamed (0 ≤ blocksToSwap &lt; numLayers), no offload. */
    public static MemoryPlan plan(Settings s, int blocksToSwap) {
        return plan(s, Choice.swapping(blocksToSwap));
    }

    /**
     * {@code s} with {@code offload} applied to every checkpointed shape (clamped per shape: attention outputs only
     * where the shape saves them); shapes that keep every block's intermediates never offload.
     */
    public static Settings withOffload(Settings s, WanDitActivations.Offload offload) {
        List<WanDitActivations.Key> keys = new ArrayList<>();
        int layers = s.config().numLayers();
        for (WanDitActivations.Key k : s.shapes()) {
            WanDitActivations.Offload o = k.keepsBlockIntermediates() ? WanDitActivations.Offload.NONE
                    : new WanDitActivations.Offload(Math.min(offload.blockInputs(), layers + 1),
                    k.savesAttentionOutputs() ? Math.min(offload.attentionOutputs(), layers) : 0, offload.ringSlots());
            keys.add(k.withOffload(o.isOffloading() ? o : WanDitActivations.Offload.NONE));
        }
        return new Settings(s.config(), s.precision(), s.quantization(), s.keepsFp8Codes(), s.checkpointDType(), keys,
                s.optimizer(), s.swapSlots(), s.others());
    }

    /** The device plan of a choice. */
    public static MemoryPlan plan(Settings unoffloaded, Choice choice) {
        Settings s = withOffload(unoffloaded, choice.offload());
        int blocksToSwap = choice.blocksToSwap();
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
                optimizer += Optimizer.stateBytes(s.optimizer(), rank, w.dim(1));
                optimizer += Optimizer.stateBytes(s.optimizer(), w.dim(0), rank);
            }
        }
        long computeCopies = s.act() == DType.F32 ? 0 : params * s.act().sizeBytes();
        items.add(new MemoryPlan.Item(LORA, params * 2 * Float.BYTES + computeCopies + optimizer, String.format(Locale.ROOT,
                "%,d parameters (rank %d): fp32 weights and gradients%s, %s state", params, rank,
                computeCopies == 0 ? "" : ", " + act + " copies", switch (s.optimizer().kind()) {
                    case ADAMW -> "AdamW";
                    case ADAMW_8BIT -> "AdamW8bit";
                    case PRODIGY -> "Prodigy";
                    case ADAFACTOR -> "Adafactor";
                })));

        long saved = 0, savedAttention = 0, activations = 0;
        List<String> streams = new ArrayList<>(), lses = new ArrayList<>();
        for (WanDitActivations.Key k : s.shapes()) {
            long tokens = (long) k.frames() * (k.height() / 2) * (k.width() / 2);
            WanDitActivationLayout shape = WanDitActivationLayout.of(c, s.precision(), k);
            saved += shape.savedInputBytes();
            savedAttention += shape.savedAttentionBytes();
            activations += shape.deviceBytes();
            streams.add("(" + k.batch() + ", " + tokens + ", " + c.dim() + ")");
            lses.add("(" + k.batch() + ", " + c.numHeads() + ", " + tokens + ")");
        }
        String perShape = s.shapes().size() == 1 ? "" : " for each of " + s.shapes().size() + " input shapes";
        String stream = streams.size() == 1 ? streams.getFirst() : "[" + String.join(" + ", streams) + "]";
        String lse = lses.size() == 1 ? lses.getFirst() : "[" + String.join(" + ", lses) + "]";
        WanDitActivations.Key first = s.shapes().getFirst();
        WanDitActivations.Offload off = offloadOf(s);
        items.add(new MemoryPlan.Item(SAVED_INPUTS, saved, off.blockInputs() == 0
                ? String.format(Locale.ROOT, "%d × %s %s", layers + 1, stream, act)
                : String.format(Locale.ROOT, "%d × %s %s on the device + a ring of %d; blocks 0..%d's in pinned host memory,"
                        + " prefetched %d ahead of the backward", layers + 1 - off.blockInputs(), stream, act, off.ringSlots(),
                        off.blockInputs() - 1, off.prefetchDepth())));
        items.add(new MemoryPlan.Item(SAVED_ATTENTION, savedAttention, first.savesAttentionOutputs()
                ? String.format(Locale.ROOT, "%d × (%s %s output + %s fp32 log-sum-exp)%s: the recompute skips self-attention"
                        + " (--checkpoint_attention on)", layers - off.attentionOutputs(), stream, act, lse,
                        off.attentionOutputs() == 0 ? "" : String.format(Locale.ROOT, " + a ring of %d; blocks 0..%d's in"
                                + " pinned host memory", off.ringSlots(), off.attentionOutputs() - 1))
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

    /**
     * The cheapest choice whose device plan fits {@code budgetBytes} and whose host plan fits {@code hostBudgetBytes}
     * (≤ 0: unchecked), or null when none does. Each streamed block and each offloaded activation costs one copy of its
     * bytes per pass (two per step), all on the one copy stream, so the cost of a choice is the bytes it copies per
     * step; among equal costs the fewer swapped blocks win. Offload is tried only when {@code mayOffload} (and only
     * applies to checkpointed shapes): saved block inputs first, then saved attention outputs, each from block 0 on.
     */
    public static Choice cheapestFitting(Settings s, long budgetBytes, long hostBudgetBytes, boolean mayOffload) {
        int layers = s.config().numLayers();
        boolean saves = s.shapes().stream().anyMatch(WanDitActivations.Key::savesAttentionOutputs);
        int maxLevel = !mayOffload ? 0 : layers + 1 + (saves ? layers : 0);
        long blockBytes = streamedLayout(s).sizeBytes();
        Choice best = null;
        long bestCost = Long.MAX_VALUE;
        for (int n = 0; n < layers; n++) {
            for (int level = 0; level <= maxLevel; level++) {
                Choice c = new Choice(n, offloadLevel(level, layers));
                if (!plan(s, c).fits(budgetBytes)) continue;
                if (hostBudgetBytes > 0 && !hostPlan(s, c).fits(hostBudgetBytes)) break; // more offload needs more host
                long cost = n * blockBytes + offloadedBytesPerPass(s, c.offload());
                if (cost < bestCost) {
                    best = c;
                    bestCost = cost;
                }
                break; // the least offload that fits this swap count
            }
        }
        return best;
    }

    /** Offload level m: saved inputs of blocks 0..m−1 (m ≤ numLayers + 1), then attention outputs of the first blocks. */
    private static WanDitActivations.Offload offloadLevel(int level, int layers) {
        if (level == 0) return WanDitActivations.Offload.NONE;
        int inputs = Math.min(level, layers + 1);
        return new WanDitActivations.Offload(inputs, level - inputs, OFFLOAD_RING_SLOTS);
    }

    /** Bytes the offload copies out (and back) per step, over every shape. */
    private static long offloadedBytesPerPass(Settings s, WanDitActivations.Offload offload) {
        Settings o = withOffload(s, offload);
        long n = 0;
        for (WanDitActivations.Key k : o.shapes()) n += WanDitActivationLayout.of(s.config(), s.precision(), k).offloadedHostBytes();
        return n;
    }

    /** The offload of the plan's largest checkpointed shape (NONE when none offloads). */
    private static WanDitActivations.Offload offloadOf(Settings s) {
        WanDitActivations.Offload best = WanDitActivations.Offload.NONE;
        for (WanDitActivations.Key k : s.shapes()) {
            if (k.offload().blockInputs() + k.offload().attentionOutputs() > best.blockInputs() + best.attentionOutputs()) {
                best = k.offload();
            }
        }
        return best;
    }

    /**
     * Host memory the choice holds beyond the JVM: the streamed blocks' pinned images, the offloaded activations'
     * pinned images (every shape's plan is alive at once, so they add up), and the pinned staging ring that loading
     * reads the checkpoint through ({@link HostMemory#LOAD_STAGING_BYTES}; conversions run on the device).
     */
    public static MemoryPlan hostPlan(Settings unoffloaded, Choice choice) {
        Settings s = withOffload(unoffloaded, choice.offload());
        List<MemoryPlan.Item> items = new ArrayList<>();
        int n = choice.blocksToSwap();
        items.add(new MemoryPlan.Item(HOST_SWAPPED, hostBytes(s, n), n == 0 ? "--blocks_to_swap 0" : String.format(Locale.ROOT,
                "%d × %s, one image per streamed block", n, MemoryPlan.formatBytes(streamedLayout(s).sizeBytes()))));
        long offloaded = 0;
        for (WanDitActivations.Key k : s.shapes()) offloaded += WanDitActivationLayout.of(s.config(), s.precision(), k).offloadedHostBytes();
        WanDitActivations.Offload off = choice.offload();
        items.add(new MemoryPlan.Item(HOST_OFFLOADED, offloaded, !off.isOffloading() ? "no activation offload"
                : String.format(Locale.ROOT, "saved inputs of %d block%s%s", off.blockInputs(), off.blockInputs() == 1 ? "" : "s",
                off.attentionOutputs() == 0 ? "" : ", attention outputs of " + off.attentionOutputs())));
        items.add(new MemoryPlan.Item(HOST_STAGING, HostMemory.LOAD_STAGING_BYTES,
                "pinned ring the checkpoint is read through, kept for later uploads"));
        return new MemoryPlan(items);
    }

    /** Pinned host bytes of {@code blocksToSwap} streamed blocks (whole-block images). */
    public static long hostBytes(Settings s, int blocksToSwap) {
        return blocksToSwap * streamedLayout(s).sizeBytes();
    }

    /**
     * The streamer's layout for one block, as {@link WanDitWeights#load} builds it ({@link WanDitTree#blockLinearLayout}):
     * per {@link BlockLinear}, the weight in the compute dtype, or the fp8 codes then the scale (O, I/64, 1).
     */
    static BlockLayout streamedLayout(Settings s) {
        WanDitTree.LinearForm form = new WanDitTree.LinearForm(s.isFp8OnDevice(), s.isFp8OnDevice() ? s.scaleDType() : s.act());
        return WanDitTree.of(s.config()).blockLinearLayout(0, weight -> form);
    }

    /** One block's ten Linear weights as resident tensors (no alignment padding). */
    private static long blockLinearBytes(Settings s) {
        long n = 0;
        for (BlockLayout.Entry e : streamedLayout(s).entries()) n += e.sizeBytes();
        return n;
    }

    /**
     * Everything but the block Linear weights, in the compute dtype: every other tensor of the key tree (embeddings,
     * head, modulations, biases, norms; {@link WanDitTree#residentElements}).
     */
    private static long nonLinearBytes(Settings s) {
        return WanDitTree.of(s.config()).residentElements() * s.act().sizeBytes();
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
