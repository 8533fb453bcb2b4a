package dev.wanlora.cli;

import org.junit.jupiter.api.Test;

import java.util.regex.Pattern;

import static dev.wanlora.cli.CommandRun.run;
import static org.junit.jupiter.api.Assertions.*;

/** {@code wanlora bench}: the CPU smoke run CI can afford, and its one-line user errors. */
class BenchCommandTest {

    @Test
    void tinyModelOnTheCpuPrintsOneLinePerResolutionAndAProfile() {
        CommandRun r = run("bench", "--task", "tiny", "--backend", "cpu", "--steps", "2", "--warmup", "1",
                "--resolution", "64x64,32x48", "--frames", "5", "--network_dim", "4");
        assertEquals(0, r.exitCode(), r.err() + r.out());
        // 64x64 pixels → latent 8x8, 5 frames → 2 latent frames: 2·4·4 = 32 tokens; 32x48 → latent 4x6: 2·2·3 = 12
        assertTrue(Pattern.compile("tiny 64x64x5 \\(32 tok\\) fp8_scaled r4: [0-9.]+ s/it \\(min [0-9.]+, max [0-9.]+\\),"
                + " peak n/a on the cpu \\(plan [0-9.]+ GiB\\), checkpoint_attention on \\(auto\\) {2}\\[cpu]")
                .matcher(r.out()).find(), r.out());
        assertTrue(r.out().contains("tiny 32x48x5 (12 tok) fp8_scaled r4: "), r.out());
        assertTrue(r.out().contains("  profile (1 step, "), r.out());
        assertTrue(r.out().contains(" forward "), r.out());
        assertTrue(r.out().contains("  by op: gemm "), "GEMMs dominate even the tiny model: " + r.out());
        assertFalse(r.out().contains("warning"), r.out());
    }

    @Test
    void swappedBlocksStreamThroughTheRing() {
        CommandRun r = run("bench", "--task", "tiny", "--backend", "cpu", "--steps", "1", "--warmup", "0", "--resolution", "32x48",
                "--frames", "5", "--network_dim", "4", "--top_ops", "0", "--blocks_to_swap", "1", "--checkpoint_attention", "off");
        assertEquals(0, r.exitCode(), r.err() + r.out());
        assertTrue(r.out().contains("tiny 32x48x5 (12 tok) fp8_scaled r4 swap 1: "), r.out());
        assertTrue(r.out().contains("), checkpoint_attention off  [cpu]"), r.out());
        CommandRun tooMany = run("bench", "--task", "tiny", "--backend", "cpu", "--blocks_to_swap", "2");
        assertEquals("wanlora bench: --blocks_to_swap 2: expected 0..1 for 2 blocks (musubi's limit: blocks − 1)",
                tooMany.err().strip());
    }

    /** --dit: the step on a checkpoint's weights, loaded by train's loader (the golden tiny model); a bad file: one line. */
    @Test
    void weightsFromACheckpointFile() {
        String model = dev.wanlora.engine.testing.Golden.dir("wan-tiny").resolve("model.safetensors").toString();
        CommandRun r = run("bench", "--task", "tiny", "--backend", "cpu", "--steps", "1", "--warmup", "0", "--resolution", "32x48",
                "--frames", "5", "--network_dim", "4", "--top_ops", "0", "--dit", model);
        assertEquals(0, r.exitCode(), r.err() + r.out());
        assertTrue(r.out().contains("loaded model.safetensors, "), r.out());
        assertTrue(r.out().contains("tiny weights of model.safetensors (fp8_scaled) on cpu built in "), r.out());
        assertTrue(r.out().contains("tiny 32x48x5 (12 tok) fp8_scaled r4: "), r.out());
        CommandRun missing = run("bench", "--task", "tiny", "--backend", "cpu", "--dit", "no-such-model.safetensors");
        assertEquals(Main.USER_ERROR, missing.exitCode());
        assertEquals(1, missing.err().strip().lines().count(), missing.err());
        assertTrue(missing.err().contains("no-such-model.safetensors"), missing.err());
    }

    @Test
    void userErrorsAreOneLine() {
        CommandRun cpu14B = run("bench", "--backend", "cpu");
        assertEquals(Main.USER_ERROR, cpu14B.exitCode());
        assertEquals("wanlora bench: --backend cpu: the CPU reference runs only --task tiny (a t2v-14B step would take"
                + " hours); use --backend cuda, or --task tiny for a smoke test", cpu14B.err().strip());
        CommandRun resolution = run("bench", "--task", "tiny", "--backend", "cpu", "--resolution", "100x64");
        assertEquals(Main.USER_ERROR, resolution.exitCode());
        assertTrue(resolution.err().startsWith("wanlora bench: --resolution 100x64: expected WIDTHxHEIGHT in pixels, both"
                + " positive multiples of 16"), resolution.err());
        CommandRun frames = run("bench", "--task", "tiny", "--backend", "cpu", "--frames", "44");
        assertEquals(Main.USER_ERROR, frames.exitCode());
        assertTrue(frames.err().contains("--frames 44: expected 4n+1 pixel frames"), frames.err());
        CommandRun task = run("bench", "--task", "i2v-14B", "--backend", "cpu");
        assertEquals(Main.USER_ERROR, task.exitCode());
        assertTrue(task.err().contains("--task i2v-14B is not known; supported: t2v-14B, t2v-1.3B, tiny"), task.err());
        assertEquals(1, task.err().strip().lines().count(), task.err());
    }
}
