package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitTree.BlockNodes;
import dev.wanlora.models.wan.WanDitTree.BlockTensor;
import dev.wanlora.models.wan.WanDitTree.Embedding;
import dev.wanlora.models.wan.WanDitTree.LinearNode;
import dev.wanlora.models.wan.WanDitTree.Node;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.LongConsumer;

/**
 * The frozen DiT parameters on a {@link Backend}, loaded from a checkpoint (spec §2.3) by {@link WanDitLoader} or drawn
 * at random by {@link WanDitRandom}; the tensors and their keys follow the one description of the key tree,
 * {@link WanDitTree}.
 *
 * <p>Storage follows the {@link ComputePrecision}: F32 for {@code FP32} (bf16 files widen exactly), BF16 for
 * {@code BF16_MUSUBI}. With {@link Quantization#FP8_SCALED} or {@link Quantization#FP8_BASE} the ten Linear weights
 * of each block are either dequantized once at load (the CPU reference) or kept as F8_E4M3 codes plus a scale
 * {@code (O, I/64, 1)}, to be dequantized into a scratch buffer right before each GEMM ({@link Linear#isQuantized()}).
 * Both give the same numbers: {@code Backend.dequantizeFp8} is the one dequantization formula.
 *
 * <p>Each {@link Block} groups one block's tensors, so block streaming can move a block's Linear weights as a unit.
 *
 * <p><b>Block streaming</b> ({@link BlockSwap}, musubi's {@code --blocks_to_swap N}, spec §8): the Linear weights of
 * the last N blocks, [numLayers − N, numLayers) as musubi places them, live in host memory in a {@link BlockStreamer}
 * (fp8 codes and scales when those are kept, else the compute-dtype weights) and are copied into a ring of device
 * slots on demand ({@link StreamedBlocks}); biases, norms and modulation of every block stay resident. Code that runs a
 * block brackets it with {@link #acquireBlock} and {@link #releaseBlock}; {@link #block} alone gives a streamed block
 * without its Linear weights ({@link Linear#isStreamed()}).
 */
public final class WanDitWeights implements AutoCloseable {

    /** How the frozen base weights are stored, as musubi's flags choose it (spec §3). */
    public enum Quantization {
        /** The checkpoint's values (bf16 or fp32 files; no {@code --fp8_base}). */
        NONE,
        /**
         * {@code --fp8_base} without {@code --fp8_scaled} (spec §3.1): every floating tensor is cast to float8_e4m3fn
         * without a scale (round to nearest even) and upcast exactly when used. The only mode for fp8 checkpoints.
         */
        FP8_BASE,
        /**
         * {@code --fp8_base --fp8_scaled} (spec §3.2): the ten block Linear weights are quantized block-wise (64 along
         * the input dim, scale = block max / 448 in the weight's dtype); everything else keeps the file's values.
         */
        FP8_SCALED
    }

    /**
     * Which blocks stream their Linear weights from host memory: the last {@code count} (0: none), through a ring of
     * {@code slots} device slots ({@code --block_swap_ring_size}, default {@link BlockStreamer#DEFAULT_SLOTS}).
     */
    public record BlockSwap(int count, int slots) {
        public static final BlockSwap NONE = new BlockSwap(0, BlockStreamer.DEFAULT_SLOTS);

        /** The first streamed block of a model with {@code numLayers} blocks (numLayers when none is). */
        public int firstSwapped(int numLayers) { return numLayers - count; }
    }

    /**
     * The ten Linear layers of a block, in musubi's module order (the LoRA targets and the fp8 targets, spec §3.2 and
     * §7.1). {@link #modulePath()} is the module path inside {@code blocks.{i}}.
     */
    public enum BlockLinear {
        SELF_ATTN_Q("self_attn", "q"), SELF_ATTN_K("self_attn", "k"), SELF_ATTN_V("self_attn", "v"),
        SELF_ATTN_O("self_attn", "o"),
        CROSS_ATTN_Q("cross_attn", "q"), CROSS_ATTN_K("cross_attn", "k"), CROSS_ATTN_V("cross_attn", "v"),
        CROSS_ATTN_O("cross_attn", "o"),
        FFN_0("ffn", "0"), FFN_2("ffn", "2");

        private final String parent;
        private final String child;

        BlockLinear(String parent, String child) {
            this.parent = parent;
            this.child = child;
        }

        /** "self_attn.q", "ffn.0", … */
        public String modulePath() { return parent + "." + child; }

