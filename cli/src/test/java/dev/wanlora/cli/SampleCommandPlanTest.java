package dev.wanlora.cli;

import dev.wanlora.pipeline.sample.RealSampleModelsTest;
import dev.wanlora.pipeline.sample.SampleModels;
import dev.wanlora.pipeline.sample.SamplePrompt;
import dev.wanlora.pipeline.sample.SamplePromptFile;
import dev.wanlora.pipeline.sample.SamplingPlanner;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraFormat;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.lora.SavePrecision;
import dev.wanlora.models.sampling.DenoisingLoop;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;

import static dev.wanlora.cli.CommandRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code wanlora sample}'s memory plan (--max_vram, --blocks_to_swap N|auto, --dry_run, umT5 streaming when the
 * encoder does not fit) and several LoRAs in one run (one file per LoRA and prompt, a captioned grid per prompt,
 * --lora_multiplier), on the CPU with wan-tiny's DiT.
 */
class SampleCommandPlanTest {

    @TempDir
    Path tmp;

    private static final Path DIT = Golden.dir("wan-tiny").resolve("model.safetensors");

    @Test
    void dryRunPrintsThePhasesAndLoadsNothing() {
        CommandRun r = run("sample", "--dit", DIT.toString(), "--t5", RealSampleModelsTest.widenedT5(tmp).toString(),
                "--t5_tokenizer", Golden.dir("sampling-tiny").resolve("tokenizer").toString(),
                "--vae", Golden.dir("vae-tiny").resolve("vae.safetensors").toString(),
                "--prompt", "a fox --w 64 --h 48 --f 5", "--output_dir", tmp.toString(), "--dry_run", "--max_vram", "24G",
                "--blocks_to_swap", "auto");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        for (String s : List.of("memory plan (sampling, --blocks_to_swap 0 chosen by auto, CFG as one batch-2 forward;"
                        + " budget 24.00 GiB (--max_vram 24G)):",
                "batch 2 at 2 latent frames × 6 × 8 (24 tokens); CFG runs cond and uncond in one batch-2 forward",
                " phase 1, encode prompts (before the DiT loads):", "umT5 weights resident", " phase 2, denoise:",
                "forward-only activations", " phase 3, decode:", "VAE decode buffers", "CUDA runtime", "fits",
                "dry run: nothing was loaded")) {
            assertTrue(r.out().contains(s), s + " in\n" + r.out());
        }
        assertFalse(r.out().contains("backend:"), r.out());
        assertTrue(Files.notExists(tmp.resolve("sample")));
    }

    @Test
    void overBudgetStopsWithOneLine() {
        CommandRun r = run("sample", "--dit", DIT.toString(), "--stand_in_models", "--prompt", "a fox --w 64 --h 48 --f 5",
                "--output_dir", tmp.toString(), "--dry_run", "--max_vram", "100M");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        // the estimated CUDA runtime (768 MiB) alone exceeds 100 MiB
        assertTrue(r.err().startsWith("wanlora sample: memory plan: encoding the prompts needs "), r.err());
        assertTrue(r.err().contains("over the budget of 100.0 MiB (--max_vram 100M)"), r.err());

        r = run("sample", "--dit", DIT.toString(), "--stand_in_models", "--prompt", "a fox --w 64 --h 48",
                "--output_dir", tmp.toString(), "--blocks_to_swap", "many", "--backend", "cpu");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertTrue(r.err().startsWith("wanlora sample: --blocks_to_swap many: expected a number of blocks or auto"), r.err());
    }

