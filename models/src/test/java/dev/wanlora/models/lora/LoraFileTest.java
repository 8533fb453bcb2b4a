package dev.wanlora.models.lora;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.numeric.Fp16;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LoraFileTest {

    /** The 10 Linears of a Wan block, as (musubi suffix, in, out) for the tiny config dim 256, ffn 512. */
    private static final String[][] LINEARS = {
            {"self_attn_q", "256", "256"}, {"self_attn_k", "256", "256"}, {"self_attn_v", "256", "256"},
            {"self_attn_o", "256", "256"}, {"cross_attn_q", "256", "256"}, {"cross_attn_k", "256", "256"},
            {"cross_attn_v", "256", "256"}, {"cross_attn_o", "256", "256"}, {"ffn_0", "256", "512"}, {"ffn_2", "512", "256"}};

    private static List<LoraModuleWeights> tinyLora(int rank, float alpha, long seed) {
        var rng = new SplittableRandom(seed);
        List<LoraModuleWeights> modules = new ArrayList<>();
        for (int b = 0; b < 2; b++) {
            for (String[] l : LINEARS) {
                int in = Integer.parseInt(l[1]), out = Integer.parseInt(l[2]);
                float[] down = new float[rank * in], up = new float[out * rank];
                for (int i = 0; i < down.length; i++) down[i] = (float) rng.nextGaussian() * 0.06f;
                for (int i = 0; i < up.length; i++) up[i] = (float) rng.nextGaussian() * 0.01f;
                modules.add(new LoraModuleWeights("lora_unet_blocks_" + b + "_" + l[0], rank, in, out, alpha, down, up));
            }
        }
        return modules;
    }

    private static float round(DType d, float v) {
        return d == DType.BF16 ? Bf16.round(v) : d == DType.F16 ? Fp16.round(v) : v;
    }

    @Test
    void musubiFormRoundTripsInEveryPrecision(@TempDir Path dir) {
        var modules = tinyLora(4, 2f, 1);
        for (SavePrecision p : SavePrecision.values()) {
            Path file = dir.resolve("musubi-" + p + ".safetensors");
            LoraFile.write(file, modules, p, LoraFormat.MUSUBI, Map.of("ss_network_dim", "4"));
            var back = LoraFile.read(file);
            assertEquals(LoraFormat.MUSUBI, back.format());
            assertEquals(p.dtype(), back.dtype());
            assertEquals(20, back.modules().size());
            for (var w : modules) {
                var r = back.modules().stream().filter(m -> m.name().equals(w.name())).findFirst().orElseThrow();
                assertEquals(w.rank(), r.rank());
                assertEquals(w.inFeatures(), r.inFeatures());
                assertEquals(w.outFeatures(), r.outFeatures());
                assertEquals(2f, r.alpha(), 0f);
                for (int i = 0; i < w.down().length; i++) assertEquals(round(p.dtype(), w.down()[i]), r.down()[i], 0f);
                for (int i = 0; i < w.up().length; i++) assertEquals(round(p.dtype(), w.up()[i]), r.up()[i], 0f);
            }
        }
    }

    /** PEFT folds √(alpha/rank) into both matrices; read back (alpha = rank) the adapter's product is unchanged. */
    @Test
    void peftFormFoldsAlphaAndRoundTrips(@TempDir Path dir) {
        var modules = tinyLora(4, 2f, 2);
        for (SavePrecision p : SavePrecision.values()) {
            Path file = dir.resolve("peft-" + p + ".safetensors");
            LoraFile.write(file, modules, p, LoraFormat.PEFT, Map.of());
            var back = LoraFile.read(file);
            assertEquals(LoraFormat.PEFT, back.format());
            assertEquals(20, back.modules().size());
            double worst = 0;
            for (var w : modules) {
                var r = back.modules().stream().filter(m -> m.name().equals(w.name())).findFirst().orElseThrow();
                assertEquals(4f, r.alpha(), 0f, "alpha = rank");
                float[] expected = delta(w), actual = delta(r);
                ErrorStats s = ErrorStats.compare(actual, expected);
                // five roundings to the save precision (down, up, the scale and the two products; alpha/rank = 0.5
                // is exact), each ≤ u/2 relative, so ≤ 5·u/2 per term: 5·2⁻²⁴ (fp32), 5·2⁻¹² (fp16), 5·2⁻⁹ (bf16)
                double bound = switch (p) {
                    case FP32 -> 3e-7;
                    case FP16 -> 1.25e-3;
                    case BF16 -> 1e-2;
                };
                assertTrue(s.relL2() < bound, p + " " + w.name() + " " + s.describe(bound));
                worst = Math.max(worst, s.relL2() / bound);
            }
            System.out.printf("PEFT round trip %s: worst relL2 at %.0f%% of its bound%n", p, 100 * worst);
        }
    }

    /** (alpha/rank)·up·down, the weight delta the adapter adds. */
    private static float[] delta(LoraModuleWeights w) {
        float[] d = new float[w.outFeatures() * w.inFeatures()];
        double scale = w.alpha() / w.rank();
        for (int o = 0; o < w.outFeatures(); o++) {
            for (int i = 0; i < w.inFeatures(); i++) {
                double s = 0;
                for (int k = 0; k < w.rank(); k++) s += (double) w.up()[o * w.rank() + k] * w.down()[k * w.inFeatures() + i];
                d[o * w.inFeatures() + i] = (float) (scale * s);
            }
        }
        return d;
    }

    @Test
    void keysShapesAndDtypesFollowTheSpec(@TempDir Path dir) {
        var modules = tinyLora(4, 2f, 3);
        Path musubi = dir.resolve("m.safetensors"), peft = dir.resolve("p.safetensors");
        LoraFile.write(musubi, modules, SavePrecision.BF16, LoraFormat.MUSUBI, Map.of());
        LoraFile.write(peft, modules, SavePrecision.FP32, LoraFormat.PEFT, Map.of());
        try (var st = SafeTensors.open(musubi)) {
            assertEquals(60, st.keys().size());
            assertEquals(Shape.of(4, 256), st.info("lora_unet_blocks_0_self_attn_q.lora_down.weight").shape());
            assertEquals(Shape.of(256, 4), st.info("lora_unet_blocks_0_self_attn_q.lora_up.weight").shape());
            assertEquals(Shape.of(), st.info("lora_unet_blocks_0_self_attn_q.alpha").shape());
            assertEquals(Shape.of(4, 512), st.info("lora_unet_blocks_1_ffn_2.lora_down.weight").shape());
            assertEquals(Shape.of(512, 4), st.info("lora_unet_blocks_1_ffn_0.lora_up.weight").shape());
            for (String k : st.keys()) assertEquals(DType.BF16, st.info(k).dtype(), k + ": --save_precision applies to alpha too");
            // the file's tensors are in the Rust serializer's order (same dtype here, so by name)
            assertEquals(new ArrayList<>(new TreeSet<>(st.keys())), new ArrayList<>(st.keys()));
        }
        try (var st = SafeTensors.open(peft)) {
            assertEquals(40, st.keys().size(), "no alpha keys");
            assertEquals(Shape.of(4, 256), st.info("diffusion_model.blocks.0.self_attn.q.lora_A.weight").shape());
            assertEquals(Shape.of(256, 4), st.info("diffusion_model.blocks.0.cross_attn.o.lora_B.weight").shape());
            assertEquals(Shape.of(4, 512), st.info("diffusion_model.blocks.1.ffn.2.lora_A.weight").shape());
        }
        assertEquals("blocks.12.cross_attn.k_img", LoraFile.modulePath("lora_unet_blocks_12_cross_attn_k_img"));
        assertEquals("blocks.39.ffn.2", LoraFile.modulePath("lora_unet_blocks_39_ffn_2"));
    }

    @Test
    void metadataKeysValuesAndHashes(@TempDir Path dir) throws IOException {
        var meta = new LoraMetadata(
                new LoraMetadata.Run(123456789L, 1700000000.25, "ghibli", 40, 40, 50, 2000, 1, true, false, "bf16", 2025,
                        null, true, false, false, "[{\"is_image_dataset\": true}]", "wan2.1_t2v_14B_bf16.safetensors",
                        "wan_2.1_vae.safetensors"),
                new LoraMetadata.Training(2e-4, "0", "constant", "bitsandbytes.optim.adamw.AdamW8bit", 1.0, "none", 0.0,
                        1.0, 1.29, 1.0, "shift", 1.0, 3.0, null, null),
                new LoraMetadata.Network(LoraMetadata.NETWORK_MODULE, 32, 32.0, null, null),
                new LoraMetadata.ModelSpec(null, null, null, null, null, null, null));
        Map<String, String> m = meta.toMap(false, 1700003600.5, 2000, 50, ZoneOffset.UTC);
        // spec §7.3's ss_* keys, in musubi's insertion order, then modelspec.*
        assertEquals(List.of("ss_session_id", "ss_training_started_at", "ss_output_name", "ss_learning_rate",
                "ss_num_train_items", "ss_num_batches_per_epoch", "ss_num_epochs", "ss_gradient_checkpointing",
                "ss_gradient_checkpointing_cpu_offload", "ss_gradient_accumulation_steps", "ss_max_train_steps",
                "ss_lr_warmup_steps", "ss_lr_scheduler", "ss_base_model_version", "ss_network_module", "ss_network_dim",
                "ss_network_alpha", "ss_network_dropout", "ss_mixed_precision", "ss_seed", "ss_training_comment",
                "ss_optimizer", "ss_max_grad_norm", "ss_fp8_base", "ss_full_fp16", "ss_full_bf16", "ss_weighting_scheme",
                "ss_logit_mean", "ss_logit_std", "ss_mode_scale", "ss_guidance_scale", "ss_timestep_sampling",
                "ss_sigmoid_scale", "ss_discrete_flow_shift", "ss_datasets", "ss_sd_model_name", "ss_vae_name",
                "ss_training_finished_at", "ss_steps", "ss_epoch", "modelspec.sai_model_spec", "modelspec.architecture",
                "modelspec.implementation", "modelspec.title", "modelspec.resolution", "modelspec.date"),
                new ArrayList<>(m.keySet()));
        assertEquals("0.0002", m.get("ss_learning_rate"));
        assertEquals("1700000000.25", m.get("ss_training_started_at"));
        assertEquals("True", m.get("ss_gradient_checkpointing"));
        assertEquals("32", m.get("ss_network_dim"));
        assertEquals("32.0", m.get("ss_network_alpha"));
        assertEquals("None", m.get("ss_network_dropout"));
        assertEquals("None", m.get("ss_training_comment"));
        assertEquals("wan", m.get("ss_base_model_version"));
        assertEquals("networks.lora_wan", m.get("ss_network_module"));
        assertEquals("3.0", m.get("ss_discrete_flow_shift"));
        assertEquals("1.29", m.get("ss_mode_scale"));
        assertEquals("wan2.1/lora", m.get("modelspec.architecture"));
        assertEquals("https://github.com/Wan-Video/Wan2.1", m.get("modelspec.implementation"));
        assertEquals("ghibli", m.get("modelspec.title"));
        assertEquals("1280x720", m.get("modelspec.resolution"));
        assertEquals("2023-11-14T23:13:20", m.get("modelspec.date"));

        Map<String, String> minimum = meta.toMap(true, 1700003600.5, 2000, 50, ZoneOffset.UTC);
        assertEquals(List.of("ss_base_model_version", "ss_network_module", "ss_network_dim", "ss_network_alpha",
                "modelspec.sai_model_spec", "modelspec.architecture", "modelspec.implementation", "modelspec.title",
                "modelspec.resolution", "modelspec.date"), new ArrayList<>(minimum.keySet()));

        // hashes: sshs_model_hash = sha256 of the data section, which our file shares with musubi's save_file
        Path file = dir.resolve("ghibli.safetensors");
        LoraFile.write(file, tinyLora(4, 2f, 4), SavePrecision.FP32, LoraFormat.MUSUBI, m);
        var back = LoraFile.read(file);
        assertEquals(m.size() + 2, back.metadata().size());
        byte[] bytes = Files.readAllBytes(file);
        long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String dataHash = sha256(bytes, 8 + (int) headerLength, bytes.length);
        assertEquals(dataHash, back.metadata().get("sshs_model_hash"));
        // 20 modules of 4·(in + out) floats = 368,640 bytes < 1 MiB: the legacy window is empty
        assertEquals("e3b0c442", back.metadata().get("sshs_legacy_hash"), "sha256 of no bytes");
    }

    /** The legacy window at 1 MiB of the canonical (8-byte aligned) serialization, built independently here. */
    @Test
    void legacyHashReadsTheWindowAtOneMebibyte(@TempDir Path dir) throws IOException {
        var rng = new SplittableRandom(6);
        float[] down = new float[64 * 5120], up = new float[5120 * 64];
        for (int i = 0; i < down.length; i++) down[i] = (float) rng.nextGaussian();
        var module = new LoraModuleWeights("lora_unet_blocks_0_self_attn_q", 64, 5120, 5120, 64f, down, up);
        Map<String, String> meta = Map.of("ss_network_dim", "64", "modelspec.title", "not hashed");
        Path file = dir.resolve("big.safetensors");
        LoraFile.write(file, List.of(module), SavePrecision.FP32, LoraFormat.MUSUBI, meta);

        // serde_json header of the three tensors in name order, ss_* metadata only, spaces to a multiple of 8
        String json = "{\"__metadata__\":{\"ss_network_dim\":\"64\"},"
                + "\"lora_unet_blocks_0_self_attn_q.alpha\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                + "\"lora_unet_blocks_0_self_attn_q.lora_down.weight\":{\"dtype\":\"F32\",\"shape\":[64,5120],\"data_offsets\":[4,1310724]},"
                + "\"lora_unet_blocks_0_self_attn_q.lora_up.weight\":{\"dtype\":\"F32\",\"shape\":[5120,64],\"data_offsets\":[1310724,2621444]}}";
        int headerLength = (json.length() + 7) / 8 * 8;
        ByteBuffer all = ByteBuffer.allocate(8 + headerLength + 2_621_444).order(ByteOrder.LITTLE_ENDIAN);
        all.putLong(headerLength).put(json.getBytes(StandardCharsets.US_ASCII));
        while (all.position() < 8 + headerLength) all.put((byte) ' ');
        all.putFloat(64f);
        for (float v : down) all.putFloat(v);
        for (float v : up) all.putFloat(v);
        String expectedLegacy = sha256(all.array(), 0x100000, 0x110000).substring(0, 8);
        String expectedModel = sha256(all.array(), 8 + headerLength, all.capacity());
        try (var st = SafeTensors.open(file)) {
            assertEquals(expectedLegacy, st.metadata().get("sshs_legacy_hash"));
            assertEquals(expectedModel, st.metadata().get("sshs_model_hash"));
        }
    }

    /** The golden lora.* tensors of fp32.safetensors, renamed to bare keys, read back as a musubi LoRA. */
    @Test
    void readsTheGoldenLoraAsMusubiForm(@TempDir Path dir) {
        Path golden = Golden.dir("wan-tiny").resolve("fp32.safetensors");
        Path file = dir.resolve("golden-lora.safetensors");
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        try (var st = SafeTensors.open(golden)) {
            for (String key : st.keys()) {
                if (!key.startsWith("lora.")) continue;
                var info = st.info(key);
                entries.add(SafeTensorsWriter.Entry.ofBytes(key.substring(5), info.dtype(), info.shape(),
                        st.data(key).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)));
            }
            SafeTensorsWriter.write(file, entries, Map.of());
            var lora = LoraFile.read(file);
            assertEquals(LoraFormat.MUSUBI, lora.format());
            assertEquals(DType.F32, lora.dtype());
            assertEquals(20, lora.modules().size(), "10 Linears × 2 blocks");
            for (var w : lora.modules()) {
                assertEquals(4, w.rank());
                assertEquals(2f, w.alpha(), 0f);
                assertArrayEquals(st.floats("lora." + w.name() + ".lora_down.weight"), w.down());
                assertArrayEquals(st.floats("lora." + w.name() + ".lora_up.weight"), w.up());
                boolean isFfn0 = w.name().endsWith("ffn_0"), isFfn2 = w.name().endsWith("ffn_2");
                assertEquals(isFfn2 ? 512 : 256, w.inFeatures(), w.name());
                assertEquals(isFfn0 ? 512 : 256, w.outFeatures(), w.name());
            }
        }
    }

    @Test
    void badFilesEndInOneLine(@TempDir Path dir) {
        Path unknown = dir.resolve("unknown.safetensors");
        SafeTensorsWriter.write(unknown, List.of(
                SafeTensorsWriter.Entry.ofFloats("lora_unet_x.lora_down.weight", DType.F32, Shape.of(1, 2), new float[2]),
                SafeTensorsWriter.Entry.ofFloats("lora_unet_x.hada_w1_a", DType.F32, Shape.of(2), new float[2])), Map.of());
        var e = assertThrows(IllegalArgumentException.class, () -> LoraFile.read(unknown));
        assertEquals(unknown + ": LoRA file has key 'lora_unet_x.hada_w1_a', which is not part of a musubi"
                + " (….lora_down.weight/lora_up.weight/alpha) LoRA; expected only LoRA keys of one layout."
                + " hint: LoHa/LoKr and mixed files are not supported", e.getMessage());

        Path shapes = dir.resolve("shapes.safetensors");
        SafeTensorsWriter.write(shapes, List.of(
                SafeTensorsWriter.Entry.ofFloats("m.lora_down.weight", DType.F32, Shape.of(4, 8), new float[32]),
                SafeTensorsWriter.Entry.ofFloats("m.lora_up.weight", DType.F32, Shape.of(8, 2), new float[16]),
                SafeTensorsWriter.Entry.ofFloats("m.alpha", DType.F32, Shape.of(), new float[1])), Map.of());
        e = assertThrows(IllegalArgumentException.class, () -> LoraFile.read(shapes));
        assertEquals(shapes + ": LoRA file module m has down (4,8) and up (8,2); expected down (rank, in) and up"
                + " (out, rank) with the same rank", e.getMessage());

        Path noAlpha = dir.resolve("noalpha.safetensors");
        SafeTensorsWriter.write(noAlpha, List.of(
                SafeTensorsWriter.Entry.ofFloats("m.lora_down.weight", DType.F32, Shape.of(2, 8), new float[16]),
                SafeTensorsWriter.Entry.ofFloats("m.lora_up.weight", DType.F32, Shape.of(8, 2), new float[16])), Map.of());
        e = assertThrows(IllegalArgumentException.class, () -> LoraFile.read(noAlpha));
        assertTrue(e.getMessage().startsWith(noAlpha + ": LoRA file module m has no alpha; expected 'm.alpha'"), e.getMessage());

        Path intAlpha = dir.resolve("intalpha.safetensors"); // convert_lora.py --target default writes torch.tensor(rank)
        SafeTensorsWriter.write(intAlpha, List.of(
                SafeTensorsWriter.Entry.ofFloats("m.lora_down.weight", DType.F32, Shape.of(2, 8), new float[16]),
                SafeTensorsWriter.Entry.ofFloats("m.lora_up.weight", DType.F32, Shape.of(8, 2), new float[16]),
                SafeTensorsWriter.Entry.ofBytes("m.alpha", DType.I64, Shape.of(), new byte[] {2, 0, 0, 0, 0, 0, 0, 0})), Map.of());
        assertEquals(2f, LoraFile.read(intAlpha).modules().getFirst().alpha(), 0f);

        var e2 = assertThrows(IllegalArgumentException.class, () -> SavePrecision.fromFlag("fp8"));
        assertEquals("--save_precision: unsupported value; got 'fp8', expected one of float, fp32, fp16, bf16", e2.getMessage());
    }

    private static String sha256(byte[] bytes, int from, int to) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(bytes, from, Math.max(0, Math.min(to, bytes.length) - from));
            return HexFormat.of().formatHex(md.digest());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
