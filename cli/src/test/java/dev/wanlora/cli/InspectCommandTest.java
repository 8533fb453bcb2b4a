package dev.wanlora.cli;

import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.io.SafeTensorsWriter.Entry;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static dev.wanlora.cli.CommandRun.run;
import static org.junit.jupiter.api.Assertions.*;

/** {@code wanlora inspect} output for weights, caches and LoRA files, and the one-line error handling in Main. */
class InspectCommandTest {

    @TempDir
    Path tmp;

    /** inspect names what a DiT file is: the golden tiny model, and a ComfyUI scaled fp8 file of tiny shapes. */
    @Test
    void namesTheModelTaskDtypeAndQuantization() throws Exception {
        CommandRun r = run("inspect", Golden.dir("wan-tiny").resolve("model.safetensors").toString(), "--limit", "0");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("  model:        Wan2.1 T2V (non-standard shapes), 2 blocks, dim 256, ffn_dim 512\n"), r.out());
        assertTrue(r.out().contains("  dtype:        block Linear weights BF16; other tensors BF16 49\n"), r.out());
        assertTrue(r.out().contains("  quantization: none\n"), r.out());
        assertTrue(r.out().contains("  keys:         bare (official layout)\n"), r.out());

        Path scaled = tmp.resolve("tiny_fp8_scaled.safetensors");
        dev.wanlora.cli.fixture.RealSizeFixtureAccess.write(new dev.wanlora.models.wan.WanDitConfig(256, 512, 2, 3, 16, 16,
                4096, 256, dev.wanlora.models.wan.WanDitConfig.TEXT_LEN, 1e-6f, dev.wanlora.models.wan.WanDitConfig.PATCH_1_2_2),
                "fp8_scaled", scaled);
        r = run("inspect", scaled.toString(), "--limit", "0");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("  model:        Wan2.1 T2V (non-standard shapes), 3 blocks, dim 256, ffn_dim 512\n"), r.out());
        assertTrue(r.out().contains("  task:         none of musubi's (t2v-14B, t2v-1.3B)\n"), r.out());
        assertTrue(r.out().contains("  dtype:        block Linear weights F8_E4M3; other tensors F16 "), r.out());
        assertTrue(r.out().contains("  quantization: scaled_fp8 (scale_weight), 30 scaled weights\n"), r.out());
        assertTrue(r.out().contains("  keys:         prefixed model.diffusion_model. (ComfyUI layout)\n"), r.out());
        assertTrue(r.out().contains("train with --fp8_base"), r.out());
    }

    @Test
    void listsTheGoldenDit() {
        CommandRun r = run("inspect", Golden.dir("wan-tiny").resolve("model.safetensors").toString(), "--limit", "2");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("tensors:  69\n"), r.out());
        assertTrue(r.out().contains("dtypes:   BF16 69\n"), r.out());
        assertTrue(r.out().contains("data:     6,518,400 bytes (6.2 MiB)\n"), r.out());
        assertTrue(r.out().contains("  blocks.0.cross_attn.k.weight  BF16    (256,256)\n"), r.out());
        assertTrue(r.out().contains("  ... 67 more (--limit 69 lists all)\n"), r.out());
        assertTrue(r.out().contains("(159 chars)\n"), "long metadata is cut: " + r.out());
        assertFalse(r.out().contains("LoRA:"));
    }

    @Test
    void recognisesTheGoldenVae() {
        CommandRun r = run("inspect", Golden.dir("vae-tiny").resolve("vae.safetensors").toString(), "--limit", "0");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("tensors:  194\n"), r.out());
        assertTrue(r.out().contains("Wan 2.1 VAE:\n  base dim:   7, latent channels 16\n"), r.out());
        // README: 713,137 parameters; conv1 (32·32 + 32) + conv2 (16·16 + 16) = 1,328.
        assertTrue(r.out().contains("  parameters: 713,137 (encoder "), r.out());
        assertTrue(r.out().contains(", conv1/conv2 1,328)\n"), r.out());
    }

    @Test
    void describesAMusubiLora() {
        // Two modules of rank 4, in 8, out 6, alpha 2: scale 0.5.
        List<Entry> entries = new ArrayList<>();
        for (String m : List.of("lora_unet_blocks_0_self_attn_q", "lora_unet_blocks_0_ffn_2")) {
            entries.add(Entry.ofFloats(m + ".lora_down.weight", DType.F32, Shape.of(4, 8), new float[32]));
            entries.add(Entry.ofFloats(m + ".lora_up.weight", DType.F32, Shape.of(6, 4), new float[24]));
            entries.add(Entry.ofFloats(m + ".alpha", DType.F32, Shape.of(), new float[] {2}));
        }
        Path f = tmp.resolve("ghibli-000001.safetensors");
        SafeTensorsWriter.write(f, entries, Map.of("ss_network_module", "networks.lora_wan", "ss_network_dim", "4"));
        CommandRun r = run("inspect", f.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("""
                LoRA:
                  format:  musubi (lora_unet_*.lora_down / lora_up / alpha)
                  modules: 2
                  rank:    4
                  alpha:   2, scale alpha/rank = 0.5
                first 6 tensors:
                """), r.out());
        assertTrue(r.out().contains("  ss_network_module = networks.lora_wan\n"), r.out());
    }

    @Test
    void describesAPeftLoraAndReportsProblems() {
        Path f = tmp.resolve("peft.safetensors");
        SafeTensorsWriter.write(f, List.of(
                Entry.ofFloats("diffusion_model.blocks.0.self_attn.q.lora_A.weight", DType.BF16, Shape.of(8, 16), new float[128]),
                Entry.ofFloats("diffusion_model.blocks.0.self_attn.q.lora_B.weight", DType.BF16, Shape.of(16, 8), new float[128]),
                Entry.ofFloats("diffusion_model.blocks.0.self_attn.k.lora_A.weight", DType.BF16, Shape.of(8, 16), new float[128]),
                Entry.ofFloats("diffusion_model.blocks.0.self_attn.k.lora_B.weight", DType.BF16, Shape.of(16, 4), new float[64])),
                Map.of());
        CommandRun r = run("inspect", f.toString(), "--limit", "0");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("""
                LoRA:
                  format:  PEFT (*.lora_A / lora_B)
                  modules: 2
                  rank:    8
                  alpha:   none (scale 1: converters fold alpha/rank into A and B)
                  problem: diffusion_model.blocks.0.self_attn.k.lora_B.weight has shape (16,4), expected (out, 8)
                """), r.out());
        assertFalse(r.out().contains("first "));
    }

    @Test
    void describesMusubiCaches() {
        // A 9-frame 64x48 clip starting at frame 0: latent (16, 3, 6, 8) bf16, as wan_cache_latents.py names it.
        Path latent = tmp.resolve("my_clip_00000-009_0064x0048_wan.safetensors");
        SafeTensorsWriter.write(latent, List.of(Entry.ofFloats("latents_3x6x8_bfloat16", DType.BF16, Shape.of(16, 3, 6, 8),
                new float[16 * 3 * 6 * 8])), Map.of("architecture", "wan", "width", "64", "height", "48", "format_version", "1.0.1"));
        CommandRun r = run("inspect", latent.toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("""
                musubi latent cache:
                  item:          my_clip
                  frames:        start 0, count 9
                  original size: 64x48 (WxH)
                  latent:        latents_3x6x8_bfloat16 BF16 (16,3,6,8) = 3 latent frames (9 video frames), 6x8 latent HxW (64x48 pixels WxH)
                """), r.out());

        Path image = tmp.resolve("img_001_1920x1080_wan.safetensors");
        SafeTensorsWriter.write(image, List.of(Entry.ofFloats("latents_1x2x2_bfloat16", DType.BF16, Shape.of(16, 1, 2, 2),
                new float[64])), Map.of());
        r = run("inspect", image.toString());
        assertTrue(r.out().contains("  item:          img_001\n  original size: 1920x1080 (WxH)\n"), r.out());

        Path text = tmp.resolve("my_clip_wan_te.safetensors");
        SafeTensorsWriter.write(text, List.of(Entry.ofFloats("varlen_t5_bfloat16", DType.BF16, Shape.of(13, 4096),
                new float[13 * 4096])), Map.of("caption1", "a cat\non a mat"));
        r = run("inspect", text.toString());
        assertTrue(r.out().contains("""
                musubi text-encoder cache:
                  item:          my_clip
                  text:          varlen_t5_bfloat16 BF16 (13,4096) = 13 tokens (incl. EOS) of width 4096
                """), r.out());
        assertTrue(r.out().contains("  caption1 = a cat\\non a mat\n"), r.out());
    }

    @Test
    void badFileIsOneLineWithExitCode2() throws IOException {
        // binary (a NUL byte): text files get their own message (textFilesSayWhatTheyAreAndWhichCommandReadsThem)
        Path f = Files.write(tmp.resolve("notes.safetensors"), new byte[] {5, 0, 0, 0, 0});
        CommandRun r = run("inspect", f.toString());
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals("wanlora inspect: " + f + ": 5 bytes, shorter than the 8-byte header length field. hint: the file is"
                + " truncated or not safetensors; download or write it again\n", r.err());
        assertEquals("", r.out());

        CommandRun debug = run("inspect", f.toString(), "--debug");
        assertEquals(Main.USER_ERROR, debug.exitCode());
        assertTrue(debug.err().contains("\tat dev.wanlora.engine.io.SafeTensors"), debug.err());
    }

    /** Issue 14: {@code inspect dataset.toml} said "header length 7809649008806553435 is larger than the file". */
    @Test
    void textFilesSayWhatTheyAreAndWhichCommandReadsThem() throws IOException {
        Path dataset = Files.writeString(tmp.resolve("dataset.toml"), "[general]\nresolution = [960, 544]\n\n[[datasets]]\n"
                + "image_directory = \"imgs\"\n");
        Path config = Files.writeString(tmp.resolve("ghibli-config.toml"), "dit = \"a.safetensors\"\nnetwork_dim = 32\n");
        Path json = Files.writeString(tmp.resolve("meta.json"), "{\"a\": 1}");
        Path prompts = Files.writeString(tmp.resolve("prompts.txt"), "a cat --w 832 --h 480\n");
        Map<Path, String> expected = Map.of(
                dataset, "a musubi dataset config (TOML), not safetensors; read it with wanlora dataset --dataset_config "
                        + dataset + " (items, buckets, batches) or pass it to wanlora train --dataset_config",
                config, "a wanlora train configuration (TOML), not safetensors; run it with wanlora train --config_file " + config,
                json, "a JSON text file, not safetensors; inspect reads .safetensors files and a sharded checkpoint's"
                        + " index.json (one with a weight_map)",
                prompts, "a text file, not safetensors; sample prompts go to wanlora train --sample_prompts, captions sit"
                        + " beside the cached items; inspect reads .safetensors files");
        expected.forEach((file, line) -> {
            CommandRun r = run("inspect", file.toString());
            assertEquals(Main.USER_ERROR, r.exitCode(), r.err());
            assertEquals("wanlora inspect: " + file + ": " + line + "\n", r.err());
        });
    }

    /** Issue 14: `wanlora --help` lists each command's first description line, which cut train's mid-sentence. */
    @Test
    void helpListsWholeSentences() {
        Main.commandLine().getSubcommands().forEach((name, c) -> {
            String first = c.getCommandSpec().usageMessage().description()[0];
            assertTrue(first.endsWith("."), name + ": " + first);
        });
        assertTrue(run("--help").out().contains("Train a LoRA for the Wan2.1 T2V DiT on musubi caches, with"));
    }

    @Test
    void unknownFlagAndCommandNameTheClosestOne() {
        CommandRun r = run("inspect", "x.safetensors", "--limt", "3");
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals("wanlora inspect: unknown flag --limt; did you mean --limit? (see wanlora inspect --help)\n", r.err());

        r = run("inspct", "x.safetensors");
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertTrue(r.err().startsWith("wanlora: unknown command 'inspct'; did you mean inspect?"),
                r.err());
        assertEquals(1, r.err().lines().count());

        r = run("inspect", "x.safetensors", "--limit", "-1");
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals("wanlora inspect: --limit -1: expected a count >= 0\n", r.err());
    }
}