    /**
     * A budget between the encoder's streamed and resident needs (computed from the same plan the command makes, on
     * the CPU: F32): the command streams umT5 layers, says so, and the video is the one the resident encoder makes.
     * The encoder is the widened golden one with its 2 layers repeated to 4, so streaming through 2 slots saves memory.
     */
    @Test
    void umT5StreamsWhenItDoesNotFitWhole() throws Exception {
        Path t5 = RealSampleModelsTest.deepenedT5(RealSampleModelsTest.widenedT5(tmp), tmp.resolve("t5_deep.safetensors"), 2);
        Path tokenizer = Golden.dir("sampling-tiny").resolve("tokenizer");
        Path vae = Golden.dir("vae-tiny").resolve("vae.safetensors");
        String line = "a fox in the snow --w 32 --h 32 --s 2 --d 7 --l 1.0"; // a still (.png: no time stamps in the file), no CFG
        SampleModels models = SampleModels.files(t5, tokenizer, false, vae);
        models.check();
        SamplingMemoryPlan.Settings s;
        try (SafeTensors st = SafeTensors.open(DIT, SafeTensors.DIT_PREFIXES)) {
            WanDitConfig config = WanDitConfig.fromCheckpoint(st);
            DType fileDType = st.info("patch_embedding.weight").dtype();
            ComputePrecision precision = fileDType == DType.F32 ? ComputePrecision.FP32 : ComputePrecision.BF16_MUSUBI;
            SamplePrompt p = SamplePromptFile.fromCommandLine(line);
            s = SamplingPlanner.settings(new SamplingPlanner.Dit(config, precision, WanDitWeights.Quantization.NONE, false,
                    st.info("blocks.0.self_attn.q.weight").dtype(), 2), List.of(p), models, DType.F32, 0, 0, List.of());
        }
        int layers = s.textEncoder().config().numLayers();
        long streamedAll = SamplingMemoryPlan.plan(s, new SamplingMemoryPlan.Choice(0, layers, true,
                DenoisingLoop.CfgMode.TWO_BATCH_1)).peakBytes();
        long resident = SamplingMemoryPlan.encodePlan(s, 0).totalBytes();
        assertTrue(resident > streamedAll, "the widened tiny umT5 (" + resident + " B) is the largest phase ("
                + streamedAll + " B with every layer streamed)\n" + String.join("\n",
                SamplingMemoryPlan.plan(s, new SamplingMemoryPlan.Choice(0, 0, true, DenoisingLoop.CfgMode.TWO_BATCH_1)).format(0)));
        List<String> outs = new ArrayList<>();
        for (String budget : new String[] {streamedAll + "", null}) {
            List<String> args = new ArrayList<>(List.of("sample", "--dit", DIT.toString(), "--t5", t5.toString(),
                    "--t5_tokenizer", tokenizer.toString(), "--vae", vae.toString(), "--prompt", line,
                    "--output_dir", tmp.resolve(budget == null ? "resident" : "streamed").toString(), "--output_name", "r",
                    "--backend", "cpu"));
            if (budget != null) args.addAll(List.of("--max_vram", (Long.parseLong(budget) / 1024.0) + "K"));
            CommandRun r = run(args.toArray(String[]::new));
            assertEquals(0, r.exitCode(), r.out() + r.err());
            outs.add(r.out());
        }
        assertTrue(outs.get(0).contains(", umT5 streams " + layers + " of its layers"), outs.get(0));
        assertTrue(outs.get(0).contains(", " + layers + " streamed) from t5_deep.safetensors"), outs.get(0));
        assertFalse(outs.get(1).contains("umT5 streams"), outs.get(1));
        byte[] streamed = onlyFile(tmp.resolve("streamed/sample")), resident0 = onlyFile(tmp.resolve("resident/sample"));
        assertTrue(java.util.Arrays.equals(streamed, resident0), "the streamed encoder's image equals the resident one's");
    }