        /** (out, in) of this Linear for a config. */
        public Shape weightShape(WanDitConfig c) {
            return switch (this) {
                case FFN_0 -> Shape.of(c.ffnDim(), c.dim());
                case FFN_2 -> Shape.of(c.dim(), c.ffnDim());
                default -> Shape.of(c.dim(), c.dim());
            };
        }
    }

    /**
     * A Linear y = x·Wᵀ + b. Exactly one of {@code weight} (O, I) in the compute dtype, or {@code quantized} (O, I)
     * F8_E4M3 with {@code scale} (O, I/64, 1) (BF16 or F32; dequantize with {@code Backend.dequantizeFp8}), is set.
     * bias (O).
     */
    public record Linear(String key, Tensor weight, Tensor quantized, Tensor scale, Tensor bias) {
        public boolean isQuantized() { return quantized != null; }

        /**
         * True for {@code --fp8_compute}'s form: per-tensor codes with one F32 scale (1), multiplied by
         * {@code Backend.gemmFp8} and dequantized with {@code dequantizeFp8Tensor} ({@link Fp8ComputeWeights}).
         */
        public boolean hasTensorScale() { return quantized != null && scale.shape().rank() == 1; }

        /** True for the Linear of a streamed block seen outside {@link #acquireBlock}: bias only, no weight here. */
        public boolean isStreamed() { return weight == null && quantized == null; }

        /** (O, I) of the weight. */
        public Shape weightShape() {
            if (isStreamed()) {
                throw new IllegalStateException(key + " is streamed (--blocks_to_swap): its weight is only on the device"
                        + " between WanDitWeights.acquireBlock and releaseBlock");
            }
            return isQuantized() ? quantized.shape() : weight.shape();
        }

        /** Bytes of the tensors held here (a streamed Linear: its bias). */
        long sizeBytes() {
            long n = 0;
            for (Tensor t : new Tensor[] {weight, quantized, scale, bias}) if (t != null) n += t.sizeBytes();
            return n;
        }

        void close() {
            for (Tensor t : new Tensor[] {weight, quantized, scale, bias}) if (t != null) t.close();
        }
    }

    /**
     * One WanAttentionBlock's parameters (spec §1.3). modulation (1, 6, C); the RMSNorm weights (C); norm3 (C) with
     * bias (C), the only affine LayerNorm; {@link #linear} gives the ten Linears.
     */
    public record Block(int index, Tensor modulation, Map<BlockLinear, Linear> linears, Tensor selfAttnNormQ,
                        Tensor selfAttnNormK, Tensor norm3Weight, Tensor norm3Bias, Tensor crossAttnNormQ,
                        Tensor crossAttnNormK) {
        public Linear linear(BlockLinear which) { return linears.get(which); }

        long sizeBytes() {
            long n = 0;
            for (Linear l : linears.values()) n += l.sizeBytes();
            for (Tensor t : new Tensor[] {modulation, selfAttnNormQ, selfAttnNormK, norm3Weight, norm3Bias, crossAttnNormQ,
                    crossAttnNormK}) n += t.sizeBytes();
            return n;
        }

        void close() {
            linears.values().forEach(Linear::close);
            for (Tensor t : new Tensor[] {modulation, selfAttnNormQ, selfAttnNormK, norm3Weight, norm3Bias, crossAttnNormQ,
                    crossAttnNormK}) t.close();
        }
    }

    private final WanDitConfig config;
    private final Quantization quantization;
    /** Conv3d (C, Cin, 1, 2, 2) seen as a Linear over 64-element patches: weight (C, P), bias (C). */
    private final Linear patchEmbedding;
    /** text_embedding.0 (C, Ct) and .2 (C, C). */
    private final Linear textEmbedding0;
    private final Linear textEmbedding2;
    /** time_embedding.0 (C, Tf) and .2 (C, C); time_projection.1 (6C, C). */
    private final Linear timeEmbedding0;
    private final Linear timeEmbedding2;
    private final Linear timeProjection;
    /** head.head (4·Cout, C). */
    private final Linear head;
    /** head.modulation (1, 2, C). */
    private final Tensor headModulation;
    private final List<Block> blocks;
    private final BlockSwap swap;
    /** The streamed blocks' Linear weights; null without streaming. */
    private final StreamedBlocks streamed;

