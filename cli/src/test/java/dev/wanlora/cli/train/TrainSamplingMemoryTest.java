package dev.wanlora.cli.train;

import dev.wanlora.cli.CommandRun;
import dev.wanlora.cli.Main;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanMemoryPlan;
import dev.wanlora.pipeline.sample.RealSampleModelsTest;
import dev.wanlora.pipeline.sample.SampleModels;
import dev.wanlora.pipeline.sample.SamplePromptFile;
import dev.wanlora.pipeline.sample.SamplingPlanner;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Training-time samples under the run's memory budget (issue 10), on the CPU with wan-tiny, the golden tiny umT5
 * widened to 4096-wide text and its 2 layers repeated to 8 (so streaming through 2 slots saves memory), and the golden
 * tiny VAE, sampling after the one epoch with --sample_every_n_epochs 1: under a --max_vram that the resident encoder
 * exceeds, umT5 streams its layers and the sample is the unstreamed run's, bit for bit; under one that even the fully
 * streamed encoder exceeds, the run stops before training with one line naming the flags. The encode plan's numbers
 * come from the same plan the run makes (as a GPU holds it: bf16).
 */
@RequiresGolden({"wan-tiny", "sampling-tiny", "vae-tiny"})
class TrainSamplingMemoryTest {

    @TempDir
    static Path dir;
    static Path dataset, t5, prompts;
    static final Path TOKENIZER = Golden.dir("sampling-tiny").resolve("tokenizer");
    static final Path VAE = Golden.dir("vae-tiny").resolve("vae.safetensors");
    static final Path DIT = Golden.dir("wan-tiny").resolve("model.safetensors");
    static final String PROMPT = "a fox in the snow --w 32 --h 32 --s 2 --d 7"; // a still (.png) with CFG 5
    /** The prompt encoding's plan with every umT5 layer resident and with all 8 streamed. */
    static long resident, allStreamed;

    @BeforeAll
    static void data() throws IOException {
        dataset = OneImageDataset.write(dir, "dataset.toml");
        t5 = RealSampleModelsTest.deepenedT5(RealSampleModelsTest.widenedT5(Files.createDirectories(dir.resolve("t5"))),
                dir.resolve("t5/t5_deep.safetensors"), 4);
        prompts = Files.writeString(dir.resolve("prompts.txt"), PROMPT + "\n");
        SampleModels models = SampleModels.files(t5, TOKENIZER, false, VAE);
        models.check();
        WanDitConfig config;
        try (SafeTensors checkpoint = SafeTensors.open(DIT, SafeTensors.DIT_PREFIXES)) {
            config = WanDitConfig.fromCheckpoint(checkpoint);
        }
        SamplingMemoryPlan.Settings s = SamplingPlanner.settings(new SamplingPlanner.Dit(config, ComputePrecision.BF16_MUSUBI,
                WanDitWeights.Quantization.NONE, true, DType.BF16, 2), List.of(SamplePromptFile.fromCommandLine(PROMPT)),
                models, DType.BF16, 0, 4, List.of());
        assertEquals(8, s.textEncoder().config().numLayers());
        resident = SamplingMemoryPlan.encodePlan(s, 0).totalBytes();
        allStreamed = SamplingMemoryPlan.encodePlan(s, 8).totalBytes();
        assertTrue(allStreamed < resident, allStreamed + " " + resident);
    }

    private static CommandRun train(String output, String... more) {
        List<String> args = new ArrayList<>(List.of(("train --dit " + DIT + " --dataset_config " + dataset
                + " --mixed_precision bf16 --learning_rate 1e-2 --network_dim 4 --network_alpha 4 --max_train_epochs 1"
                + " --seed 7 --backend cpu --output_name s --output_dir " + dir.resolve(output) + " --sample_prompts "
                + prompts + " --sample_every_n_epochs 1 --t5 " + t5 + " --t5_tokenizer " + TOKENIZER + " --vae " + VAE)
                .split(" ")));
        args.addAll(Arrays.asList(more));
        return CommandRun.run(args.toArray(String[]::new));
    }

    /** --max_vram in KiB: at least {@code bytes}. */
    private static String kib(long bytes) {
        return Math.ceilDiv(bytes, 1024) + "K";
    }

