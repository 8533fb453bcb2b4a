package dev.wanlora.pipeline.sample;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.sampling.LatentDecoder;
import dev.wanlora.models.sampling.TextEncoder;
import dev.wanlora.models.umt5.UmT5TextEncoder;
import dev.wanlora.models.umt5.UmT5Weights;
import dev.wanlora.models.wan.vae.WanVae;
import dev.wanlora.models.wan.vae.WanVaeConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link SampleModels#files} with the golden tiny umT5 (sampling-tiny) and the golden tiny Wan VAE (vae-tiny), on the
 * CPU backend (F32, as the rest of a CPU run).
 */
public class RealSampleModelsTest {

    static final Path T5_DIR = Golden.dir("sampling-tiny");
    static final Path VAE = Golden.dir("vae-tiny").resolve("vae.safetensors");

    @TempDir
    Path tmp;

    /** The wired encoder is UmT5TextEncoder itself: bit-identical, from .safetensors and from the torch .pth. */
    @Test
    void encoderGivesUmT5TextEncodersOutput() {
        try (CpuBackend cpu = new CpuBackend()) {
            for (String file : new String[] {"t5.safetensors", "t5.pth"}) {
                Path t5 = T5_DIR.resolve(file);
                SampleModels models = SampleModels.files(t5, T5_DIR.resolve("tokenizer"), false, VAE);
                models.check();
                String prompt = "A cat walks on the grass.";
                try (TextEncoder wired = models.openTextEncoder(cpu, 64);
                     UmT5TextEncoder direct = UmT5TextEncoder.open(cpu, t5, T5_DIR.resolve("tokenizer"), DType.F32, false);
                     Tensor a = wired.encode(prompt);
                     Tensor b = direct.encode(prompt)) {
                    assertEquals(64, wired.dim());
                    assertEquals(Shape.of(16, 64), a.shape(), file); // MANIFEST seq_lens[0] = 16
                    assertArrayEquals(cpu.toFloats(b), cpu.toFloats(a), file);
                    assertTrue(wired.describe().contains(file), wired.describe());
                }
            }
        }
    }

    /**
     * The wired decoder reproduces musubi's WanVAE.decode (vae-tiny output.video, (3, 9, 64, 64) from a (16, 3, 8, 8)
     * latent). Tolerance: the README measures float32 vs float64 at relL2 ≤ 3e-7 per stage; the same F32 decoder is
     * held to 1e-5 by VaeGoldenVerifier; 1e-5 here as well.
     */
    @Test
    void decoderReproducesMusubisDecode() {
        float[] z, expected;
        try (SafeTensors golden = SafeTensors.open(Golden.dir("vae-tiny").resolve("decode.safetensors"))) {
            z = golden.floats("input.z");
            expected = golden.floats("output.video");
        }
        try (CpuBackend cpu = new CpuBackend();
             LatentDecoder decoder = SampleModels.files(null, null, false, VAE).openDecoder(cpu)) {
            LatentDecoder.Video v = decoder.decode(z, 3, 8, 8);
            assertEquals(9, v.frames());
            assertEquals(64, v.height());
            assertEquals(64, v.width());
            double num = 0, den = 0;
            for (int i = 0; i < expected.length; i++) {
                num += (v.pixels()[i] - expected[i]) * (double) (v.pixels()[i] - expected[i]);
                den += expected[i] * (double) expected[i];
            }
            assertTrue(Math.sqrt(num / den) < 1e-5, "relL2 " + Math.sqrt(num / den));
            assertTrue(decoder.describe().contains("vae.safetensors"), decoder.describe());
        }
    }

    /**
     * The official VAE is a torch .pth (Wan2.1_VAE.pth: a top-level state dict, as Wan's loader
     * {@code load_state_dict(torch.load(path))} expects): vae-tiny rewritten in that layout decodes bit for bit as the
     * .safetensors.
     */
    @Test
    void pthVaeDecodesAsTheSafetensors() {
        Path pth = TorchZipWriter.fromSafetensors(VAE, tmp.resolve("Wan2.1_VAE.pth"), "Wan2.1_VAE");
        float[] z;
        try (SafeTensors golden = SafeTensors.open(Golden.dir("vae-tiny").resolve("decode.safetensors"))) {
            z = golden.floats("input.z");
        }
        try (CpuBackend cpu = new CpuBackend()) {
            SampleModels fromPth = SampleModels.files(T5_DIR.resolve("t5.pth"), T5_DIR.resolve("tokenizer"), false, pth);
            fromPth.check();
            try (LatentDecoder a = fromPth.openDecoder(cpu);
                 LatentDecoder b = SampleModels.files(null, null, false, VAE).openDecoder(cpu)) {
                assertArrayEquals(b.decode(z, 3, 8, 8).pixels(), a.decode(z, 3, 8, 8).pixels());
                assertTrue(a.describe().contains("Wan2.1_VAE.pth"), a.describe());
            }
        }
    }