    /** The weights made of {@code parts} (every tensor of {@code config}'s tree but the streamed blocks' Linear weights). */
    private WanDitWeights(WanDitTree tree, Quantization quantization, BlockSwap swap, StreamedBlocks streamed, Parts parts) {
        this.config = tree.config();
        this.quantization = quantization;
        this.patchEmbedding = parts.linear(tree.embedding(Embedding.PATCH_EMBEDDING));
        this.textEmbedding0 = parts.linear(tree.embedding(Embedding.TEXT_EMBEDDING_0));
        this.textEmbedding2 = parts.linear(tree.embedding(Embedding.TEXT_EMBEDDING_2));
        this.timeEmbedding0 = parts.linear(tree.embedding(Embedding.TIME_EMBEDDING_0));
        this.timeEmbedding2 = parts.linear(tree.embedding(Embedding.TIME_EMBEDDING_2));
        this.timeProjection = parts.linear(tree.embedding(Embedding.TIME_PROJECTION));
        this.head = parts.linear(tree.embedding(Embedding.HEAD));
        this.headModulation = parts.tensor(tree.headModulation());
        List<Block> blocks = new ArrayList<>();
        for (BlockNodes b : tree.blocks()) {
            Map<BlockLinear, Linear> linears = new EnumMap<>(BlockLinear.class);
            for (BlockLinear which : BlockLinear.values()) linears.put(which, parts.linear(b.linear(which)));
            blocks.add(new Block(b.index(), parts.tensor(b.tensor(BlockTensor.MODULATION)),
                    Collections.unmodifiableMap(linears), parts.tensor(b.tensor(BlockTensor.SELF_ATTN_NORM_Q)),
                    parts.tensor(b.tensor(BlockTensor.SELF_ATTN_NORM_K)), parts.tensor(b.tensor(BlockTensor.NORM3_WEIGHT)),
                    parts.tensor(b.tensor(BlockTensor.NORM3_BIAS)), parts.tensor(b.tensor(BlockTensor.CROSS_ATTN_NORM_Q)),
                    parts.tensor(b.tensor(BlockTensor.CROSS_ATTN_NORM_K))));
        }
        this.blocks = List.copyOf(blocks);
        this.swap = swap;
        this.streamed = streamed;
    }

    public WanDitConfig config() { return config; }

    public Quantization quantization() { return quantization; }

    public Linear patchEmbedding() { return patchEmbedding; }

    public Linear textEmbedding0() { return textEmbedding0; }

    public Linear textEmbedding2() { return textEmbedding2; }

    public Linear timeEmbedding0() { return timeEmbedding0; }

    public Linear timeEmbedding2() { return timeEmbedding2; }

    public Linear timeProjection() { return timeProjection; }

    public Linear head() { return head; }

    public Tensor headModulation() { return headModulation; }

    /** Every block; a streamed one without its Linear weights (see {@link #acquireBlock}). */
    public List<Block> blocks() { return blocks; }

    /** Block i; a streamed one without its Linear weights (see {@link #acquireBlock}). */
    public Block block(int i) { return blocks.get(i); }

    public BlockSwap swap() { return swap; }

    /** True when block i's Linear weights are streamed. */
    public boolean isStreamed(int i) { return i >= swap.firstSwapped(config.numLayers()); }

    /** The streamer of the swapped blocks (copy counts, host bytes), or null without streaming. */
    public BlockStreamer streamer() { return streamed == null ? null : streamed.streamer(); }

    /**
     * Block i with every weight on the device: a resident block as it is; a streamed one copied into a slot (unless
     * it is still there) with compute ordered after the copy. Each call must be paired with {@link #releaseBlock}(i)
     * after the last op that reads the block's Linear weights; between the two, the returned block is valid.
     */
    public Block acquireBlock(int i) {
        return isStreamed(i) ? streamed.acquire(blocks.get(i)) : blocks.get(i);
    }

    /** Ends the use of block i's weights by the ops queued so far (a no-op for a resident block). */
    public void releaseBlock(int i) {
        if (isStreamed(i)) streamed.release(i);
    }

    /**
     * Starts copying block i's weights now if it is streamed and not resident, so a later {@link #acquireBlock}(i)
     * overlaps the copy with the compute queued before it. Does nothing for a resident block or i outside the model.
     */
    public void prefetchBlock(int i) {
        if (i >= 0 && i < config.numLayers() && isStreamed(i)) streamed.prefetch(i);
    }

    /** True when the block Linears are in {@code --fp8_compute}'s form ({@link Linear#hasTensorScale()}). */
    public boolean isFp8Compute() {
        Linear probe = blocks.getFirst().linear(BlockLinear.SELF_ATTN_Q);
        if (probe.isStreamed()) return streamed.hasTensorScales();
        return probe.hasTensorScale();
    }