    @Test
    void umT5StreamsUnderTheBudgetAndTheSampleIsTheResidentRunsBitForBit() throws IOException {
        CommandRun plain = train("resident");
        assertEquals(0, plain.exitCode(), plain.out() + plain.err());
        assertTrue(plain.out().contains("memory plan (sampling's prompt encoding, before the DiT loads):"), plain.out());
        assertTrue(plain.out().contains("encoded by umT5 (8 layers) from t5_deep.safetensors"), plain.out());
        assertTrue(plain.out().contains("sampling: cross-attention k/v of each sample's texts ("), plain.out());
        assertTrue(plain.out().contains(") kept over its steps"), plain.out());
        assertTrue(plain.out().contains("sampling: CFG runs cond and uncond in one batch-2 forward\n"), plain.out());
        assertTrue(plain.out().contains(" 2/2 steps, ") && plain.out().contains(" s/step (CFG batch 2), decode "), plain.out());
        // the training plan shows the sampling phase
        assertTrue(plain.out().lines().anyMatch(l -> l.startsWith("  sampling ")), plain.out());

        // fits every layer streamed and not the resident encoder: the smallest fitting count of streamed layers
        String budget = kib(allStreamed);
        assertTrue(Math.ceilDiv(allStreamed, 1024) * 1024 < resident);
        CommandRun streamed = train("streamed", "--max_vram", budget);
        assertEquals(0, streamed.exitCode(), streamed.out() + streamed.err());
        String line = streamed.out().lines().filter(l -> l.startsWith("memory plan (sampling's prompt encoding")).findFirst()
                .orElseThrow();
        assertTrue(line.matches("memory plan \\(sampling's prompt encoding, before the DiT loads; umT5 streams [1-8] of"
                + " its 8 layers to fit the budget\\):"), line);
        assertTrue(streamed.out().contains(" streamed) from t5_deep.safetensors"), streamed.out());
        System.out.println(streamed.out().lines().filter(l -> l.startsWith("memory plan") || l.startsWith("  ")
                || l.startsWith("sampling")).reduce("", (a, b) -> a + b + "\n"));

        byte[] a = onlyFile(dir.resolve("resident/sample")), b = onlyFile(dir.resolve("streamed/sample"));
        assertArrayEquals(a, b, "the streamed encoder's sample equals the resident one's");
        try (SafeTensors x = SafeTensors.open(dir.resolve("resident/s.safetensors"));
             SafeTensors y = SafeTensors.open(dir.resolve("streamed/s.safetensors"))) {
            for (String key : x.keys()) assertArrayEquals(x.floats(key), y.floats(key), key); // the same LoRA
        }
    }

    @Test
    void aBudgetNoStreamingFitsStopsBeforeTrainingWithOneLine() throws IOException {
        String budget = kib(allStreamed - 64 * 1024);
        CommandRun r = train("refused", "--max_vram", budget);
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertEquals("wanlora train: memory plan: encoding the sample prompts needs " + MemoryPlan.formatBytes(allStreamed)
                + " even with every umT5 layer streamed, over the budget of " + MemoryPlan.formatBytes(
                Math.ceilDiv(allStreamed - 64 * 1024, 1024) * 1024) + " (--max_vram " + budget + "); add --fp8_t5 or raise"
                + " --max_vram", r.err().strip());
        assertFalse(r.out().lines().anyMatch(l -> l.startsWith("step ")), r.out());
        assertFalse(Files.exists(dir.resolve("refused/sample")));
    }

    /** --dry_run plans the samples as the run does (the training plan's item, the prompt encoding) and writes nothing. */
    @Test
    void aDryRunPlansTheSamples() {
        // a dry run touches no GPU and counts the CUDA runtime it would find (estimated) and the allocation margin in
        // both plans: the budget that made the real CPU run stream umT5 does so here with them added
        long gpu = WanMemoryPlan.ESTIMATED_CUDA_RUNTIME_BYTES + WanMemoryPlan.ALLOCATION_MARGIN_BYTES;
        CommandRun fits = train("dry", "--dry_run", "--max_vram", kib(gpu + allStreamed));
        assertEquals(0, fits.exitCode(), fits.out() + fits.err());
        assertTrue(fits.out().lines().anyMatch(l -> l.startsWith("  sampling ")), fits.out());
        assertTrue(fits.out().lines().anyMatch(l -> l.matches("memory plan \\(sampling's prompt encoding, before the DiT"
                + " loads; umT5 streams [1-8] of its 8 layers to fit the budget\\):")), fits.out());
        assertTrue(fits.out().contains("dry run: the plan fits; nothing was loaded"), fits.out());
        assertFalse(fits.out().contains("encoded by umT5"), "a dry run encodes nothing: " + fits.out());
        assertFalse(Files.exists(dir.resolve("dry")), "a dry run writes nothing");

        CommandRun refused = train("dry-refused", "--dry_run", "--max_vram", kib(gpu + allStreamed - 64 * 1024));
        assertEquals(Main.USER_ERROR, refused.exitCode(), refused.out() + refused.err());
        assertTrue(refused.err().strip().startsWith("wanlora train: memory plan: encoding the sample prompts needs "),
                refused.err());
        assertEquals(1, refused.err().strip().lines().count(), refused.err());
    }

    /** A training plan that fits only without its samples is refused naming their share and what lowers it. */
    @Test
    void aPlanOverTheBudgetNamesTheSamplesShare() throws IOException {
        Path big = Files.writeString(dir.resolve("big_prompts.txt"), "a fox in the snow --w 256 --h 256 --f 17 --s 2 --d 7\n");
        CommandRun r = train("big", "--sample_prompts", big.toString(), "--max_vram", "64M");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        String sampling = r.out().lines().filter(l -> l.startsWith("  sampling ")).findFirst().orElseThrow();
        String bytes = sampling.substring("  sampling".length()).strip().split("  ")[0];
        assertTrue(r.err().strip().startsWith("wanlora train: memory plan: "), r.err());
        assertTrue(r.err().contains(" exceeds the budget of 64.0 MiB (--max_vram 64M) (of which " + bytes + " for the samples:"
                + " smaller sizes in --sample_prompts (--w, --h, --f) need less);"), r.err() + "\n" + sampling);
        assertEquals(1, r.err().strip().lines().count(), r.err());
    }

    private static byte[] onlyFile(Path folder) throws IOException {
        try (Stream<Path> s = Files.list(folder)) {
            List<Path> files = s.toList();
            assertEquals(1, files.size(), files.toString());
            return Files.readAllBytes(files.getFirst());
        }
    }
}
