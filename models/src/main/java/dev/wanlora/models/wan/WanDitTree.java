package dev.wanlora.models.wan;

import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The checkpoint key tree of a Wan2.1 T2V DiT (spec §2.3), described once: every tensor's key, its shape in the file,
 * its role and how Wan initialises it, as a function of a {@link WanDitConfig}. Loading, both random generators, the
 * config inference, {@code wanlora inspect}, the real-size test files and the memory plan read it; the DiT's key names
 * are written nowhere else (STYLE.md §2). Keys are built with {@link KeyPath}, which mirrors the tree (candle's
 * {@code vb.pp}).
 *
 * <p>Tree order ({@link #nodes()}): the seven Linears outside the blocks ({@link Embedding} order, weight then bias),
 * {@code head.modulation}, then per block its ten Linears ({@link BlockLinear} order, weight then bias) and its other
 * tensors ({@link BlockTensor} order). A file stores tensors in its own order (official files: by name); the loader
 * reads them in the file's order, not this one.
 */
public final class WanDitTree {

    /** What a tensor is, for the loader, the fp8 quantizer, the streamer and the memory plan. */
    public enum Role {
        /** The weight of a Linear outside the blocks (embeddings, time projection, head): resident, compute dtype. */
        LINEAR_WEIGHT,
        /**
         * The weight of one of a block's ten Linears: the fp8 targets (spec §3.2) and LoRA targets, streamed from host
         * memory when the block is swapped (--blocks_to_swap).
         */
        BLOCK_LINEAR_WEIGHT,
        /** A Linear's bias (O): resident, compute dtype. */
        BIAS,
        /** An RMSNorm weight (the q/k norms) or norm3's weight or bias (C): resident, compute dtype. */
        NORM,
        /** A modulation, (1, 6, C) in a block and (1, 2, C) in the head: resident, compute dtype. */
        MODULATION
    }

    /**
     * Wan's from-scratch initialisation of a tensor (W:wan/modules/model.py {@code init_weights} L609‑631 and the
     * modulation parameters L276, L335): the distribution the random generators draw from.
     */
    public enum Init {
        /** xavier-uniform over (shape[0], the rest): the Linears, the patch embedding, the time projection, the head. */
        XAVIER,
        /** N(0, 0.02²): the text and time embeddings. */
        EMBEDDING,
        /** N(0, 1/C): the modulations. */
        MODULATION,
        /** 1: the norm weights. */
        ONE,
        /** 0: the biases and norm3's bias. */
        ZERO
    }

    /** The Linears outside the blocks, in tree order. {@link #modulePath()} is the module path from the root. */
    public enum Embedding {
        PATCH_EMBEDDING("patch_embedding", Init.XAVIER), TEXT_EMBEDDING_0("text_embedding.0", Init.EMBEDDING),
        TEXT_EMBEDDING_2("text_embedding.2", Init.EMBEDDING), TIME_EMBEDDING_0("time_embedding.0", Init.EMBEDDING),
        TIME_EMBEDDING_2("time_embedding.2", Init.EMBEDDING), TIME_PROJECTION("time_projection.1", Init.XAVIER),
        HEAD("head.head", Init.XAVIER);

        private final String modulePath;
        private final Init init;

        Embedding(String modulePath, Init init) {
            this.modulePath = modulePath;
            this.init = init;
        }

        public String modulePath() { return modulePath; }

        /** "patch_embedding.weight", … */
        public String weightKey() { return KeyPath.of(modulePath).tensor("weight"); }

        /** The weight's shape in the file: the patch embedding is a Conv3d (C, Cin, 1, 2, 2); the others (O, I). */
        public Shape fileShape(WanDitConfig c) {
            return this == PATCH_EMBEDDING ? Shape.of(c.dim(), c.inChannels(), c.patch().frames(), c.patch().height(),
                    c.patch().width()) : matrixShape(c);
        }

        /** (O, I) of the Linear as the model uses it (the patch embedding over 64-element patch vectors). */
        public Shape matrixShape(WanDitConfig c) {
            int dim = c.dim();
            return switch (this) {
                case PATCH_EMBEDDING -> Shape.of(dim, c.patchLength());
                case TEXT_EMBEDDING_0 -> Shape.of(dim, c.textDim());
                case TEXT_EMBEDDING_2, TIME_EMBEDDING_2 -> Shape.of(dim, dim);
                case TIME_EMBEDDING_0 -> Shape.of(dim, c.freqDim());
                case TIME_PROJECTION -> Shape.of(6L * dim, dim);
                case HEAD -> Shape.of(c.headOutFeatures(), dim);
            };
        }
    }

    /** A block's tensors besides its ten Linears, in tree order. {@link #path()} is the key inside {@code blocks.{i}}. */
    public enum BlockTensor {
        MODULATION("modulation", Role.MODULATION, Init.MODULATION),
        SELF_ATTN_NORM_Q("self_attn.norm_q.weight", Role.NORM, Init.ONE),
        SELF_ATTN_NORM_K("self_attn.norm_k.weight", Role.NORM, Init.ONE),
        CROSS_ATTN_NORM_Q("cross_attn.norm_q.weight", Role.NORM, Init.ONE),
        CROSS_ATTN_NORM_K("cross_attn.norm_k.weight", Role.NORM, Init.ONE),
        NORM3_WEIGHT("norm3.weight", Role.NORM, Init.ONE),
        NORM3_BIAS("norm3.bias", Role.NORM, Init.ZERO);

        private final String path;
        private final Role role;
        private final Init init;

        BlockTensor(String path, Role role, Init init) {
            this.path = path;
            this.role = role;
            this.init = init;
        }

        public String path() { return path; }

        public Shape shape(WanDitConfig c) { return this == MODULATION ? Shape.of(1, 6, c.dim()) : Shape.of(c.dim()); }
    }

    /**
     * One tensor of the checkpoint.
     *
     * @param shape its shape in the file
     * @param block the block it belongs to, or −1 outside the blocks
     */
    public record Node(String key, Shape shape, Role role, Init init, int block) {
        public long numElements() { return shape.numElements(); }
    }

    /** A Linear: its weight and bias, and the (O, I) matrix the model uses the weight as. */
    public record LinearNode(Node weight, Node bias, Shape matrixShape) {}

    /** One block's tensors. */
    public record BlockNodes(int index, Map<BlockLinear, LinearNode> linears, Map<BlockTensor, Node> tensors) {
        public LinearNode linear(BlockLinear which) { return linears.get(which); }

        public Node tensor(BlockTensor which) { return tensors.get(which); }
    }

    private final WanDitConfig config;
    private final Map<Embedding, LinearNode> embeddings = new EnumMap<>(Embedding.class);
    private final Node headModulation;
    private final List<BlockNodes> blocks = new ArrayList<>();
    private final List<Node> nodes = new ArrayList<>();
    /** The BlockLinear of each block Linear weight node. */
    private final Map<Node, BlockLinear> blockLinearOf = new java.util.HashMap<>();

    private WanDitTree(WanDitConfig config) {
        this.config = config;
        KeyPath root = KeyPath.root();
        for (Embedding e : Embedding.values()) {
            embeddings.put(e, linear(KeyPath.of(e.modulePath()), e.fileShape(config), e.matrixShape(config),
                    Role.LINEAR_WEIGHT, e.init, -1));
        }
        headModulation = add(new Node(root.at("head").tensor("modulation"), Shape.of(1, 2, config.dim()),
                Role.MODULATION, Init.MODULATION, -1));
        for (int i = 0; i < config.numLayers(); i++) {
            KeyPath b = root.at("blocks").at(i);
            Map<BlockLinear, LinearNode> linears = new EnumMap<>(BlockLinear.class);
            for (BlockLinear which : BlockLinear.values()) {
                Shape shape = which.weightShape(config);
                LinearNode l = linear(b.at(which.modulePath()), shape, shape, Role.BLOCK_LINEAR_WEIGHT, Init.XAVIER, i);
                linears.put(which, l);
                blockLinearOf.put(l.weight(), which);
            }
            Map<BlockTensor, Node> tensors = new EnumMap<>(BlockTensor.class);
            for (BlockTensor t : BlockTensor.values()) {
                tensors.put(t, add(new Node(b.tensor(t.path()), t.shape(config), t.role, t.init, i)));
            }
            blocks.add(new BlockNodes(i, Collections.unmodifiableMap(linears), Collections.unmodifiableMap(tensors)));
        }
    }

    /** Trees made so far (immutable, so shared): the memory plan asks for one per candidate plan. */
    private static final Map<WanDitConfig, WanDitTree> TREES = new java.util.concurrent.ConcurrentHashMap<>();

    /** The tree of a model with {@code config}'s shapes. */
    public static WanDitTree of(WanDitConfig config) { return TREES.computeIfAbsent(config, WanDitTree::new); }

    public WanDitConfig config() { return config; }

    /** Every tensor, in tree order (see the class comment). */
    public List<Node> nodes() { return Collections.unmodifiableList(nodes); }

    public LinearNode embedding(Embedding which) { return embeddings.get(which); }

    public Node headModulation() { return headModulation; }

    public List<BlockNodes> blocks() { return Collections.unmodifiableList(blocks); }

    public BlockNodes block(int i) { return blocks.get(i); }

    /** Which of its block's ten Linears a {@link Role#BLOCK_LINEAR_WEIGHT} node is the weight of. */
    public BlockLinear blockLinear(Node weight) {
        BlockLinear which = blockLinearOf.get(weight);
        if (which == null) throw new IllegalArgumentException("WanDitTree: " + weight.key() + " is not a block Linear weight");
        return which;
    }

    /** Every key with its file shape, in tree order. */
    public Map<String, Shape> shapes() {
        Map<String, Shape> shapes = new java.util.LinkedHashMap<>();
        for (Node n : nodes) shapes.put(n.key(), n.shape());
        return shapes;
    }

    /** Elements of every tensor with a role other than {@link Role#BLOCK_LINEAR_WEIGHT} (all of them resident). */
    public long residentElements() {
        long n = 0;
        for (Node node : nodes) if (node.role() != Role.BLOCK_LINEAR_WEIGHT) n += node.numElements();
        return n;
    }

    /**
     * How a block Linear weight is held: in {@code dtype} as it is, or as F8_E4M3 codes (O, I) plus a scale
     * (O, I/64, 1) in {@code dtype} when {@code isQuantized}, or, with {@code hasTensorScale} ({@code --fp8_compute}),
     * codes plus one F32 scale (1) ({@link Fp8ComputeWeights}).
     */
    public record LinearForm(boolean isQuantized, DType dtype, boolean hasTensorScale) {
        public LinearForm(boolean isQuantized, DType dtype) { this(isQuantized, dtype, false); }

        /** The {@code --fp8_compute} form: per-tensor E4M3 codes and an F32 scale (1). */
        public static final LinearForm FP8_COMPUTE = new LinearForm(true, DType.F32, true);

        /** The tensors of a weight of (O, I) {@code shape} in this form: the weight, or the codes then the scale. */
        public List<BlockLayout.Entry> entries(Shape shape) {
            if (!isQuantized) return List.of(new BlockLayout.Entry(dtype, shape));
            Shape scale = hasTensorScale ? Shape.of(1) : Shape.of(shape.dim(0), shape.dim(1) / 64, 1);
            return List.of(new BlockLayout.Entry(DType.F8_E4M3, shape), new BlockLayout.Entry(dtype, scale));
        }
    }

    /**
     * The ten Linear weights of block i as the streamer holds them (its {@link BlockLayout}): per {@link BlockLinear},
     * the entries of the weight in the form {@code form} gives it.
     */
    public BlockLayout blockLinearLayout(int i, Function<Node, LinearForm> form) {
        List<BlockLayout.Entry> entries = new ArrayList<>();
        for (LinearNode l : blocks.get(i).linears().values()) entries.addAll(form.apply(l.weight()).entries(l.matrixShape()));
        return new BlockLayout(entries);
    }

    // ---------------------------------------------------------------- keys without a config

    private static final Pattern BLOCK_KEY = Pattern.compile("blocks\\.(\\d+)\\..*");
    private static final Pattern BLOCK_LINEAR_WEIGHT =
            Pattern.compile("blocks\\.\\d+\\.((self_attn|cross_attn)\\.[qkvo]|ffn\\.[02])\\.weight");

    /** "blocks.{block}.self_attn.q.weight", … */
    public static String blockLinearWeightKey(int block, BlockLinear which) {
        return KeyPath.root().at("blocks").at(block).at(which.modulePath()).tensor("weight");
    }

    /** True for {@code blocks.N.(self_attn|cross_attn).(q|k|v|o).weight} and {@code blocks.N.ffn.(0|2).weight}. */
    public static boolean isBlockLinearWeight(String key) { return BLOCK_LINEAR_WEIGHT.matcher(key).matches(); }

    /** The digits N of a key under {@code blocks.N.}, or null for a key outside the blocks. */
    public static String blockIndexDigits(String key) {
        Matcher m = BLOCK_KEY.matcher(key);
        return m.matches() ? m.group(1) : null;
    }

    // ---------------------------------------------------------------- building

    private LinearNode linear(KeyPath path, Shape fileShape, Shape matrixShape, Role weightRole, Init init, int block) {
        Node weight = add(new Node(path.tensor("weight"), fileShape, weightRole, init, block));
        Node bias = add(new Node(path.tensor("bias"), Shape.of(fileShape.dim(0)), Role.BIAS, Init.ZERO, block));
        return new LinearNode(weight, bias, matrixShape);
    }

    private Node add(Node n) {
        nodes.add(n);
        return n;
    }

    /**
     * A checkpoint key under construction, mirroring the key tree (candle's {@code vb.pp}, STYLE.md §2):
     * {@code root().at("blocks").at(3).at("self_attn").tensor("q.weight")} is {@code blocks.3.self_attn.q.weight}.
     */
    private record KeyPath(String prefix) {
        static KeyPath root() { return new KeyPath(""); }

        /** The module at a dotted path from the root ("time_projection.1"). */
        static KeyPath of(String modulePath) { return root().at(modulePath); }

        KeyPath at(String name) { return new KeyPath(prefix + name + "."); }

        KeyPath at(int index) { return at(Integer.toString(index)); }

        String tensor(String name) { return prefix + name; }
    }
}