    private static byte[] onlyFile(Path dir) throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> files = s.toList();
            assertEquals(1, files.size(), files.toString());
            return Files.readAllBytes(files.getFirst());
        }
    }

    /**
     * Two LoRAs (the second at 0.5 through --lora_multiplier) on two stills: four single files and two grids. Each
     * grid (a PNG: lossless) is the caption row over the two LoRAs' images side by side, pixel for pixel.
     */
    @Test
    void severalLorasMakeOneFileEachAndAGridPerPrompt() throws Exception {
        Path a = randomLora(tmp.resolve("style_a.safetensors"), 1), b = randomLora(tmp.resolve("style_b.safetensors"), 2);
        Path prompts = Files.writeString(tmp.resolve("p.txt"), """
                a fox in the snow --w 64 --h 48 --s 2 --d 7
                a lake --w 32 --h 32 --s 2 --l 1.0
                """);
        CommandRun r = run("sample", "--dit", DIT.toString(), "--stand_in_models", "--prompts", prompts.toString(),
                "--lora", a.toString(), "--lora", b.toString(), "--lora_multiplier", "1.0", "0.5",
                "--output_dir", tmp.toString(), "--output_name", "cmp", "--backend", "cpu");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("(left to right: style_a, style_bx0.5)"), r.out());
        List<Path> files;
        try (Stream<Path> s = Files.list(tmp.resolve("sample"))) {
            files = s.sorted().toList();
        }
        assertEquals(6, files.size(), files.toString());
        for (int prompt = 0; prompt < 2; prompt++) {
            String idx = String.format("_%02d_", prompt);
            Path ga = find(files, "cmp_style_a" + idx), gb = find(files, "cmp_style_bx0.5" + idx), grid = find(files, "cmp_grid" + idx);
            // the prompt without --d got one seed for both LoRAs: the three names end in the same seed
            String seed = seedOf(ga);
            assertEquals(seed, seedOf(gb));
            assertEquals(seed, seedOf(grid));
            BufferedImage ia = ImageIO.read(ga.toFile()), ib = ImageIO.read(gb.toFile()), ig = ImageIO.read(grid.toFile());
            int w = ia.getWidth(), h = ia.getHeight(), row = 12; // scale 1: 11 font pixels, rounded up to even
            assertEquals(2 * w, ig.getWidth());
            assertEquals(row + h, ig.getHeight());
            boolean differ = false, caption = false;
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    assertEquals(ia.getRGB(x, y), ig.getRGB(x, row + y), "left column at " + x + "," + y);
                    assertEquals(ib.getRGB(x, y), ig.getRGB(w + x, row + y), "right column at " + x + "," + y);
                    differ |= ia.getRGB(x, y) != ib.getRGB(x, y);
                }
            }
            for (int y = 0; y < row; y++) for (int x = 0; x < 2 * w; x++) caption |= (ig.getRGB(x, y) & 0xffffff) == 0xffffff;
            assertTrue(differ, "the two LoRAs make different images");
            assertTrue(caption, "the caption row has text");
        }

        r = run("sample", "--dit", DIT.toString(), "--stand_in_models", "--prompts", prompts.toString(),
                "--lora", a + ":0.5", "--lora_multiplier", "0.5", "--output_dir", tmp.toString(), "--backend", "cpu");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertTrue(r.err().startsWith("wanlora sample: --lora " + a + ":0.5 and --lora_multiplier both weight this LoRA"), r.err());
        r = run("sample", "--dit", DIT.toString(), "--stand_in_models", "--prompts", prompts.toString(),
                "--lora", a.toString(), "--lora", b.toString(), "--lora_multiplier", "1", "2", "3",
                "--output_dir", tmp.toString(), "--backend", "cpu");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertTrue(r.err().startsWith("wanlora sample: --lora_multiplier: 3 weights for 2 --lora files"), r.err());
    }

    private static Path find(List<Path> files, String prefix) {
        return files.stream().filter(f -> f.getFileName().toString().startsWith(prefix)).findFirst()
                .orElseThrow(() -> new AssertionError(prefix + " not in " + files));
    }

    /** The seed of a still's name {@code …_{seed}_000.png}. */
    private static String seedOf(Path png) {
        String[] p = png.getFileName().toString().split("_");
        return p[p.length - 2];
    }

    /** A rank-2 LoRA for wan-tiny with random down and up (up is zero at musubi's init, which would change nothing). */
    private static Path randomLora(Path file, long seed) {
        CpuBackend cpu = new CpuBackend();
        try (SafeTensors st = SafeTensors.open(DIT, SafeTensors.DIT_PREFIXES);
             LoraNetwork init = LoraNetwork.create(cpu, WanDitConfig.fromCheckpoint(st), 2, 2, seed)) {
            SplittableRandom r = new SplittableRandom(seed);
            List<LoraModuleWeights> modules = new ArrayList<>();
            for (LoraModuleWeights m : init.toWeights()) {
                float[] up = new float[m.up().length];
                for (int i = 0; i < up.length; i++) up[i] = (float) (r.nextDouble() - 0.5);
                modules.add(new LoraModuleWeights(m.name(), m.rank(), m.inFeatures(), m.outFeatures(), m.alpha(), m.down(), up));
            }
            LoraFile.write(file, modules, SavePrecision.FP32, LoraFormat.MUSUBI, Map.of());
        }
        return file;
    }
}