    /** The memory plan's decoder: the decoder's weights (decoder.*, conv2.*: under vae-tiny's 713,137 parameters) + WanVae's working memory. */
    @Test
    void decoderBytesCountWeightsAndWorkingMemory() {
        SampleModels models = SampleModels.files(T5_DIR.resolve("t5.pth"), T5_DIR.resolve("tokenizer"), false, VAE);
        assertEquals(0, models.decoderBytes(60, 104, DType.BF16), "unknown before check()");
        models.check();
        long working = WanVae.decodeWorkingBytes(new WanVaeConfig(7, 16), 60, 104, DType.BF16);
        long weights = models.decoderBytes(60, 104, DType.BF16) - working;
        assertTrue(weights > 100_000 * 2 && weights < 713_137 * 2, "weights " + weights);
        assertEquals(SampleModels.demoStandIns().decoderBytes(60, 104, DType.BF16), 0);
    }

    @Test
    void wrongFilesStopWithOneLine() {
        Path dit = Golden.dir("wan-tiny").resolve("model.safetensors");
        Path t5 = T5_DIR.resolve("t5.safetensors");
        UserError e = assertThrows(UserError.class, () -> SampleModels.files(t5, T5_DIR.resolve("tokenizer"), false, dit).check());
        assertTrue(e.getMessage().startsWith("--vae " + dit + ": no tensor encoder.conv1.weight; expected a Wan 2.1 VAE"), e.getMessage());
        e = assertThrows(UserError.class, () -> SampleModels.files(t5, tmp.resolve("nothing"), false, VAE).check());
        assertTrue(e.getMessage().startsWith("--t5_tokenizer " + tmp.resolve("nothing") + ": no tokenizer.json there"), e.getMessage());
        try (CpuBackend cpu = new CpuBackend()) {
            SampleModels models = SampleModels.files(t5, T5_DIR.resolve("tokenizer"), false, VAE);
            e = assertThrows(UserError.class, () -> models.openTextEncoder(cpu, 4096));
            assertEquals("--t5 " + t5 + ": the text encoder's width is 64 but the DiT expects 4096-wide text (umT5-XXL:"
                    + " 4096); use the umT5-XXL encoder that goes with this DiT", e.getMessage());
        }
        assertEquals(1, e.getMessage().lines().count());
        // --fp8_t5 on the golden umT5, whose 160-wide FFN is no multiple of fp8's 64-column blocks: one line naming --t5
        try (CpuBackend cpu = new CpuBackend()) {
            SampleModels fp8 = SampleModels.files(t5, T5_DIR.resolve("tokenizer"), true, VAE);
            e = assertThrows(UserError.class, () -> fp8.openTextEncoder(cpu, 64));
            assertTrue(e.getMessage().startsWith("--t5 " + t5 + ": ") && e.getMessage().contains("--fp8_t5 needs a multiple of 64"),
                    e.getMessage());
        }
    }

    /**
     * The widened fixture (below) is the golden encoder padded: its first 64 columns are the 64-wide output, the rest
     * zero. Bound: each of the 5 RMS norms computes rsqrt(m + 64·eps) instead of rsqrt(m + eps), a relative change of
     * ½·63e-6/m, ≈ 3e-5 at m ≈ 1 (measured total 4.3e-5); 5 norms in a row give ≤ 1.6e-4; 2e-4.
     */
    @Test
    void widenedT5IsTheGoldenEncoderPadded() {
        Path t5 = widenedT5(tmp);
        try (CpuBackend cpu = new CpuBackend();
             TextEncoder wide = SampleModels.files(t5, T5_DIR.resolve("tokenizer"), false, VAE).openTextEncoder(cpu, 4096);
             TextEncoder narrow = SampleModels.files(T5_DIR.resolve("t5.safetensors"), T5_DIR.resolve("tokenizer"), false, VAE)
                     .openTextEncoder(cpu, 64);
             Tensor a = wide.encode("A cat walks on the grass.");
             Tensor b = narrow.encode("A cat walks on the grass.")) {
            float[] x = cpu.toFloats(a), y = cpu.toFloats(b);
            double num = 0, den = 0;
            for (int row = 0; row < 16; row++) {
                for (int c = 0; c < 4096; c++) {
                    float expected = c < 64 ? y[row * 64 + c] : 0f;
                    num += (x[row * 4096 + c] - expected) * (double) (x[row * 4096 + c] - expected);
                    den += expected * (double) expected;
                }
            }
            assertTrue(Math.sqrt(num / den) < 2e-4, "relL2 " + Math.sqrt(num / den));
        }
    }

