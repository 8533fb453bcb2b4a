package dev.wanlora.cli;

import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.wanlora.cli.CommandRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code --fp8_compute} (issue 11) on the command line: opt-in, runs on the CPU reference, one-line refusals. */
class Fp8ComputeFlagTest {

    @Test
    void benchRunsTheFp8PathOnTheCpuReference() {
        CommandRun r = run("bench", "--task", "tiny", "--backend", "cpu", "--steps", "1", "--warmup", "0", "--resolution",
                "32x48", "--frames", "5", "--network_dim", "4", "--top_ops", "0", "--fp8_compute");
        assertEquals(0, r.exitCode(), r.err() + r.out());
        assertTrue(r.out().contains("--fp8_compute: block Linear forwards in per-tensor fp8"), r.out());
        assertTrue(r.out().contains("tiny 32x48x5 (12 tok) fp8_compute fp8_scaled r4: "), r.out());
        CommandRun off = run("bench", "--task", "tiny", "--backend", "cpu", "--steps", "1", "--warmup", "0", "--resolution",
                "32x48", "--frames", "5", "--network_dim", "4", "--top_ops", "0");
        assertTrue(off.out().contains("tiny 32x48x5 (12 tok) fp8_scaled r4: ") && !off.out().contains("fp8_compute"), off.out());
    }

    @Test
    void refusedWithoutFp8Weights(@TempDir Path dir) throws IOException {
        CommandRun bench = run("bench", "--task", "tiny", "--backend", "cpu", "--bf16_base", "--fp8_compute");
        assertEquals(Main.USER_ERROR, bench.exitCode());
        assertEquals("wanlora bench: --fp8_compute multiplies fp8 weights, but the block weights are bf16; drop --bf16_base"
                + " or drop --fp8_compute", bench.err().strip());
        Path dit = Files.writeString(dir.resolve("dit.safetensors"), "x");
        Path dataset = Files.writeString(dir.resolve("dataset.toml"), "[general]\n");
        CommandRun train = run("train", "--dit", dit.toString(), "--dataset_config", dataset.toString(), "--output_dir",
                dir.resolve("out").toString(), "--output_name", "lora", "--fp8_compute");
        assertEquals(Main.USER_ERROR, train.exitCode());
        assertEquals("wanlora train: --fp8_compute: multiplies fp8 weights; add --fp8_base (and --fp8_scaled for a bf16"
                + " checkpoint)", train.err().strip());
    }

    @Test
    void sampleDryRunPlansTheInputCodes(@TempDir Path dir) {
        String dit = Golden.dir("wan-tiny").resolve("model.safetensors").toString();
        CommandRun r = run("sample", "--dit", dit, "--stand_in_models", "--prompt", "a fox --w 64 --h 48 --f 5",
                "--output_dir", dir.toString(), "--dry_run", "--max_vram", "24G", "--fp8_base", "--fp8_scaled", "--fp8_compute");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        // the most rows one Linear sees: 512 text rows (the 64x48x5 clip has 2·3·4 = 24 tokens), times ffn_dim 512
        assertTrue(r.out().contains("fp8 compute input codes"), r.out());
        assertTrue(r.out().contains("--fp8_compute: one Linear input as e4m3, 512 x 512"), r.out());
        CommandRun bf16 = run("sample", "--dit", dit, "--stand_in_models", "--prompt", "a fox --w 64 --h 48 --f 5",
                "--output_dir", dir.toString(), "--dry_run", "--fp8_compute");
        assertEquals(Main.USER_ERROR, bf16.exitCode());
        assertEquals("wanlora sample: --fp8_compute multiplies fp8 weights, but the block weights are bf16; add --fp8_base"
                + " (and --fp8_scaled for a bf16 checkpoint) or drop --fp8_compute", bf16.err().strip());
    }
}