    /** The largest (O·I) of the quantized Linears, streamed ones included (0 when none): a dequantization scratch size. */
    public long largestQuantizedWeightElements() {
        long max = 0;
        for (Block b : blocks) {
            for (Linear l : b.linears().values()) if (l.isQuantized()) max = Math.max(max, l.quantized().numElements());
        }
        return streamed == null ? max : Math.max(max, streamed.largestQuantizedElements());
    }

    /**
     * Device bytes of the resident tensors (every tensor this object holds outside the streamer) plus the streamer's
     * slots, counted in the tensors' dtypes (what a GPU holds; the memory plan's "weights resident" + "swap slots").
     */
    public long deviceBytes() {
        long n = headModulation.sizeBytes();
        for (Linear l : new Linear[] {patchEmbedding, textEmbedding0, textEmbedding2, timeEmbedding0, timeEmbedding2,
                timeProjection, head}) n += l.sizeBytes();
        for (Block b : blocks) n += b.sizeBytes();
        return n + (streamed == null ? 0 : streamed.deviceBytes());
    }

    @Override
    public void close() {
        for (Linear l : new Linear[] {patchEmbedding, textEmbedding0, textEmbedding2, timeEmbedding0, timeEmbedding2,
                timeProjection, head}) l.close();
        headModulation.close();
        blocks.forEach(Block::close);
        if (streamed != null) streamed.close();
    }


    static void checkSwap(WanDitConfig config, BlockSwap swap) {
        if (swap.count() < 0 || swap.count() > config.numLayers() - 1 || swap.slots() < 2) {
            throw new IllegalArgumentException("--blocks_to_swap " + swap.count() + " with --block_swap_ring_size "
                    + swap.slots() + ": expected 0 to " + (config.numLayers() - 1) + " blocks (this model has "
                    + config.numLayers() + "; musubi's limit is blocks − 1) and at least 2 slots");
        }
    }

    /**
     * The tensors a loader or generator made, by tree node, before they become a {@link WanDitWeights}; {@link #owned}
     * lists every one alive, so a failure frees them all.
     */
    static final class Parts {
        private final Map<Node, Tensor> dense = new HashMap<>();
        private final Map<Node, Tensor[]> quantized = new HashMap<>();
        private final Set<Node> streamed = new HashSet<>();
        final List<Tensor> owned = new ArrayList<>();

        /** A tensor in the compute dtype (a weight in its file shape). */
        void put(Node node, Tensor t) { dense.put(node, t); }

        /** A block Linear weight as F8_E4M3 codes (O, I) and a scale (O, I/64, 1). */
        void putQuantized(Node weight, Tensor codes, Tensor scale) { quantized.put(weight, new Tensor[] {codes, scale}); }

        /** A block Linear weight handed to {@link StreamedBlocks}: its Linear here holds the bias alone. */
        void putStreamed(Node weight) { streamed.add(weight); }

        Tensor tensor(Node node) {
            Tensor t = dense.get(node);
            if (t == null) throw new IllegalStateException("WanDitWeights: no tensor was made for " + node.key());
            return t;
        }

        /**
         * The Linear of {@code n}: its weight as (O, I) (the loaded tensor itself when no reshape is needed, so the
         * Linear holds the owner), or its codes and scale, or, for a streamed block, its bias alone.
         */
        Linear linear(LinearNode n) {
            String key = n.weight().key();
            Tensor bias = tensor(n.bias());
            Tensor[] q = quantized.get(n.weight());
            if (q != null) return new Linear(key, null, q[0], q[1], bias);
            if (streamed.contains(n.weight())) return new Linear(key, null, null, null, bias);
            Tensor w = tensor(n.weight());
            return new Linear(key, w.shape().equals(n.matrixShape()) ? w : w.reshape(n.matrixShape()), null, null, bias);
        }
    }

    // ---------------------------------------------------------------- making weights (WanDitLoader, WanDitRandom)

    /** {@code parts} as weights, streaming the last {@code swap.count()} blocks through {@code streamed} (or null). */
    static WanDitWeights of(WanDitTree tree, Quantization quantization, BlockSwap swap, StreamedBlocks streamed,
                            Parts parts) {
        return new WanDitWeights(tree, quantization, swap, streamed, parts);
    }