    /**
     * --fp8_t5 reaches the encoder: the widened umT5 (FFN 192) in fp8 e4m3 codes (u = 2⁻⁴, per-block scales) stays
     * within UmT5PartsTest's fp8 bound (relL2 < 0.1) of the F32 encoder and is not equal to it.
     */
    @Test
    void fp8T5IsWired() {
        Path t5 = widenedT5(tmp);
        try (CpuBackend cpu = new CpuBackend();
             TextEncoder f32 = SampleModels.files(t5, T5_DIR.resolve("tokenizer"), false, VAE).openTextEncoder(cpu, 4096);
             TextEncoder fp8 = SampleModels.files(t5, T5_DIR.resolve("tokenizer"), true, VAE).openTextEncoder(cpu, 4096);
             Tensor a = f32.encode("A cat walks on the grass.");
             Tensor b = fp8.encode("A cat walks on the grass.")) {
            float[] x = cpu.toFloats(a), y = cpu.toFloats(b);
            double num = 0, den = 0;
            for (int i = 0; i < x.length; i++) {
                num += (y[i] - x[i]) * (double) (y[i] - x[i]);
                den += x[i] * (double) x[i];
            }
            double rel = Math.sqrt(num / den);
            assertTrue(rel > 0 && rel < 0.1, "relL2 " + rel);
            assertTrue(fp8.describe().contains(", fp8)"), fp8.describe());
        }
    }

    /**
     * The golden tiny umT5 (width 64) widened to the DiT's 4096 with zeros, so that it drives wan-tiny's DiT (text dim
     * 4096) and training's 4096-wide caches: the token embedding, the norms and every weight's model-width axis are
     * padded, and the FFN from 160 to 192 (a multiple of 64, as --fp8_t5 needs; the extra units are zero: gelu(0)·0 = 0).
     * The encoder is a valid umT5 (vocab 512, 2 layers) with the real key names. The zero columns stay zero. The RMS
     * norms see mean(x²) over 4096 columns, 64 of them nonzero, i.e. 1/64 of the 64-wide mean; the norm weights are
     * multiplied by 1/8 = √(64/4096) (exact in binary) to cancel that, so the first 64 columns of its output are the
     * golden encoder's (up to eps = 1e-6 now weighing 64× more inside the rsqrt).
     */
    public static Path widenedT5(Path folder) {
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        try (SafeTensors src = SafeTensors.open(T5_DIR.resolve("t5.safetensors"))) {
            for (String key : src.keys()) {
                long[] dims = src.shape(key).dims();
                long[] wide = dims.clone();
                if (key.equals("token_embedding.weight") || key.matches("blocks\\.\\d+\\.attn\\.[qkv]\\.weight")) {
                    wide[1] = 4096;
                } else if (key.matches("blocks\\.\\d+\\.ffn\\.(gate\\.0|fc1)\\.weight")) {
                    wide = new long[] {192, 4096};
                } else if (key.matches("blocks\\.\\d+\\.ffn\\.fc2\\.weight")) {
                    wide = new long[] {4096, 192};
                } else if (key.matches("blocks\\.\\d+\\.attn\\.o\\.weight") || key.endsWith("norm1.weight")
                        || key.endsWith("norm2.weight") || key.equals("norm.weight")) {
                    wide[0] = 4096;
                }
                float[] v = src.floats(key), out = v;
                if (key.endsWith("norm1.weight") || key.endsWith("norm2.weight") || key.equals("norm.weight")) {
                    for (int i = 0; i < v.length; i++) v[i] /= 8;
                }
                if (!java.util.Arrays.equals(dims, wide)) {
                    int rows = (int) dims[0], cols = dims.length == 1 ? 1 : (int) dims[1];
                    int wideCols = wide.length == 1 ? 1 : (int) wide[1];
                    out = new float[(int) (wide[0] * wideCols)];
                    for (int r = 0; r < rows; r++) System.arraycopy(v, r * cols, out, r * wideCols, cols);
                }
                entries.add(new SafeTensorsWriter.Entry(key, DType.F32, Shape.of(wide), MemorySegment.ofArray(out)));
            }
        }
        Path file = folder.resolve("t5-wide.safetensors");
        SafeTensorsWriter.write(file, entries, Map.of());
        return file;
    }

    /** {@code src}'s umT5 with its layers repeated {@code times} times (blocks.{i + k·n} = blocks.{i}), written to {@code out}. */
    public static Path deepenedT5(Path src, Path out, int times) {
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        try (SafeTensors st = SafeTensors.open(src)) {
            int layers = UmT5Weights.configOf(st).numLayers();
            for (String k : st.keys()) {
                if (!k.startsWith("blocks.")) {
                    entries.add(SafeTensorsWriter.Entry.ofFloats(k, st.dtype(k), st.shape(k), st.floats(k)));
                    continue;
                }
                int i = Integer.parseInt(k.split("\\.")[1]);
                String rest = k.substring(("blocks." + i).length());
                for (int t = 0; t < times; t++) {
                    entries.add(SafeTensorsWriter.Entry.ofFloats("blocks." + (i + t * layers) + rest, st.dtype(k), st.shape(k),
                            st.floats(k)));
                }
            }
        }
        SafeTensorsWriter.write(out, entries, Map.of());
        return out;
    }
}
