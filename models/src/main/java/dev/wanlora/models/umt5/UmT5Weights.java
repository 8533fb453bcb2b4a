package dev.wanlora.models.umt5;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.TensorSource;
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
 */
public final class UmT5Weights implements AutoCloseable {

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

    private UmT5Weights(UmT5Config config, DType dtype, Tensor tokenEmbedding, List<Layer> layers, Tensor finalNorm,
                        List<Tensor> owned) {
        this.config = config;
        this.dtype = dtype;
        this.tokenEmbedding = tokenEmbedding;
        this.layers = layers;
        this.finalNorm = finalNorm;
        this.owned = owned;
    }

    public UmT5Config config() { return config; }

    /** The compute dtype of activations and non-fp8 weights. */
    public DType dtype() { return dtype; }

    public Tensor tokenEmbedding() { return tokenEmbedding; }

    public Layer layer(int i) { return layers.get(i); }

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
        UmT5Config c = configOf(src);
        Names n = Names.of(src);
        List<Tensor> owned = new ArrayList<>();
        try {
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
            }
            Tensor norm = l.plain(n.finalNorm(src), c.dim());
            return new UmT5Weights(c, dtype, emb, List.copyOf(layers), norm, owned);
        } catch (RuntimeException e) {
            owned.forEach(Tensor::close);
            throw e;
        }
    }

    /**
     * Seeded random weights of {@code config}'s real shapes made on the device (for timing; no file): N(0, 0.02²)
     * matrices, N(0, 1) embedding and bias tables, norms 1. With {@code fp8} the matrices are kept as fp8 codes of a
     * plain cast (scale 1), as {@code --fp8_t5} keeps them.
     */
    public static UmT5Weights random(Backend backend, UmT5Config c, DType dtype, boolean fp8, long seed) {
        List<Tensor> owned = new ArrayList<>();
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
        Tensor emb = normal.apply(Shape.of(c.vocab(), c.dim()), 1f);
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < c.numLayers(); i++) {
            layers.add(new Layer(ones.apply(Shape.of(c.dim())), linear.apply(c.dimAttn(), c.dim()),
                    linear.apply(c.dimAttn(), c.dim()), linear.apply(c.dimAttn(), c.dim()), linear.apply(c.dim(), c.dimAttn()),
                    ones.apply(Shape.of(c.dim())), linear.apply(c.dimFfn(), c.dim()), linear.apply(c.dimFfn(), c.dim()),
                    linear.apply(c.dim(), c.dimFfn()), normal.apply(Shape.of(c.numBuckets(), c.numHeads()), 1f)));
        }
        return new UmT5Weights(c, dtype, emb, List.copyOf(layers), ones.apply(Shape.of(c.dim())), owned);
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

    /** Bytes on the device. */
    public long sizeBytes() {
        return owned.stream().mapToLong(t -> t.numElements() * t.dtype().sizeBytes()).sum();
    }

    @Override
    public void close() {
        owned.forEach(Tensor::close);
        owned.clear();
    }

    @Override
    public String toString() {
        return config + " in " + dtype + ", " + Arrays.toString(new long[] {sizeBytes()}) + " bytes";
    }
}