    /**
     * Loads every tensor of a Wan2.1 T2V DiT. {@code checkpoint} must be opened with {@link SafeTensors#DIT_PREFIXES}
     * stripped. The key set must be exactly the model's (musubi loads with {@code strict=True}).
     *
     * @param dequantizeFp8AtLoad with an fp8 {@code quantization}: true stores the block Linear weights dequantized
     *                            in the compute dtype (CPU reference; no per-GEMM work), false keeps F8_E4M3 codes plus
     *                            scales (a GPU's memory saving)
     * @throws IllegalArgumentException naming the file and key for a missing, extra or mis-shaped tensor, or an
     *                                  unsupported combination (fp8 file with FP8_SCALED)
     */
    public static WanDitWeights load(Backend backend, SafeTensors checkpoint, WanDitConfig config,
                                     ComputePrecision precision, Quantization quantization, boolean dequantizeFp8AtLoad) {
        return load(backend, checkpoint, config, precision, quantization, dequantizeFp8AtLoad, BlockSwap.NONE);
    }

    /**
     * {@link #load(Backend, SafeTensors, WanDitConfig, ComputePrecision, Quantization, boolean)} with the Linear
     * weights of the last {@code swap.count()} blocks streamed from host memory: each is loaded (and quantized) as a
     * resident one would be, copied into the streamer's host image and freed, so at most one block's Linear weights
     * are on the device at a time during loading.
     *
     * @throws IllegalArgumentException for a swap count outside [0, numLayers − 1] (musubi's limit) or fewer than 2 slots
     */
    public static WanDitWeights load(Backend backend, SafeTensors checkpoint, WanDitConfig config,
                                     ComputePrecision precision, Quantization quantization, boolean dequantizeFp8AtLoad,
                                     BlockSwap swap) {
        return load(backend, checkpoint, config, precision, quantization, dequantizeFp8AtLoad, swap, bytes -> {});
    }

    /**
     * {@link #load(Backend, SafeTensors, WanDitConfig, ComputePrecision, Quantization, boolean, BlockSwap)} reporting
     * progress: {@code bytesRead} gets the file bytes of each tensor once they are read (they add up to
     * {@link #loadBytes}). The tensors are read in the order of their bytes in the file ({@link WanDitLoader}). Returns
     * once every copy and conversion on the backend is done.
     */
    public static WanDitWeights load(Backend backend, SafeTensors checkpoint, WanDitConfig config,
                                     ComputePrecision precision, Quantization quantization, boolean dequantizeFp8AtLoad,
                                     BlockSwap swap, LongConsumer bytesRead) {
        return WanDitLoader.load(backend, checkpoint, config, precision, quantization, dequantizeFp8AtLoad, false, swap,
                bytesRead);
    }

    /**
     * {@link #load(Backend, SafeTensors, WanDitConfig, ComputePrecision, Quantization, boolean, BlockSwap, LongConsumer)}
     * with {@code --fp8_compute}: the block Linear weights re-quantized per tensor for {@code Backend.gemmFp8}
     * ({@link Linear#hasTensorScale()}; needs an fp8 {@code quantization}).
     */
    public static WanDitWeights load(Backend backend, SafeTensors checkpoint, WanDitConfig config,
                                     ComputePrecision precision, Quantization quantization, boolean dequantizeFp8AtLoad,
                                     boolean fp8Compute, BlockSwap swap, LongConsumer bytesRead) {
        return WanDitLoader.load(backend, checkpoint, config, precision, quantization, dequantizeFp8AtLoad, fp8Compute, swap,
                bytesRead);
    }

    /** File bytes {@link #load} reads from {@code checkpoint}: every tensor but the scaled-fp8 scales and markers. */
    public static long loadBytes(SafeTensors checkpoint) { return WanDitLoader.loadBytes(checkpoint); }

    /** {@link WanDitRandom#checkpoint}: a random BF16 checkpoint for demos and tests. */
    public static List<SafeTensorsWriter.Entry> randomCheckpoint(WanDitConfig config, long seed) {
        return WanDitRandom.checkpoint(config, seed);
    }

    /** {@link WanDitRandom#onBackend}: random weights drawn on the backend, for bench runs without a checkpoint. */
    public static WanDitWeights random(Backend backend, WanDitConfig config, ComputePrecision precision,
                                       Quantization quantization, boolean dequantizeFp8AtLoad, BlockSwap swap, long seed) {
        return WanDitRandom.onBackend(backend, config, precision, quantization, dequantizeFp8AtLoad, false, swap, seed);
    }

    /** {@link #random} with {@code --fp8_compute} (see the {@link #load} overload that takes it). */
    public static WanDitWeights random(Backend backend, WanDitConfig config, ComputePrecision precision,
                                       Quantization quantization, boolean dequantizeFp8AtLoad, boolean fp8Compute,
                                       BlockSwap swap, long seed) {
        return WanDitRandom.onBackend(backend, config, precision, quantization, dequantizeFp8AtLoad, fp8Compute, swap, seed);
    }
}
