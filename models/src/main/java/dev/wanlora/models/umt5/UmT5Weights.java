package dev.wanlora.models.umt5;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.TensorSource;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The umT5 encoder's parameters on a {@link Backend}, loaded from any {@link TensorSource}: the official
 * {@code models_t5_umt5-xxl-enc-bf16.pth} (Wan names), a .safetensors with the same names (musubi deletes every
 * {@code "encoder."} substring first, so {@code encoder.blocks.0…} works too), or the ComfyUI / Hugging Face files
 * {@code umt5_xxl_fp16.safetensors} and {@code umt5_xxl_fp8_e4m3fn_scaled.safetensors} (HF {@code UMT5EncoderModel}
 * names). This is the only class that knows key names ({@link Names}).
 *
 * <p>HF → Wan: {@code shared.weight} / {@code encoder.embed_tokens.weight} → token_embedding;
 * {@code block.i.layer.0.SelfAttention.{q,k,v,o}} → attn.{q,k,v,o}; {@code …relative_attention_bias} → pos_embedding;
 * {@code layer.0.layer_norm} → norm1; {@code layer.1.DenseReluDense.wi_0} (the GELU branch) → ffn.gate.0,
 * {@code wi_1} → ffn.fc1, {@code wo} → ffn.fc2; {@code layer.1.layer_norm} → norm2; {@code final_layer_norm} → norm.
 * The fp8 file stores each Linear weight as float8_e4m3fn with a per-tensor {@code <module>.scale_weight}: w = q·scale.
 *
 * <p>Storage: every tensor in the compute dtype (F32 on the CPU reference, BF16 on a GPU), widened or rounded from
 * the file. With {@code fp8} ({@code --fp8_t5}, spec §10: Linear weights as float8_e4m3fn, norms and embedding stay
 * in the compute dtype) each Linear weight is kept as F8_E4M3 codes plus a scale (O, I/64, 1) F32 and dequantized
 * with {@code Backend.dequantizeFp8} right before its GEMM. Codes come from the fp8 file as they are (its per-tensor
 * scale repeated per block), or from a plain cast of the other files' weights (scale 1), as musubi's
 * {@code --fp8_t5} does.
 *
 * <p><b>Layer streaming</b> ({@link Streaming}, issue #9: "stream its layers like DiT blocks when the budget is
 * smaller"): the last N layers' tensors live in host memory (pinned on the GPU) in a {@link BlockStreamer}, the DiT's
 * block streaming machinery, and are copied into a ring of device slots as the encoder reaches them; the embedding,
 * the final norm and the first 24 − N layers stay resident. The copies are exact, so a streamed encoder computes
 * bit for bit what a resident one does. {@link #streamedLayout} is the one layer image both the loader and the memory
 * plan use.
 */
public final class UmT5Weights implements AutoCloseable {

    /**
     * The last {@code layers} encoder layers streamed through {@code slots} device slots (0 layers: all resident).
     */
    public record Streaming(int layers, int slots) {
        public static final Streaming NONE = new Streaming(0, BlockStreamer.DEFAULT_SLOTS);

        /** The first streamed layer of a {@code numLayers}-layer encoder. */
        public int firstStreamed(int numLayers) { return numLayers - layers; }
    }

    /** A Linear weight (O, I): in the compute dtype, or fp8 codes and a block scale when {@link #isQuantized}. */
    public record Linear(Tensor weight, Tensor quantized, Tensor scale) {
        public boolean isQuantized() { return quantized != null; }

        Shape shape() { return isQuantized() ? quantized.shape() : weight.shape(); }
    }

    /** One encoder block. */
    public record Layer(Tensor norm1, Linear q, Linear k, Linear v, Linear o, Tensor norm2, Linear gate, Linear fc1,
                        Linear fc2, Tensor positionBias) {}

    private final UmT5Config config;
    private final DType dtype;
    private final Tensor tokenEmbedding;  // (V, C)
    private final List<Layer> layers;
    private final Tensor finalNorm;       // (C)
    private final List<Tensor> owned;
    private final boolean isFp8;
    private final Streaming streaming;
    /** The streamed layers' images and slots, or null without streaming. */
    private final BlockStreamer streamer;

    private UmT5Weights(UmT5Config config, DType dtype, Tensor tokenEmbedding, List<Layer> layers, Tensor finalNorm,
                        List<Tensor> owned, boolean isFp8, Streaming streaming, BlockStreamer streamer) {
        this.config = config;
        this.dtype = dtype;
        this.tokenEmbedding = tokenEmbedding;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.owned = owned;
        this.isFp8 = isFp8;
        this.streaming = streaming;
        this.streamer = streamer;
    }

    public UmT5Config config() { return config; }

    /** The compute dtype of activations and non-fp8 weights. */
    public DType dtype() { return dtype; }

    public Tensor tokenEmbedding() { return tokenEmbedding; }

    /** Whether the Linear weights are fp8 codes and scales ({@code --fp8_t5}). */
    public boolean isFp8() { return isFp8; }

    public Streaming streaming() { return streaming; }

    /** True when layer i's tensors are streamed. */
    public boolean isStreamed(int i) { return i >= streaming.firstStreamed(config.numLayers()); }

    /** The streamer of the streamed layers (copy counts, host bytes), or null without streaming. */
    public BlockStreamer streamer() { return streamer; }

    /**
     * A resident layer. A streamed one has no tensors outside its slot: use {@link #acquireLayer}.
     *
     * @throws IllegalStateException for a streamed layer
     */
    public Layer layer(int i) {
        if (isStreamed(i)) {
            throw new IllegalStateException("umT5 layer " + i + " is streamed; acquireLayer(" + i + ") makes it resident");
        }
        return layers.get(i);
    }

    /**
     * Layer i with every tensor on the device: a resident layer as it is; a streamed one copied into a slot (unless it
     * is still there) with compute ordered after the copy. Pair each call with {@link #releaseLayer}(i) after the last
     * op that reads the layer; in between the returned layer is valid.
     */
    public Layer acquireLayer(int i) {
        if (!isStreamed(i)) return layers.get(i);
        int k = streamer.acquire(i - streaming.firstStreamed(config.numLayers()));
        return fromEntries(streamer.slot(k), isFp8);
    }

    /** Ends the use of layer i's tensors by the ops queued so far (a no-op for a resident layer). */
    public void releaseLayer(int i) {
        if (isStreamed(i)) streamer.release(i - streaming.firstStreamed(config.numLayers()));
    }

    /** Starts copying layer i now if it is streamed and not resident (nothing for i outside the encoder). */
    public void prefetchLayer(int i) {
        if (i >= 0 && i < config.numLayers() && isStreamed(i)) streamer.prefetch(i - streaming.firstStreamed(config.numLayers()));
    }

    /**
     * One layer's image in the streamer, in order: norm1, q, k, v, o, norm2, gate, fc1, fc2 (each Linear its weight
     * in {@code dtype}, or with {@code fp8} its F8_E4M3 codes then its (O, I/64, 1) F32 scales), the (buckets, N)
     * position-bias table. The loader stores exactly these tensors; the memory plan sizes slots and host images by it.
     */
    public static BlockLayout streamedLayout(UmT5Config c, DType dtype, boolean fp8) {
        List<BlockLayout.Entry> e = new ArrayList<>();
        e.add(new BlockLayout.Entry(dtype, Shape.of(c.dim())));
        for (long[] oi : new long[][] {{c.dimAttn(), c.dim()}, {c.dimAttn(), c.dim()}, {c.dimAttn(), c.dim()},
                {c.dim(), c.dimAttn()}}) linearEntries(e, dtype, fp8, oi[0], oi[1]);
        e.add(new BlockLayout.Entry(dtype, Shape.of(c.dim())));
        for (long[] oi : new long[][] {{c.dimFfn(), c.dim()}, {c.dimFfn(), c.dim()}, {c.dim(), c.dimFfn()}}) {
            linearEntries(e, dtype, fp8, oi[0], oi[1]);
        }
        e.add(new BlockLayout.Entry(dtype, Shape.of(c.numBuckets(), c.numHeads())));
        return new BlockLayout(e);
    }

    private static void linearEntries(List<BlockLayout.Entry> e, DType dtype, boolean fp8, long out, long in) {
        if (fp8) {
            e.add(new BlockLayout.Entry(DType.F8_E4M3, Shape.of(out, in)));
            e.add(new BlockLayout.Entry(DType.F32, Shape.of(out, in / 64, 1)));
        } else {
            e.add(new BlockLayout.Entry(dtype, Shape.of(out, in)));
        }
    }

    /** A layer's tensors in {@link #streamedLayout} order. */
    private static List<Tensor> entries(Layer l) {
        List<Tensor> t = new ArrayList<>();
        t.add(l.norm1());
        for (Linear lin : List.of(l.q(), l.k(), l.v(), l.o())) addLinear(t, lin);
        t.add(l.norm2());
        for (Linear lin : List.of(l.gate(), l.fc1(), l.fc2())) addLinear(t, lin);
        t.add(l.positionBias());
        return t;
    }

    private static void addLinear(List<Tensor> t, Linear lin) {
        if (lin.isQuantized()) {
            t.add(lin.quantized());
            t.add(lin.scale());
        } else {
            t.add(lin.weight());
        }
    }

    /** The layer whose tensors are {@code t}, in {@link #streamedLayout} order. */
    private static Layer fromEntries(List<Tensor> t, boolean fp8) {
        int[] at = {0};
        java.util.function.Supplier<Tensor> next = () -> t.get(at[0]++);
        java.util.function.Supplier<Linear> linear = () -> fp8 ? new Linear(null, next.get(), next.get())
                : new Linear(next.get(), null, null);
        Tensor norm1 = next.get();
        Linear q = linear.get(), k = linear.get(), v = linear.get(), o = linear.get();
        Tensor norm2 = next.get();
        Linear gate = linear.get(), fc1 = linear.get(), fc2 = linear.get();
        return new Layer(norm1, q, k, v, o, norm2, gate, fc1, fc2, next.get());
    }

    public Tensor finalNorm() { return finalNorm; }

    /** The key names of a file: Wan's (official .pth, musubi) or HF's (ComfyUI umt5_xxl_*.safetensors). */
    private record Names(boolean isHf, String embedding) {
        static Names of(TensorSource src) {
            for (String k : List.of("token_embedding.weight", "encoder.token_embedding.weight")) {
                if (src.contains(k)) return new Names(false, k);
            }
            for (String k : List.of("shared.weight", "encoder.embed_tokens.weight")) {
                if (src.contains(k)) return new Names(true, k);
            }
            throw new IllegalArgumentException(src.path() + ": not a umT5 encoder checkpoint: none of token_embedding.weight,"
                    + " shared.weight or encoder.embed_tokens.weight is in it. hint: pass models_t5_umt5-xxl-enc-bf16.pth"
                    + " (Wan release) or umt5_xxl_fp16.safetensors (ComfyUI)");
        }

        /** Wan's key, with "encoder." removed as musubi does, if the file has it that way. */
        private String wan(TensorSource src, String key) {
            return src.contains(key) ? key : "encoder." + key;
        }

        String norm1(TensorSource s, int i) { return isHf ? "encoder.block." + i + ".layer.0.layer_norm.weight" : wan(s, "blocks." + i + ".norm1.weight"); }
        String norm2(TensorSource s, int i) { return isHf ? "encoder.block." + i + ".layer.1.layer_norm.weight" : wan(s, "blocks." + i + ".norm2.weight"); }
        String attn(TensorSource s, int i, String p) { return isHf ? "encoder.block." + i + ".layer.0.SelfAttention." + p + ".weight" : wan(s, "blocks." + i + ".attn." + p + ".weight"); }
        String bias(TensorSource s, int i) { return isHf ? "encoder.block." + i + ".layer.0.SelfAttention.relative_attention_bias.weight" : wan(s, "blocks." + i + ".pos_embedding.embedding.weight"); }
        String gate(TensorSource s, int i) { return isHf ? "encoder.block." + i + ".layer.1.DenseReluDense.wi_0.weight" : wan(s, "blocks." + i + ".ffn.gate.0.weight"); }
        String fc1(TensorSource s, int i) { return isHf ? "encoder.block." + i + ".layer.1.DenseReluDense.wi_1.weight" : wan(s, "blocks." + i + ".ffn.fc1.weight"); }
        String fc2(TensorSource s, int i) { return isHf ? "encoder.block." + i + ".layer.1.DenseReluDense.wo.weight" : wan(s, "blocks." + i + ".ffn.fc2.weight"); }
        String finalNorm(TensorSource s) { return isHf ? "encoder.final_layer_norm.weight" : wan(s, "norm.weight"); }
    }

    /** True when {@code src} holds a umT5 encoder (either naming). */
    public static boolean isUmT5(TensorSource src) {
        try {
            Names.of(src);
            return true;
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    /**
     * The configuration read from the checkpoint's shapes: embedding (V, C), q (dimAttn, C), gate (dimFfn, C), the
     * bias table (numBuckets, N) and the number of blocks. maxDistance is umT5's 128 (not stored).
     */
    public static UmT5Config configOf(TensorSource src) {
        Names n = Names.of(src);
        Shape emb = src.shape(n.embedding), q = src.shape(n.attn(src, 0, "q")), gate = src.shape(n.gate(src, 0));
        Shape bias = src.shape(n.bias(src, 0));
        int layers = 0;
        while (src.contains(n.norm1(src, layers))) layers++;
        return new UmT5Config(Math.toIntExact(emb.dim(0)), Math.toIntExact(emb.dim(1)), Math.toIntExact(q.dim(0)),
                Math.toIntExact(gate.dim(0)), Math.toIntExact(bias.dim(1)), layers, Math.toIntExact(bias.dim(0)), 128);
    }

    /**
     * Loads every tensor onto {@code backend} in {@code dtype} (F32 or BF16); with {@code fp8} the Linear weights as
     * fp8 codes and scales (see the class comment). Shapes are checked against {@link #configOf}.
     */
    public static UmT5Weights load(Backend backend, TensorSource src, DType dtype, boolean fp8) {
        return load(backend, src, dtype, fp8, Streaming.NONE);
    }

    /**
     * {@link #load(Backend, TensorSource, DType, boolean)} with the last {@code streaming.layers()} layers streamed:
     * each is loaded onto the backend as a resident one would be, copied into the streamer's host image and freed, so
     * at most one layer's tensors are on the device besides the slots while loading.
     *
     * @throws IllegalArgumentException when the streamed count is outside [0, layers] or there are fewer than 2 slots
     */
    public static UmT5Weights load(Backend backend, TensorSource src, DType dtype, boolean fp8, Streaming streaming) {
        UmT5Config c = configOf(src);
        if (streaming.layers() < 0 || streaming.layers() > c.numLayers() || streaming.slots() < 2) {
            throw new IllegalArgumentException("umT5 streaming: " + streaming.layers() + " layer(s) through "
                    + streaming.slots() + " slot(s); expected 0 to " + c.numLayers() + " layers and at least 2 slots");
        }
        Names n = Names.of(src);
        List<Tensor> owned = new ArrayList<>();
        BlockStreamer streamer = null;
        try {
            if (streaming.layers() > 0) {
                streamer = BlockStreamer.open(backend, streamedLayout(c, dtype, fp8), streaming.layers(), streaming.slots());
            }
            Loader l = new Loader(backend, src, dtype, fp8, owned);
            Tensor emb = l.plain(n.embedding, c.vocab(), c.dim());
            List<Layer> layers = new ArrayList<>();
            for (int i = 0; i < c.numLayers(); i++) {
                layers.add(new Layer(l.plain(n.norm1(src, i), c.dim()),
                        l.linear(n.attn(src, i, "q"), c.dimAttn(), c.dim()), l.linear(n.attn(src, i, "k"), c.dimAttn(), c.dim()),
                        l.linear(n.attn(src, i, "v"), c.dimAttn(), c.dim()), l.linear(n.attn(src, i, "o"), c.dim(), c.dimAttn()),
                        l.plain(n.norm2(src, i), c.dim()),
                        l.linear(n.gate(src, i), c.dimFfn(), c.dim()), l.linear(n.fc1(src, i), c.dimFfn(), c.dim()),
                        l.linear(n.fc2(src, i), c.dim(), c.dimFfn()),
                        l.plain(n.bias(src, i), c.numBuckets(), c.numHeads())));
                if (i >= streaming.firstStreamed(c.numLayers())) {
                    stream(streamer, i - streaming.firstStreamed(c.numLayers()), layers.removeLast(), owned);
                    layers.add(null);
                }
            }
            Tensor norm = l.plain(n.finalNorm(src), c.dim());
            return new UmT5Weights(c, dtype, emb, java.util.Collections.unmodifiableList(layers), norm, owned, fp8,
                    streaming, streamer);
        } catch (RuntimeException e) {
            owned.forEach(Tensor::close);
            if (streamer != null) streamer.close();
            throw e;
        }
    }

    /**
     * Seeded random weights of {@code config}'s real shapes made on the device (for timing; no file): N(0, 0.02²)
     * matrices, N(0, 1) embedding and bias tables, norms 1. With {@code fp8} the matrices are kept as fp8 codes of a
     * plain cast (scale 1), as {@code --fp8_t5} keeps them.
     */
    public static UmT5Weights random(Backend backend, UmT5Config c, DType dtype, boolean fp8, long seed) {
        return random(backend, c, dtype, fp8, seed, Streaming.NONE);
    }

    /**
     * {@link #random(Backend, UmT5Config, DType, boolean, long)} with the last layers streamed: the same values (each
     * tensor is drawn at the same offset of the seed's stream), so a streamed and a resident encoder compare bit for
     * bit at real size.
     */
    public static UmT5Weights random(Backend backend, UmT5Config c, DType dtype, boolean fp8, long seed, Streaming streaming) {
        List<Tensor> owned = new ArrayList<>();
        BlockStreamer streamer = streaming.layers() == 0 ? null
                : BlockStreamer.open(backend, streamedLayout(c, dtype, fp8), streaming.layers(), streaming.slots());
        long[] offset = {0};
        java.util.function.BiFunction<Shape, Float, Tensor> normal = (shape, std) -> {
            Tensor t = backend.allocate(dtype, shape);
            owned.add(t);
            backend.gaussianNoise(t, seed, offset[0]);
            offset[0] += shape.numElements();
            backend.scale(t, t, std);
            return t;
        };
        java.util.function.Function<Shape, Tensor> ones = shape -> {
            Tensor t = backend.allocate(dtype, shape);
            owned.add(t);
            backend.fill(t, 1);
            return t;
        };
        java.util.function.BiFunction<Integer, Integer, Linear> linear = (o, i) -> {
            Tensor w = normal.apply(Shape.of(o, i), 0.02f);
            if (!fp8) return new Linear(w, null, null);
            Tensor codes = backend.allocate(DType.F8_E4M3, w.shape()), scales = backend.allocate(DType.F32, Shape.of(o, i / 64, 1));
            owned.add(codes);
            owned.add(scales);
            backend.copy(codes, w);
            backend.fill(scales, 1);
            owned.remove(w);
            w.close();
            return new Linear(null, codes, scales);
        };
        try {
            Tensor emb = normal.apply(Shape.of(c.vocab(), c.dim()), 1f);
            List<Layer> layers = new ArrayList<>();
            for (int i = 0; i < c.numLayers(); i++) {
                layers.add(new Layer(ones.apply(Shape.of(c.dim())), linear.apply(c.dimAttn(), c.dim()),
                        linear.apply(c.dimAttn(), c.dim()), linear.apply(c.dimAttn(), c.dim()), linear.apply(c.dim(), c.dimAttn()),
                        ones.apply(Shape.of(c.dim())), linear.apply(c.dimFfn(), c.dim()), linear.apply(c.dimFfn(), c.dim()),
                        linear.apply(c.dim(), c.dimFfn()), normal.apply(Shape.of(c.numBuckets(), c.numHeads()), 1f)));
                if (i >= streaming.firstStreamed(c.numLayers())) {
                    stream(streamer, i - streaming.firstStreamed(c.numLayers()), layers.removeLast(), owned);
                    layers.add(null);
                }
            }
            return new UmT5Weights(c, dtype, emb, java.util.Collections.unmodifiableList(layers),
                    ones.apply(Shape.of(c.dim())), owned, fp8, streaming, streamer);
        } catch (RuntimeException e) {
            owned.forEach(Tensor::close);
            if (streamer != null) streamer.close();
            throw e;
        }
    }

    /** Copies a loaded layer's tensors into the streamer as its layer {@code streamed} and frees them. */
    private static void stream(BlockStreamer streamer, int streamed, Layer layer, List<Tensor> owned) {
        List<Tensor> entries = entries(layer);
        for (int e = 0; e < entries.size(); e++) {
            streamer.store(streamed, e, entries.get(e));
            owned.remove(entries.get(e));
            entries.get(e).close();
        }
    }

    /** Reads tensors of one file onto the backend, converting dtypes; every tensor made goes to {@code owned}. */
    private record Loader(Backend backend, TensorSource src, DType dtype, boolean fp8, List<Tensor> owned) {

        private void requireShape(String key, long... dims) {
            Shape expected = Shape.of(dims);
            if (!src.shape(key).equals(expected)) {
                throw new IllegalArgumentException(src.path() + ": tensor '" + key + "' has shape " + src.shape(key)
                        + ", expected " + expected + " for a umT5 encoder whose embedding is "
                        + "(vocab, dim). hint: the file is not a complete umT5 encoder checkpoint");
            }
        }

        /** The tensor in the compute dtype (fp8 files: dequantized with their scale). */
        Tensor plain(String key, long... dims) {
            requireShape(key, dims);
            DType fileType = src.dtype(key);
            if (fileType == DType.F8_E4M3) return keep(dequantized(key, scaleOf(key)));
            if (fileType != DType.F32 && fileType != DType.BF16 && fileType != DType.F16) {
                throw new IllegalArgumentException(src.path() + ": tensor '" + key + "' is " + fileType
                        + "; supported: F32, BF16, F16, F8_E4M3 (with scale_weight)");
            }
            Tensor raw = backend.fromBytes(fileType, src.shape(key), src.data(key));
            if (fileType == dtype) return keep(raw);
            try (raw) {
                Tensor t = keep(backend.allocate(dtype, raw.shape()));
                backend.copy(t, raw);
                return t;
            }
        }

        Linear linear(String key, long out, long in) {
            if (!fp8) return new Linear(plain(key, out, in), null, null);
            requireShape(key, out, in);
            if (in % 64 != 0) {
                throw new IllegalArgumentException(src.path() + ": tensor '" + key + "' has " + in
                        + " input columns; --fp8_t5 needs a multiple of 64 (the dequantization block)");
            }
            Tensor codes;
            float scale;
            if (src.dtype(key) == DType.F8_E4M3) {
                codes = keep(backend.fromBytes(DType.F8_E4M3, src.shape(key), src.data(key)));
                scale = scaleOf(key);
            } else {
                Tensor w = plain(key, out, in);
                codes = keep(backend.allocate(DType.F8_E4M3, w.shape()));
                backend.copy(codes, w); // musubi's --fp8_t5: a plain cast, round to nearest even
                owned.remove(w);
                w.close();
                scale = 1;
            }
            Tensor scales = keep(backend.allocate(DType.F32, Shape.of(out, in / 64, 1)));
            backend.fill(scales, scale);
            return new Linear(null, codes, scales);
        }

        /** The per-tensor scale of an fp8 file ({@code <module>.scale_weight}, ComfyUI's scaled fp8), 1 if absent. */
        private float scaleOf(String key) {
            String scaleKey = key.substring(0, key.length() - "weight".length()) + "scale_weight";
            if (!src.contains(scaleKey)) return 1;
            float[] s = src.floats(scaleKey);
            if (s.length != 1) {
                throw new IllegalArgumentException(src.path() + ": '" + scaleKey + "' has " + s.length
                        + " values, expected one per-tensor scale");
            }
            return s[0];
        }

        /**
         * q·scale in the compute dtype, on the backend (no host copy of the widened values: the fp8 embedding would be
         * 4 GiB of floats): e4m3 widens exactly, the product is rounded once.
         */
        private Tensor dequantized(String key, float scale) {
            try (Tensor codes = backend.fromBytes(DType.F8_E4M3, src.shape(key), src.data(key))) {
                Tensor t = backend.allocate(dtype, codes.shape());
                backend.copy(t, codes);
                backend.scale(t, t, scale);
                return t;
            }
        }

        private Tensor keep(Tensor t) {
            owned.add(t);
            return t;
        }
    }

    /** Bytes on the device: the resident tensors and the streamer's slots. */
    public long sizeBytes() {
        return owned.stream().mapToLong(t -> t.numElements() * t.dtype().sizeBytes()).sum()
                + (streamer == null ? 0 : streamer.deviceBytes());
    }

    @Override
    public void close() {
        owned.forEach(Tensor::close);
        owned.clear();
        if (streamer != null) streamer.close();
    }

    @Override
    public String toString() {
        return config + " in " + dtype + ", " + Arrays.toString(new long[] {sizeBytes()}) + " bytes";
    }
}
