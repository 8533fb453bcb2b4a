package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.FileReadAhead;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.function.LongConsumer;

/**
 * The frozen DiT parameters on a {@link Backend}, loaded from a checkpoint (spec §2.3). This is the only class that
 * knows checkpoint key names; they are built with {@link KeyPath}, which mirrors the key tree.
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
 * slots on demand; biases, norms and modulation of every block stay resident. Code that runs a block brackets it with
 * {@link #acquireBlock} and {@link #releaseBlock}; {@link #block} alone gives a streamed block without its Linear
 * weights ({@link Linear#isStreamed()}).
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
    /** The streamed blocks' Linear weights (entries in {@link #streamedEntries} order); null without streaming. */
    private final BlockStreamer streamer;
    /** streamedViews[s][k]: streamed block firstSwapped + s with its Linears bound to slot k (made on first use). */
    private final Block[][] streamedViews;

    private WanDitWeights(WanDitConfig config, Quantization quantization, Linear patchEmbedding, Linear textEmbedding0,
                          Linear textEmbedding2, Linear timeEmbedding0, Linear timeEmbedding2, Linear timeProjection,
                          Linear head, Tensor headModulation, List<Block> blocks, BlockSwap swap, BlockStreamer streamer) {
        this.config = config;
        this.quantization = quantization;
        this.patchEmbedding = patchEmbedding;
        this.textEmbedding0 = textEmbedding0;
        this.textEmbedding2 = textEmbedding2;
        this.timeEmbedding0 = timeEmbedding0;
        this.timeEmbedding2 = timeEmbedding2;
        this.timeProjection = timeProjection;
        this.head = head;
        this.headModulation = headModulation;
        this.blocks = blocks;
        this.swap = swap;
        this.streamer = streamer;
        this.streamedViews = new Block[swap.count()][swap.slots()];
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
    public BlockStreamer streamer() { return streamer; }

    /**
     * Block i with every weight on the device: a resident block as it is; a streamed one copied into a slot (unless
     * it is still there) with compute ordered after the copy. Each call must be paired with {@link #releaseBlock}(i)
     * after the last op that reads the block's Linear weights; between the two, the returned block is valid.
     */
    public Block acquireBlock(int i) {
        if (!isStreamed(i)) return blocks.get(i);
        int s = i - swap.firstSwapped(config.numLayers());
        int k = streamer.acquire(s);
        Block view = streamedViews[s][k];
        if (view == null) {
            view = streamedView(blocks.get(i), streamer.slot(k));
            streamedViews[s][k] = view;
        }
        return view;
    }

    /** Ends the use of block i's weights by the ops queued so far (a no-op for a resident block). */
    public void releaseBlock(int i) {
        if (isStreamed(i)) streamer.release(i - swap.firstSwapped(config.numLayers()));
    }

    /**
     * Starts copying block i's weights now if it is streamed and not resident, so a later {@link #acquireBlock}(i)
     * overlaps the copy with the compute queued before it. Does nothing for a resident block or i outside the model.
     */
    public void prefetchBlock(int i) {
        if (i >= 0 && i < config.numLayers() && isStreamed(i)) streamer.prefetch(i - swap.firstSwapped(config.numLayers()));
    }

    /** The largest (O·I) of the quantized Linears, streamed ones included (0 when none): a dequantization scratch size. */
    public long largestQuantizedWeightElements() {
        long max = 0;
        for (Block b : blocks) {
            for (Linear l : b.linears().values()) if (l.isQuantized()) max = Math.max(max, l.quantized().numElements());
        }
        if (streamer != null) {
            for (BlockLayout.Entry e : streamer.layout().entries()) {
                if (e.dtype() == DType.F8_E4M3) max = Math.max(max, e.shape().numElements());
            }
        }
        return max;
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
        return n + (streamer == null ? 0 : streamer.deviceBytes());
    }

    @Override
    public void close() {
        for (Linear l : new Linear[] {patchEmbedding, textEmbedding0, textEmbedding2, timeEmbedding0, timeEmbedding2,
                timeProjection, head}) l.close();
        headModulation.close();
        blocks.forEach(Block::close);
        if (streamer != null) streamer.close();
    }

    private static void checkSwap(WanDitConfig config, BlockSwap swap) {
        if (swap.count() < 0 || swap.count() > config.numLayers() - 1 || swap.slots() < 2) {
            throw new IllegalArgumentException("--blocks_to_swap " + swap.count() + " with --block_swap_ring_size "
                    + swap.slots() + ": expected 0 to " + (config.numLayers() - 1) + " blocks (this model has "
                    + config.numLayers() + "; musubi's limit is blocks − 1) and at least 2 slots");
        }
    }

    /**
     * Moves a block's Linear weights (the tensors {@link #streamedEntries} lists; {@code owned} tracks them) into the
     * streamer as its block {@code streamed}, opening the streamer from their dtypes and shapes on the first call, and
     * frees them: the Linears keep only their biases. Returns the streamer.
     */
    private static BlockStreamer stream(Backend backend, BlockStreamer streamer, BlockSwap swap, int streamed,
                                        Map<BlockLinear, Linear> linears, List<Tensor> owned) {
        List<Tensor> entries = streamedEntries(linears);
        if (streamer == null) {
            List<BlockLayout.Entry> layout = new ArrayList<>();
            for (Tensor t : entries) layout.add(new BlockLayout.Entry(t.dtype(), t.shape()));
            streamer = BlockStreamer.open(backend, new BlockLayout(layout), swap.count(), swap.slots());
        }
        for (int e = 0; e < entries.size(); e++) {
            Tensor t = entries.get(e);
            streamer.store(streamed, e, t);
            owned.remove(t);
            t.close();
        }
        linears.replaceAll((which, l) -> new Linear(l.key(), null, null, null, l.bias()));
        return streamer;
    }

    /**
     * The tensors of a block's Linear weights as the streamer holds them, in {@link BlockLinear} order: the weight, or
     * the fp8 codes then the scale. Every streamed block has this order.
     */
    private static List<Tensor> streamedEntries(Map<BlockLinear, Linear> linears) {
        List<Tensor> entries = new ArrayList<>();
        for (BlockLinear which : BlockLinear.values()) {
            Linear l = linears.get(which);
            if (l.isQuantized()) {
                entries.add(l.quantized());
                entries.add(l.scale());
            } else {
                entries.add(l.weight());
            }
        }
        return entries;
    }

    /** {@code home} (a streamed block: biases, norms, modulation) with its Linear weights bound to a slot's tensors. */
    private static Block streamedView(Block home, List<Tensor> slot) {
        Map<BlockLinear, Linear> linears = new EnumMap<>(BlockLinear.class);
        int e = 0;
        for (BlockLinear which : BlockLinear.values()) {
            Linear l = home.linear(which);
            boolean isQuantized = slot.get(e).dtype() == DType.F8_E4M3;
            linears.put(which, isQuantized ? new Linear(l.key(), null, slot.get(e), slot.get(e + 1), l.bias())
                    : new Linear(l.key(), slot.get(e), null, null, l.bias()));
            e += isQuantized ? 2 : 1;
        }
        return new Block(home.index(), home.modulation(), Collections.unmodifiableMap(linears), home.selfAttnNormQ(),
                home.selfAttnNormK(), home.norm3Weight(), home.norm3Bias(), home.crossAttnNormQ(), home.crossAttnNormK());
    }

    // ---------------------------------------------------------------- loading

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
     * resident one would be, copied into the streamer's host image and freed, so at most one such weight is on the
     * device at a time during loading.
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
     * {@link #loadBytes}). Returns once every copy and conversion on the backend is done.
     */
    public static WanDitWeights load(Backend backend, SafeTensors checkpoint, WanDitConfig config,
                                     ComputePrecision precision, Quantization quantization, boolean dequantizeFp8AtLoad,
                                     BlockSwap swap, LongConsumer bytesRead) {
        checkSwap(config, swap);
        Loader loader = new Loader(backend, checkpoint, config, precision, quantization, dequantizeFp8AtLoad, bytesRead);
        List<Tensor> loaded = loader.loaded;
        int firstSwapped = swap.firstSwapped(config.numLayers());
        BlockStreamer streamer = null;
        // the files front to back into the page cache while the loader reads tensors in the model's order
        try (FileReadAhead readAhead = FileReadAhead.start(checkpoint.files())) {
            loader.checkKeySet();
            KeyPath root = KeyPath.root();
            int c = config.dim();
            Linear patch = loader.linear(root.at("patch_embedding"), Shape.of(c, config.inChannels(), 1, 2, 2),
                    Shape.of(c, config.patchLength()), false);
            KeyPath text = root.at("text_embedding");
            Linear text0 = loader.linear(text.at(0), Shape.of(c, config.textDim()), null, false);
            Linear text2 = loader.linear(text.at(2), Shape.of(c, c), null, false);
            KeyPath time = root.at("time_embedding");
            Linear time0 = loader.linear(time.at(0), Shape.of(c, config.freqDim()), null, false);
            Linear time2 = loader.linear(time.at(2), Shape.of(c, c), null, false);
            Linear projection = loader.linear(root.at("time_projection").at(1), Shape.of(6L * c, c), null, false);
            KeyPath headPath = root.at("head");
            Linear head = loader.linear(headPath.at("head"), Shape.of(config.headOutFeatures(), c), null, false);
            Tensor headModulation = loader.tensor(headPath.tensor("modulation"), Shape.of(1, 2, c));
            List<Block> blocks = new ArrayList<>();
            for (int i = 0; i < config.numLayers(); i++) {
                KeyPath b = root.at("blocks").at(i);
                Map<BlockLinear, Linear> linears = new EnumMap<>(BlockLinear.class);
                for (BlockLinear which : BlockLinear.values()) {
                    String[] path = which.modulePath().split("\\.");
                    linears.put(which, loader.linear(b.at(path[0]).at(path[1]), which.weightShape(config), null, true));
                }
                if (i >= firstSwapped) streamer = stream(backend, streamer, swap, i - firstSwapped, linears, loaded);
                KeyPath self = b.at("self_attn");
                KeyPath cross = b.at("cross_attn");
                KeyPath norm3 = b.at("norm3");
                blocks.add(new Block(i, loader.tensor(b.tensor("modulation"), Shape.of(1, 6, c)),
                        Collections.unmodifiableMap(linears),
                        loader.tensor(self.at("norm_q").tensor("weight"), Shape.of(c)),
                        loader.tensor(self.at("norm_k").tensor("weight"), Shape.of(c)),
                        loader.tensor(norm3.tensor("weight"), Shape.of(c)),
                        loader.tensor(norm3.tensor("bias"), Shape.of(c)),
                        loader.tensor(cross.at("norm_q").tensor("weight"), Shape.of(c)),
                        loader.tensor(cross.at("norm_k").tensor("weight"), Shape.of(c))));
            }
            loader.checkAllConsumed();
            loader.finish();
            return new WanDitWeights(config, quantization, patch, text0, text2, time0, time2, projection, head,
                    headModulation, List.copyOf(blocks), swap, streamer);
        } catch (RuntimeException e) {
            backend.synchronize(); // queued conversions may still read the scratch tensors
            loader.closeScratch();
            loaded.forEach(Tensor::close);
            if (streamer != null) streamer.close();
            throw e;
        }
    }

    /** File bytes {@link #load} reads from {@code checkpoint}: every tensor but the scaled-fp8 scales and markers. */
    public static long loadBytes(SafeTensors checkpoint) {
        ScaledFp8Layout layout = ScaledFp8Layout.of(checkpoint);
        long n = 0;
        for (String key : checkpoint.keys()) {
            if (layout == null || !layout.auxiliary().contains(key)) n += checkpoint.info(key).byteLength();
        }
        return n;
    }

    /**
     * Every key of an official Wan2.1 T2V checkpoint for {@code config} with its shape, in the order {@link #load} reads
     * them (for writers of real-size test checkpoints; {@code isBlockLinearWeight} tells the ten fp8 targets per block).
     */
    public static Map<String, Shape> checkpointShapes(WanDitConfig config) {
        Map<String, Shape> shapes = new java.util.LinkedHashMap<>();
        int c = config.dim();
        KeyPath root = KeyPath.root();
        java.util.function.BiConsumer<KeyPath, Shape> linear = (path, shape) -> {
            shapes.put(path.tensor("weight"), shape);
            shapes.put(path.tensor("bias"), Shape.of(shape.dim(0)));
        };
        linear.accept(root.at("patch_embedding"), Shape.of(c, config.inChannels(), 1, 2, 2));
        linear.accept(root.at("text_embedding").at(0), Shape.of(c, config.textDim()));
        linear.accept(root.at("text_embedding").at(2), Shape.of(c, c));
        linear.accept(root.at("time_embedding").at(0), Shape.of(c, config.freqDim()));
        linear.accept(root.at("time_embedding").at(2), Shape.of(c, c));
        linear.accept(root.at("time_projection").at(1), Shape.of(6L * c, c));
        linear.accept(root.at("head").at("head"), Shape.of(config.headOutFeatures(), c));
        shapes.put(root.at("head").tensor("modulation"), Shape.of(1, 2, c));
        for (int i = 0; i < config.numLayers(); i++) {
            KeyPath b = root.at("blocks").at(i);
            for (BlockLinear which : BlockLinear.values()) {
                String[] path = which.modulePath().split("\\.");
                linear.accept(b.at(path[0]).at(path[1]), which.weightShape(config));
            }
            shapes.put(b.tensor("modulation"), Shape.of(1, 6, c));
            for (String attention : List.of("self_attn", "cross_attn")) {
                for (String norm : List.of("norm_q", "norm_k")) shapes.put(b.at(attention).at(norm).tensor("weight"), Shape.of(c));
            }
            shapes.put(b.at("norm3").tensor("weight"), Shape.of(c));
            shapes.put(b.at("norm3").tensor("bias"), Shape.of(c));
        }
        return shapes;
    }

    /** True for {@code blocks.N.(self_attn|cross_attn).(q|k|v|o).weight} and {@code blocks.N.ffn.(0|2).weight}. */
    public static boolean isBlockLinearWeight(String key) {
        return key.matches("blocks\\.\\d+\\.((self_attn|cross_attn)\\.[qkvo]|ffn\\.[02])\\.weight");
    }

    /**
     * A Wan2.1 T2V checkpoint for {@code config} with random BF16 weights, as the tensors of a safetensors file: for
     * {@code wanlora demo} and tests, which need a model without a download. Values follow Wan's from-scratch
     * initialisation (W:wan/modules/model.py {@code init_weights} L609‑631 and the modulation parameters L276, L335 at
     * the spec's commit): Linear weights xavier-uniform U(±√(6/(in+out))) with zero biases, the patch embedding
     * likewise over its flattened (C, Cin·4) weight, text and time embeddings N(0, 0.02²), modulations N(0, 1)/√C,
     * norm weights 1 and the norm3 bias 0. One deliberate difference: {@code head.head.weight} is xavier-uniform, not
     * zero, since a zero head passes no gradient to any LoRA and a demo would learn nothing.
     */
    public static List<SafeTensorsWriter.Entry> randomCheckpoint(WanDitConfig config, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        int c = config.dim();
        KeyPath root = KeyPath.root();
        randomLinear(entries, random, root.at("patch_embedding"), Shape.of(c, config.inChannels(), 1, 2, 2), -1);
        randomLinear(entries, random, root.at("text_embedding").at(0), Shape.of(c, config.textDim()), 0.02);
        randomLinear(entries, random, root.at("text_embedding").at(2), Shape.of(c, c), 0.02);
        randomLinear(entries, random, root.at("time_embedding").at(0), Shape.of(c, config.freqDim()), 0.02);
        randomLinear(entries, random, root.at("time_embedding").at(2), Shape.of(c, c), 0.02);
        randomLinear(entries, random, root.at("time_projection").at(1), Shape.of(6L * c, c), -1);
        randomLinear(entries, random, root.at("head").at("head"), Shape.of(config.headOutFeatures(), c), -1);
        randomTensor(entries, root.at("head").tensor("modulation"), Shape.of(1, 2, c), () -> random.nextGaussian() / Math.sqrt(c));
        for (int i = 0; i < config.numLayers(); i++) {
            KeyPath b = root.at("blocks").at(i);
            randomTensor(entries, b.tensor("modulation"), Shape.of(1, 6, c), () -> random.nextGaussian() / Math.sqrt(c));
            for (BlockLinear which : BlockLinear.values()) {
                String[] path = which.modulePath().split("\\.");
                randomLinear(entries, random, b.at(path[0]).at(path[1]), which.weightShape(config), -1);
            }
            for (String attention : List.of("self_attn", "cross_attn")) {
                for (String norm : List.of("norm_q", "norm_k")) {
                    randomTensor(entries, b.at(attention).at(norm).tensor("weight"), Shape.of(c), () -> 1);
                }
            }
            randomTensor(entries, b.at("norm3").tensor("weight"), Shape.of(c), () -> 1);
            randomTensor(entries, b.at("norm3").tensor("bias"), Shape.of(c), () -> 0);
        }
        return entries;
    }

    /**
     * Random weights made on the backend itself, for timing and memory runs ({@code wanlora bench}) of a full-size
     * model without a checkpoint: nothing of the size of a weight crosses from the host (except the Linear weights of
     * the {@code swap.count()} streamed blocks, moved into pinned host memory as {@link #load} does). Every tensor is
     * drawn from
     * {@link Backend#gaussianNoise} (one counter stream from {@code seed}, each tensor at the next offset) and scaled:
     * Linear weights N(0, 2/(in + out)) (the variance of Wan's xavier-uniform init), the text and time embeddings
     * N(0, 0.02²), modulations N(0, 1/C), biases N(0, 0.01²) (small but never zero, so no kernel sees a special
     * value); norm weights are 1. Under FP8_SCALED a block Linear gets e4m3 codes N(0, 48²) (at most 448 = 9σ, so
     * no code overflows) with one scale σ_w/48 for every block; under FP8_BASE its codes are the N(0, σ_w²) values
     * cast to e4m3 with unit scales, as {@link #load} stores them (the other tensors, which FP8_BASE also rounds to
     * e4m3, keep their values: rounding them changes no op's cost).
     *
     * @param dequantizeFp8AtLoad as in {@link #load}: store fp8 block weights dequantized (CPU) or as codes + scales
     * @param swap                as in {@link #load}
     */
    public static WanDitWeights random(Backend backend, WanDitConfig config, ComputePrecision precision,
                                       Quantization quantization, boolean dequantizeFp8AtLoad, BlockSwap swap, long seed) {
        checkSwap(config, swap);
        DeviceRandom random = new DeviceRandom(backend, precision.activationDType(), seed);
        int firstSwapped = swap.firstSwapped(config.numLayers());
        BlockStreamer streamer = null;
        try {
            int c = config.dim();
            KeyPath root = KeyPath.root();
            Linear patch = random.linear(root.at("patch_embedding"), Shape.of(c, config.patchLength()), -1);
            Linear text0 = random.linear(root.at("text_embedding").at(0), Shape.of(c, config.textDim()), 0.02);
            Linear text2 = random.linear(root.at("text_embedding").at(2), Shape.of(c, c), 0.02);
            Linear time0 = random.linear(root.at("time_embedding").at(0), Shape.of(c, config.freqDim()), 0.02);
            Linear time2 = random.linear(root.at("time_embedding").at(2), Shape.of(c, c), 0.02);
            Linear projection = random.linear(root.at("time_projection").at(1), Shape.of(6L * c, c), -1);
            Linear head = random.linear(root.at("head").at("head"), Shape.of(config.headOutFeatures(), c), -1);
            Tensor headModulation = random.normal(Shape.of(1, 2, c), 1 / Math.sqrt(c));
            List<Block> blocks = new ArrayList<>();
            for (int i = 0; i < config.numLayers(); i++) {
                Map<BlockLinear, Linear> linears = new EnumMap<>(BlockLinear.class);
                for (BlockLinear which : BlockLinear.values()) {
                    String[] path = which.modulePath().split("\\.");
                    KeyPath key = root.at("blocks").at(i).at(path[0]).at(path[1]);
                    linears.put(which, quantization == Quantization.NONE
                            ? random.linear(key, which.weightShape(config), -1)
                            : random.quantizedLinear(key, which.weightShape(config), quantization, dequantizeFp8AtLoad));
                }
                if (i >= firstSwapped) streamer = stream(backend, streamer, swap, i - firstSwapped, linears, random.made);
                blocks.add(new Block(i, random.normal(Shape.of(1, 6, c), 1 / Math.sqrt(c)),
                        Collections.unmodifiableMap(linears), random.ones(Shape.of(c)), random.ones(Shape.of(c)),
                        random.ones(Shape.of(c)), random.normal(Shape.of(c), 0.01), random.ones(Shape.of(c)),
                        random.ones(Shape.of(c))));
            }
            return new WanDitWeights(config, quantization, patch, text0, text2, time0, time2, projection, head,
                    headModulation, List.copyOf(blocks), swap, streamer);
        } catch (RuntimeException e) {
            random.made.forEach(Tensor::close);
            if (streamer != null) streamer.close();
            throw e;
        } finally {
            random.closeScratch();
        }
    }

    /** Tensors of {@link #random}: a counter-based normal stream on the backend, scaled in place. */
    private static final class DeviceRandom {
        /** Standard deviation of the random e4m3 codes: 448 (the largest code) is 9.3σ, so none overflows. */
        private static final double CODE_STD = 48;

        private final Backend backend;
        private final DType computeDType;
        private final long seed;
        private long offset;
        private Tensor scratch; // (n) compute dtype: the normal values that become e4m3 codes
        final List<Tensor> made = new ArrayList<>();

        DeviceRandom(Backend backend, DType computeDType, long seed) {
            this.backend = backend;
            this.computeDType = computeDType;
            this.seed = seed;
        }

        /** N(0, std²) in the compute dtype. */
        Tensor normal(Shape shape, double std) {
            Tensor t = backend.allocate(computeDType, shape);
            made.add(t);
            fillNormal(t, std);
            return t;
        }

        Tensor ones(Shape shape) {
            Tensor t = backend.allocate(computeDType, shape);
            made.add(t);
            backend.fill(t, 1);
            return t;
        }

        private void fillNormal(Tensor t, double std) {
            backend.gaussianNoise(t, seed, offset);
            offset += t.numElements();
            backend.scale(t, t, (float) std);
        }

        /** weight (O, I) N(0, std²), or N(0, 2/(I + O)) when std &lt; 0, and a bias (O). */
        Linear linear(KeyPath path, Shape shape, double std) {
            long out = shape.dim(0), in = shape.dim(1);
            Tensor weight = normal(shape, std < 0 ? xavierStd(in, out) : std);
            return new Linear(path.tensor("weight"), weight, null, null, normal(Shape.of(out), 0.01));
        }

        /** A block Linear as {@link Loader#linear} stores it under FP8_SCALED or FP8_BASE, from random codes. */
        Linear quantizedLinear(KeyPath path, Shape shape, Quantization quantization, boolean dequantizeAtLoad) {
            String key = path.tensor("weight");
            long out = shape.dim(0), in = shape.dim(1);
            double std = xavierStd(in, out);
            boolean isScaled = quantization == Quantization.FP8_SCALED;
            Tensor codes = backend.allocate(DType.F8_E4M3, shape);
            made.add(codes);
            if (scratch == null || scratch.numElements() < shape.numElements()) {
                closeScratch();
                scratch = backend.allocate(computeDType, shape);
            }
            Tensor values = scratch.view(0, shape);
            backend.gaussianNoise(values, seed, offset);
            offset += values.numElements();
            backend.scale(values, values, (float) (isScaled ? CODE_STD : std));
            backend.copy(codes, values);
            Tensor scale = backend.allocate(computeDType, Shape.of(out, in / 64, 1));
            made.add(scale);
            backend.fill(scale, isScaled ? (float) (std / CODE_STD) : 1f);
            Tensor bias = normal(Shape.of(out), 0.01);
            if (!dequantizeAtLoad) return new Linear(key, null, codes, scale, bias);
            Tensor weight = backend.allocate(computeDType, shape);
            made.add(weight);
            backend.dequantizeFp8(weight, codes, scale);
            for (Tensor t : new Tensor[] {codes, scale}) {
                made.remove(t);
                t.close();
            }
            return new Linear(key, weight, null, null, bias);
        }

        void closeScratch() {
            if (scratch != null) scratch.close();
            scratch = null;
        }

        private static double xavierStd(long in, long out) { return Math.sqrt(2.0 / (in + out)); }
    }

    /** weight (xavier-uniform over (shape[0], rest) when std < 0, else N(0, std²)) and a zero bias (shape[0]). */
    private static void randomLinear(List<SafeTensorsWriter.Entry> entries, SplittableRandom random, KeyPath path, Shape shape,
                                     double std) {
        long out = shape.dim(0);
        long in = shape.numElements() / out;
        double bound = Math.sqrt(6.0 / (in + out));
        randomTensor(entries, path.tensor("weight"), shape,
                () -> std < 0 ? (2 * random.nextDouble() - 1) * bound : random.nextGaussian() * std);
        randomTensor(entries, path.tensor("bias"), Shape.of(out), () -> 0);
    }

    private static void randomTensor(List<SafeTensorsWriter.Entry> entries, String key, Shape shape,
                                      java.util.function.DoubleSupplier value) {
        float[] v = new float[Math.toIntExact(shape.numElements())];
        for (int i = 0; i < v.length; i++) v[i] = (float) value.getAsDouble();
        entries.add(SafeTensorsWriter.Entry.ofFloats(key, DType.BF16, shape, v));
    }

    /**
     * A checkpoint key under construction, mirroring the key tree (candle's {@code vb.pp}, STYLE.md §2):
     * {@code root().at("blocks").at(3).at("self_attn").tensor("q.weight")} is {@code blocks.3.self_attn.q.weight}.
     */
    record KeyPath(String prefix) {
        static KeyPath root() { return new KeyPath(""); }

        KeyPath at(String name) { return new KeyPath(prefix + name + "."); }

        KeyPath at(int index) { return at(Integer.toString(index)); }

        String tensor(String name) { return prefix + name; }
    }

    /**
     * Reads, checks and converts tensors; remembers what it handed out so a failed load frees everything.
     *
     * <p>No weight passes through the Java heap: each tensor's file bytes go straight into the backend
     * ({@link Backend#writeBytes}: on a GPU, positional reads into a pinned staging ring and an asynchronous copy),
     * either into the final tensor when the file already has its dtype, or into a scratch tensor of the file's dtype
     * (one per dtype, the size of the largest tensor, reused) from which a device op writes the final tensor:
     * {@link Backend#copy} for a dtype change or the plain fp8 cast, {@link Backend#quantizeFp8} for --fp8_scaled.
     * Every step is queued in order on the backend's stream, so the host reads the next tensor while the device copies
     * and converts this one; scratch reuse is safe for the same reason.
     */
    private static final class Loader {
        private final Backend backend;
        private final SafeTensors checkpoint;
        private final WanDitConfig config;
        private final Quantization quantization;
        private final boolean dequantizeFp8AtLoad;
        private final DType computeDType;
        private final Set<String> unconsumed;
        /** Per-tensor scales of a ComfyUI scaled fp8 file, or null. */
        private final ScaledFp8Layout scaledFp8;
        private final LongConsumer progress;
        /** Elements of the largest tensor in the file: the size of each scratch tensor. */
        private final long scratchElements;
        private final Map<DType, Tensor> scratch = new EnumMap<>(DType.class);
        final List<Tensor> loaded = new ArrayList<>();

        Loader(Backend backend, SafeTensors checkpoint, WanDitConfig config, ComputePrecision precision,
               Quantization quantization, boolean dequantizeFp8AtLoad, LongConsumer progress) {
            this.backend = backend;
            this.checkpoint = checkpoint;
            this.config = config;
            this.quantization = quantization;
            this.dequantizeFp8AtLoad = dequantizeFp8AtLoad;
            this.computeDType = precision.activationDType();
            this.unconsumed = new LinkedHashSet<>(checkpoint.keys());
            this.scaledFp8 = ScaledFp8Layout.of(checkpoint);
            if (scaledFp8 != null) unconsumed.removeAll(scaledFp8.auxiliary());
            this.progress = progress;
            long largest = 0;
            for (String key : checkpoint.keys()) largest = Math.max(largest, checkpoint.info(key).numElements());
            this.scratchElements = largest;
        }

        /** Spec §3.1: an fp8 file needs --fp8_base and refuses --fp8_scaled (musubi raises the same way). */
        void checkKeySet() {
            String probe = KeyPath.root().at("blocks").at(0).at("cross_attn").at("k").tensor("weight");
            if (!checkpoint.contains(probe)) return; // reported as a missing key below
            DType fileDType = checkpoint.info(probe).dtype();
            boolean isFp8File = fileDType == DType.F8_E4M3 || fileDType == DType.F8_E5M2;
            String kind = scaledFp8 != null ? " (" + scaledFp8.format() + ")" : "";
            if (isFp8File && quantization == Quantization.FP8_SCALED) {
                throw new IllegalArgumentException(name() + ": the checkpoint is already " + fileDType
                        + kind + " (an fp8 file), which --fp8_scaled cannot re-quantize; drop --fp8_scaled (keep --fp8_base)"
                        + " or use the bf16 checkpoint");
            }
            if (isFp8File && quantization == Quantization.NONE) {
                throw new IllegalArgumentException(name() + ": the checkpoint is " + fileDType
                        + kind + " (an fp8 file); add --fp8_base to train on it, or use the bf16 checkpoint");
            }
        }

        void checkAllConsumed() {
            if (unconsumed.isEmpty()) return;
            List<String> extra = new ArrayList<>(unconsumed);
            throw new IllegalArgumentException(name() + ": " + extra.size() + " unexpected key(s) for a Wan2.1 T2V DiT"
                    + " with " + config.numLayers() + " blocks: " + String.join(", ", extra.subList(0,
                    Math.min(4, extra.size()))) + (extra.size() > 4 ? ", …" : "")
                    + "; expected exactly the keys of spec §2.3 (is this a different model or a LoRA file?)");
        }

        /** Waits for every queued copy and conversion, then frees the scratch tensors. */
        void finish() {
            backend.synchronize();
            closeScratch();
        }

        void closeScratch() {
            scratch.values().forEach(Tensor::close);
            scratch.clear();
        }

        /**
         * weight + bias of a Linear. {@code loadShape} is the file's weight shape; {@code viewShape} (or null) the
         * (O, I) matrix it is used as. {@code isBlockLinear} marks the fp8 targets (spec §3.2).
         */
        Linear linear(KeyPath path, Shape loadShape, Shape viewShape, boolean isBlockLinear) {
            String weightKey = path.tensor("weight");
            Shape matrix = viewShape != null ? viewShape : loadShape;
            Tensor bias = tensor(path.tensor("bias"), Shape.of(loadShape.dim(0)));
            if (isBlockLinear && quantization != Quantization.NONE && !dequantizeFp8AtLoad) {
                Tensor[] q = quantized(weightKey, loadShape);
                return new Linear(weightKey, null, q[0], q[1], bias);
            }
            Tensor weight = isBlockLinear && (quantization == Quantization.FP8_SCALED || isScaled(weightKey))
                    ? dequantized(quantized(weightKey, loadShape))
                    : tensor(weightKey, loadShape);
            // the loaded tensor itself when no reshape is needed, so the Linear holds the owner (streaming frees it)
            return new Linear(weightKey, weight.shape().equals(matrix) ? weight : weight.reshape(matrix), null, null, bias);
        }

        /**
         * A non-quantized tensor in the compute dtype: the file's values (widened or rounded once), after the plain
         * fp8 cast under FP8_BASE, times its scale in a scaled fp8 file (see {@link ScaledFp8Layout} for the numerics).
         */
        Tensor tensor(String key, Shape expected) {
            SafeTensors.TensorInfo info = checked(key, expected);
            Tensor t = backend.allocate(computeDType, expected);
            loaded.add(t);
            DType fileDType = info.dtype();
            if (quantization == Quantization.FP8_BASE && fileDType != DType.F8_E4M3) {
                // torch's .to(float8_e4m3fn) (round to nearest even, no saturation), then the exact upcast at use
                Tensor codes = scratchView(DType.F8_E4M3, expected);
                backend.copy(codes, fileBytes(key, info, expected));
                backend.copy(t, codes);
            } else if (fileDType == computeDType) {
                read(t, key, info);
            } else {
                backend.copy(t, fileBytes(key, info, expected));
            }
            Float s = scaledFp8 == null ? null : scaledFp8.scaleOf(key);
            if (s != null) backend.scale(t, t, roundToCompute(s)); // dtype(dtype(q) · dtype(s)): the product is exact in fp32
            return t;
        }

        /** {codes (O, I) F8_E4M3, scale (O, I/64, 1)} of a block Linear weight under FP8_BASE or FP8_SCALED. */
        private Tensor[] quantized(String key, Shape expected) {
            SafeTensors.TensorInfo info = checked(key, expected);
            long out = expected.dim(0), in = expected.dim(1);
            if (in % 64 != 0) {
                throw new IllegalArgumentException(name() + ": " + key + " has in-features " + in
                        + ", not a multiple of the fp8 block size 64; expected a Wan2.1 DiT");
            }
            Shape scaleShape = Shape.of(out, in / 64, 1);
            Tensor codes = backend.allocate(DType.F8_E4M3, expected);
            loaded.add(codes);
            Tensor scale;
            Float fileScale = scaledFp8 == null ? null : scaledFp8.scaleOf(key);
            if (fileScale != null) {
                // A scaled fp8 file: the codes as stored, the per-tensor scale s in every block, held in the compute
                // dtype so dequantizeFp8 gives dtype(dtype(q) · dtype(s)), ComfyUI's weight (ScaledFp8Layout).
                scale = backend.allocate(computeDType, scaleShape);
                backend.fill(scale, fileScale);
                copyCodes(codes, key, info, expected);
            } else if (quantization == Quantization.FP8_BASE) {
                // Plain cast (spec §3.1) = block quantization with unit scales: dequantizeFp8 then gives bf16(w_q) exactly.
                scale = backend.allocate(DType.BF16, scaleShape);
                backend.fill(scale, 1f);
                copyCodes(codes, key, info, expected);
            } else {
                // musubi computes and stores the scale in the weight's dtype; F16 scales are held as F32 (exact values;
                // dequantizeFp8 then rounds the product to F32 instead of F16: no Wan release ships fp16 + fp8_scaled).
                scale = backend.allocate(info.dtype() == DType.BF16 ? DType.BF16 : DType.F32, scaleShape);
                backend.quantizeFp8(codes, scale, fileBytes(key, info, expected));
            }
            loaded.add(scale);
            return new Tensor[] {codes, scale};
        }

        /** codes = the file's e4m3 bytes, or its values cast to e4m3 (round to nearest even, as torch's .to()). */
        private void copyCodes(Tensor codes, String key, SafeTensors.TensorInfo info, Shape expected) {
            if (info.dtype() == DType.F8_E4M3) {
                read(codes, key, info);
            } else {
                backend.copy(codes, fileBytes(key, info, expected));
            }
        }

        /** The compute-dtype weight bf16(bf16(w_q)·scale) of a quantized pair; frees the pair. */
        private Tensor dequantized(Tensor[] codesAndScale) {
            Tensor out = backend.allocate(computeDType, codesAndScale[0].shape());
            loaded.add(out);
            backend.dequantizeFp8(out, codesAndScale[0], codesAndScale[1]);
            for (Tensor t : codesAndScale) {
                loaded.remove(t);
                t.close();
            }
            return out;
        }

        private boolean isScaled(String weightKey) { return scaledFp8 != null && scaledFp8.scaleOf(weightKey) != null; }

        /** The file's bytes of {@code key} in a scratch tensor of the file's dtype (queued on the backend). */
        private Tensor fileBytes(String key, SafeTensors.TensorInfo info, Shape shape) {
            Tensor view = scratchView(info.dtype(), shape);
            read(view, key, info);
            return view;
        }

        /** dst's bytes = the file's bytes of key (dst has the file's dtype); reports the bytes read. */
        private void read(Tensor dst, String key, SafeTensors.TensorInfo info) {
            backend.writeBytes(dst, checkpoint.source(key));
            progress.accept(info.byteLength());
        }

        private Tensor scratchView(DType dtype, Shape shape) {
            Tensor s = scratch.get(dtype);
            if (s == null) {
                s = backend.allocate(dtype, Shape.of(scratchElements));
                scratch.put(dtype, s);
            }
            return s.view(0, shape);
        }

        private float roundToCompute(float v) { return computeDType == DType.BF16 ? Bf16.round(v) : v; }

        private SafeTensors.TensorInfo checked(String key, Shape expected) {
            if (!checkpoint.contains(key)) {
                throw new IllegalArgumentException(name() + ": missing key " + key + " (expected shape " + expected
                        + "); expected a complete Wan2.1 T2V DiT with " + config.numLayers() + " blocks");
            }
            SafeTensors.TensorInfo info = checkpoint.info(key);
            if (!info.shape().equals(expected)) {
                throw new IllegalArgumentException(info.file().getFileName() + ": key " + key + " has shape "
                        + info.shape() + ", expected " + expected + " (dim " + config.dim() + ", ffn_dim "
                        + config.ffnDim() + ")");
            }
            if (!info.dtype().isFloatingPoint() || info.dtype() == DType.F64) {
                throw new IllegalArgumentException(info.file().getFileName() + ": key " + key + " is " + info.dtype()
                        + ", expected a floating dtype (BF16, F16, F32 or F8_E4M3)");
            }
            unconsumed.remove(key);
            return info;
        }

        private String name() { return checkpoint.path().getFileName().toString(); }
    }
}
