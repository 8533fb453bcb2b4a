package dev.wanlora.models.umt5;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Config, buckets, HF key names, fp8 weights, the tokenizer lookup and the prompt → embedding path. */
class UmT5PartsTest {

    @TempDir
    Path tmp;

    @Test
    void xxlConfigMatchesTheRealKeyList() throws IOException {
        // t5_keys.txt: the real checkpoint's 242 keys (5.68 G parameters).
        List<String> lines = Files.readAllLines(Golden.dir("sampling-tiny").resolve("t5_keys.txt")).stream()
                .filter(l -> !l.isBlank() && !l.startsWith("#")).toList();
        assertEquals(242, lines.size());
        UmT5Config c = UmT5Config.xxl();
        assertEquals(5680910336L, c.parameterCount());
        assertEquals(2 + 24 * 10, lines.size()); // embedding, final norm, 10 tensors per layer
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("token_embedding.weight\t") && l.contains("256384")));
        assertEquals(64, c.headDim());
    }

    @Test
    void bucketsByHand() {
        UmT5Config c = UmT5Config.xxl();
        // spec §10.3: b = a for a < 8; 8 for 8–11, 9 for 12–15, 10 for 16–22, 11 for 23–31, …, 15 for a ≥ 91; +16 if rel > 0.
        assertEquals(0, c.bucket(0));
        assertEquals(7, c.bucket(-7));
        assertEquals(16 + 7, c.bucket(7));
        assertEquals(8, c.bucket(-11));
        assertEquals(9, c.bucket(-12));
        assertEquals(10, c.bucket(-22));
        assertEquals(11, c.bucket(-23));
        assertEquals(14, c.bucket(-90));
        assertEquals(15, c.bucket(-91));
        assertEquals(16 + 15, c.bucket(511));
    }

    /** The HF / ComfyUI names (umt5_xxl_fp16.safetensors) with F16 weights, and the fp8-scaled form, load to the same encoder. */
    @Test
    void hfNamesF16AndScaledFp8Load() {
        Path dir = Golden.dir("sampling-tiny");
        CpuBackend cpu = new CpuBackend();
        Path hf = tmp.resolve("umt5_hf_fp16.safetensors"), fp8 = tmp.resolve("umt5_hf_fp8_scaled.safetensors");
        try (SafeTensors st = SafeTensors.open(dir.resolve("t5.safetensors"))) {
            List<SafeTensorsWriter.Entry> f16 = new ArrayList<>(), scaled = new ArrayList<>();
            for (String k : st.keys()) {
                String name = hfName(k);
                float[] v = st.floats(k);
                f16.add(SafeTensorsWriter.Entry.ofFloats(name, DType.F16, st.shape(k), v));
                boolean isLinear = name.contains("SelfAttention.") && !name.contains("relative") || name.contains("DenseReluDense");
                if (isLinear) {
                    float max = 0;
                    for (float x : v) max = Math.max(max, Math.abs(x));
                    float scale = max / 448;
                    float[] q = new float[v.length];
                    for (int i = 0; i < v.length; i++) q[i] = v[i] / scale;
                    scaled.add(SafeTensorsWriter.Entry.ofFloats(name, DType.F8_E4M3, st.shape(k), q));
                    scaled.add(SafeTensorsWriter.Entry.ofFloats(name.replace(".weight", ".scale_weight"), DType.F32, Shape.of(1), new float[] {scale}));
                } else {
                    scaled.add(SafeTensorsWriter.Entry.ofFloats(name, DType.BF16, st.shape(k), v));
                }
            }
            SafeTensorsWriter.write(hf, f16, java.util.Map.of());
            SafeTensorsWriter.write(fp8, scaled, java.util.Map.of());
        }
        float[] reference = encodeFinal(cpu, dir.resolve("t5.safetensors"), false);
        // F16 rounding of bf16-representable weights of |w| ≥ 2⁻¹⁴ is exact; tiny ones lose a few bits: ≤ 1e-3.
        ErrorStats f16Error = ErrorStats.compare(encodeFinal(cpu, hf, false), reference);
        assertTrue(f16Error.relL2() < 1e-3, f16Error.toString());
        // fp8 e4m3 (u = 2⁻⁴) per-tensor scaled weights: a few percent, as the format costs (STYLE.md: reported, ~3–5e-2).
        ErrorStats fp8Error = ErrorStats.compare(encodeFinal(cpu, fp8, false), reference);
        System.out.println("umT5 from HF names: f16 " + f16Error + "; fp8 scaled " + fp8Error);
        assertTrue(fp8Error.relL2() < 0.1, fp8Error.toString());
        // --fp8_t5 keeps codes in blocks of 64 input columns; the tiny FFN's 160 columns are refused in one line.
        var e = assertThrows(IllegalArgumentException.class, () -> encodeFinal(cpu, fp8, true));
        assertTrue(e.getMessage().contains("has 160 input columns; --fp8_t5 needs a multiple of 64"), e.getMessage());
    }

    /**
     * --fp8_t5 keeps the fp8 codes and dequantizes right before each GEMM; that must give the same numbers as
     * dequantizing once at load (one formula, Backend.dequantizeFp8, with the per-tensor scale repeated per block).
     * Random weights with widths that are multiples of 64.
     */
    @Test
    void fp8KeptEqualsFp8DequantizedAtLoad() {
        CpuBackend cpu = new CpuBackend();
        UmT5Config c = new UmT5Config(50, 64, 64, 128, 4, 2, 32, 128);
        Path file = tmp.resolve("random_fp8.safetensors");
        java.util.SplittableRandom r = new java.util.SplittableRandom(5);
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        java.util.function.BiConsumer<String, Shape> tensor = (name, shape) -> {
            float[] v = new float[(int) shape.numElements()];
            for (int i = 0; i < v.length; i++) v[i] = (float) (r.nextDouble() * 2 - 1) * (shape.rank() == 1 ? 1 : 100);
            boolean isLinear = shape.rank() == 2 && !name.contains("relative") && !name.equals("shared.weight");
            entries.add(SafeTensorsWriter.Entry.ofFloats(name, isLinear ? DType.F8_E4M3 : DType.BF16, shape, v));
            if (isLinear) {
                entries.add(SafeTensorsWriter.Entry.ofFloats(name.replace(".weight", ".scale_weight"), DType.F32,
                        Shape.of(1), new float[] {0.001f}));
            }
        };
        tensor.accept("shared.weight", Shape.of(c.vocab(), c.dim()));
        for (int i = 0; i < c.numLayers(); i++) {
            String b = "encoder.block." + i + ".layer.";
            tensor.accept(b + "0.layer_norm.weight", Shape.of(c.dim()));
            for (String p : new String[] {"q", "k", "v", "o"}) tensor.accept(b + "0.SelfAttention." + p + ".weight", Shape.of(64, 64));
            tensor.accept(b + "0.SelfAttention.relative_attention_bias.weight", Shape.of(32, 4));
            tensor.accept(b + "1.layer_norm.weight", Shape.of(c.dim()));
            tensor.accept(b + "1.DenseReluDense.wi_0.weight", Shape.of(128, 64));
            tensor.accept(b + "1.DenseReluDense.wi_1.weight", Shape.of(128, 64));
            tensor.accept(b + "1.DenseReluDense.wo.weight", Shape.of(64, 128));
        }
        tensor.accept("encoder.final_layer_norm.weight", Shape.of(c.dim()));
        SafeTensorsWriter.write(file, entries, java.util.Map.of());
        float[] ids = new float[2 * 9], mask = new float[ids.length];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = r.nextInt(c.vocab());
            mask[i] = i % 9 < (i < 9 ? 9 : 4) ? 1 : 0;
        }
        float[][] out = new float[2][];
        for (int kept = 0; kept < 2; kept++) {
            try (SafeTensors st = SafeTensors.open(file); UmT5Weights w = UmT5Weights.load(cpu, st, DType.F32, kept == 1)) {
                assertEquals(c, w.config());
                assertEquals(kept == 1, w.layer(0).q().isQuantized());
                try (Tensor t = new UmT5Encoder(cpu, w).encode(ids, mask, 2, 9, null)) {
                    out[kept] = cpu.toFloats(t);
                }
            }
        }
        assertArrayEquals(out[0], out[1]);
    }

    private static float[] encodeFinal(CpuBackend cpu, Path file, boolean fp8) {
        try (SafeTensors st = SafeTensors.open(file); UmT5Weights w = UmT5Weights.load(cpu, st, DType.F32, fp8);
             SafeTensors io = SafeTensors.open(Golden.dir("sampling-tiny").resolve("t5_io.safetensors"))) {
            float[] ids = UmT5GoldenVerifier.longsAsFloats(io, "input.ids"), mask = UmT5GoldenVerifier.longsAsFloats(io, "input.mask");
            try (Tensor out = new UmT5Encoder(cpu, w).encode(ids, mask, 2, 32, null)) {
                return cpu.toFloats(out);
            }
        }
    }

    /** Wan name → HF UMT5EncoderModel name. */
    private static String hfName(String k) {
        if (k.equals("token_embedding.weight")) return "shared.weight";
        if (k.equals("norm.weight")) return "encoder.final_layer_norm.weight";
        String[] p = k.split("\\.");
        String b = "encoder.block." + p[1] + ".";
        String rest = k.substring(("blocks." + p[1] + ".").length());
        return b + switch (rest) {
            case "norm1.weight" -> "layer.0.layer_norm.weight";
            case "norm2.weight" -> "layer.1.layer_norm.weight";
            case "pos_embedding.embedding.weight" -> "layer.0.SelfAttention.relative_attention_bias.weight";
            case "ffn.gate.0.weight" -> "layer.1.DenseReluDense.wi_0.weight";
            case "ffn.fc1.weight" -> "layer.1.DenseReluDense.wi_1.weight";
            case "ffn.fc2.weight" -> "layer.1.DenseReluDense.wo.weight";
            default -> "layer.0.SelfAttention." + rest.substring("attn.".length());
        };
    }

    @Test
    void tokenizerLookupOrder() throws IOException {
        Path tok = Golden.dir("sampling-tiny").resolve("tokenizer/tokenizer.json");
        // explicit FILE and DIR
        assertEquals(tok, UmT5Tokenizer.locate(tok, null));
        assertEquals(tok.getParent().resolve("tokenizer.json"), UmT5Tokenizer.locate(tok.getParent(), null));
        // the Wan release layout: google/umt5-xxl/ beside the checkpoint
        Path release = tmp.resolve("Wan2.1-T2V-14B");
        Files.createDirectories(release.resolve("google/umt5-xxl"));
        Files.copy(tok, release.resolve("google/umt5-xxl/tokenizer.json"));
        assertEquals(release.resolve("google/umt5-xxl/tokenizer.json"),
                UmT5Tokenizer.locate(null, release.resolve("models_t5_umt5-xxl-enc-bf16.pth")));
        // a tokenizer/ folder beside the checkpoint wins over the release folder
        Files.createDirectories(release.resolve("tokenizer"));
        Files.copy(tok, release.resolve("tokenizer/tokenizer.json"));
        assertEquals(release.resolve("tokenizer/tokenizer.json"), UmT5Tokenizer.locate(null, release.resolve("x.pth")));
        // beside the checkpoint wins over both folders
        Files.copy(tok, release.resolve("tokenizer.json"));
        assertEquals(release.resolve("tokenizer.json"), UmT5Tokenizer.locate(null, release.resolve("x.pth")));
        var e = assertThrows(IllegalArgumentException.class, () -> UmT5Tokenizer.locate(tmp.resolve("nothing"), null));
        assertTrue(e.getMessage().contains("hint: umT5's tokenizer is the google/umt5-xxl folder"), e.getMessage());
    }

    @Test
    void promptToTrimmedEmbedding() throws IOException {
        // The golden's prompt 0, through tokenizer + encoder as musubi's sampling does (batch 1): output.trimmed.0.
        Path dir = Golden.dir("sampling-tiny");
        Files.copy(dir.resolve("t5.pth"), tmp.resolve("t5.pth"));
        Files.copy(dir.resolve("tokenizer/tokenizer.json"), tmp.resolve("tokenizer.json"));
        CpuBackend cpu = new CpuBackend();
        try (UmT5TextEncoder te = UmT5TextEncoder.open(cpu, tmp.resolve("t5.pth"), null, DType.F32, false);
             SafeTensors io = SafeTensors.open(dir.resolve("t5_io.safetensors"));
             Tensor e = te.encode("A cat walks on the grass.")) {
            assertEquals(Shape.of(16, 64), e.shape());
            // Encoding without the other prompt in the batch gives the same numbers (README: bitwise in torch).
            assertTrue(ErrorStats.compare(cpu.toFloats(e), io.floats("output.trimmed.0")).relL2() < 1e-5);
        }
    }
}
