package dev.wanlora.cli.train;

import dev.wanlora.cli.CommandRun;
import dev.wanlora.cli.Main;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code wanlora train --dry_run}: the memory plan of a command line and the exit code (0 fits, 2 does not, with the
 * smallest change that fits), with --task standing in for a 14B checkpoint that is not here, the dataset TOML's
 * largest bucket standing in for absent caches, --max_vram keeping the GPU untouched, and the host plan against
 * --max_host_ram.
 */
class TrainDryRunTest {
    @TempDir
    static Path dir;
    static Path toml;

    @BeforeAll
    static void data() throws IOException {
        // issue 12's dataset: 832×480, clips of 1, 45 and 81 frames, bucketing on; no caches on this machine
        toml = Files.writeString(dir.resolve("video.toml"), """
                [general]
                resolution = [832, 480]
                batch_size = 1
                enable_bucket = true

                [[datasets]]
                video_directory = "%s"
                cache_directory = "%s"
                target_frames = [1, 45, 81]
                frame_extraction = "head"
                """.formatted(dir.resolve("videos"), dir.resolve("no-cache")));
    }

    private static CommandRun dryRun(String... more) {
        List<String> args = new ArrayList<>(List.of(("train --task t2v-14B --dataset_config " + toml + " --fp8_base"
                + " --fp8_scaled --gradient_checkpointing --mixed_precision bf16 --optimizer_type adamw8bit --network_dim 32"
                + " --network_alpha 32 --dry_run --max_vram 24G --max_host_ram 64G").split(" ")));
        args.addAll(Arrays.asList(more));
        return CommandRun.run(args.toArray(String[]::new));
    }

    @Test
    void autoFits832x480x81In24GiBWithOffloadWithoutTheCheckpointOrCaches() {
        CommandRun r = dryRun("--blocks_to_swap", "auto");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("caches not readable"), r.out());
        assertTrue(r.out().contains("model: --task t2v-14B, 40 blocks, dim 5120 (shapes from the task's config; a bf16"
                + " checkpoint assumed)"), r.out());
        assertTrue(r.out().contains("chosen by auto, rank 32, largest input 1×21×60×104 latent = 32760 tokens;"), r.out());
        assertTrue(r.out().contains("; activation offload: saved inputs of "), r.out());
        assertTrue(r.out().contains("  CUDA runtime "), r.out());
        assertTrue(r.out().contains("  allocation margin "), r.out());
        assertTrue(r.out().contains(", fits\n") || r.out().contains(", fits\r\n"), r.out());
        assertTrue(r.out().contains("host memory plan (besides the JVM; budget 64.00 GiB (--max_host_ram 64G)):"), r.out());
        assertTrue(r.out().contains("  offloaded activations (pinned) "), r.out());
        assertTrue(r.out().strip().endsWith("dry run: the plan fits; nothing was loaded"), r.out());
    }

    @Test
    void aFixedSwapCountThatDoesNotFitExitsTwoNamingTheChangeThatFits() {
        CommandRun r = dryRun("--blocks_to_swap", "0");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains(", DOES NOT FIT"), r.out());
        String err = r.err().strip();
        assertTrue(err.startsWith("wanlora train: memory plan: ") && err.contains(" with --blocks_to_swap 0 exceeds the budget"
                + " of 24.00 GiB (--max_vram 24G); with activation offload it fits: --blocks_to_swap auto ("), err);
        assertEquals(1, err.lines().count(), err);
    }

    @Test
    void musubisCpuOffloadFlagOffloadsEveryInputAndTheHostBudgetIsChecked() {
        CommandRun fits = dryRun("--blocks_to_swap", "30", "--gradient_checkpointing_cpu_offload");
        assertEquals(0, fits.exitCode(), fits.out() + fits.err());
        assertTrue(fits.out().contains("activation offload: saved inputs of 41 blocks in host memory"
                + " (--gradient_checkpointing_cpu_offload)"), fits.out());
        CommandRun host = dryRun("--blocks_to_swap", "30", "--gradient_checkpointing_cpu_offload", "--max_host_ram", "8G");
        assertEquals(Main.USER_ERROR, host.exitCode(), host.out() + host.err());
        assertTrue(host.err().strip().startsWith("wanlora train: host memory plan: "), host.err());
        assertTrue(host.err().strip().endsWith(" exceeds 8.00 GiB (--max_host_ram 8G); swap fewer blocks, drop"
                + " --gradient_checkpointing_cpu_offload, or free host memory"), host.err());
    }

    @Test
    void needsTheCheckpointOrATask() {
        CommandRun r = CommandRun.run("train", "--dataset_config", toml.toString(), "--dry_run", "--max_vram", "24G");
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals("wanlora train: --dit is required: the Wan2.1 DiT checkpoint, e.g. --dit"
                + " wan2.1_t2v_14B_bf16.safetensors (or --task t2v-14B|t2v-1.3B to plan without it)", r.err().strip());
    }

    @Test
    void withTheCheckpointAndCachesHerePlansTheirShapesAndWritesNothing() throws IOException {
        WanDitConfig fiveBlocks = new WanDitConfig(256, 512, 2, 5, 16, 16, 4096, 256, 512, 1e-6f, WanDitConfig.PATCH_1_2_2);
        Path dit = dir.resolve("wan-5-blocks.safetensors");
        SafeTensorsWriter.write(dit, WanDitWeights.randomCheckpoint(fiveBlocks, 5), Map.of());
        Path dataset = OneImageDataset.write(dir, "images.toml");
        Path out = dir.resolve("out");
        CommandRun r = CommandRun.run("train", "--dit", dit.toString(), "--dataset_config", dataset.toString(),
                "--gradient_checkpointing", "--mixed_precision", "bf16", "--network_dim", "4", "--dry_run", "--max_vram",
                "2G", "--output_dir", out.toString(), "--output_name", "x");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertFalse(r.out().contains("caches not readable"), r.out());
        assertTrue(r.out().contains("memory plan (--blocks_to_swap 0, rank 4, largest input 1×1×8×8 latent = 16 tokens"), r.out());
        assertFalse(Files.exists(out), "a dry run writes nothing");
    }
}
