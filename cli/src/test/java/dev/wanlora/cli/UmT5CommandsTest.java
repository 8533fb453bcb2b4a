package dev.wanlora.cli;

import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static dev.wanlora.cli.CommandRun.run;
import static org.junit.jupiter.api.Assertions.*;

/** {@code wanlora inspect} on .pth and umT5 files, {@code wanlora verify-golden} on sampling-tiny's umT5 part. */
class UmT5CommandsTest {

    @TempDir
    Path tmp;

    @Test
    void inspectReadsAPthAndRecognisesTheEncoder() {
        CommandRun r = run("inspect", Golden.dir("sampling-tiny").resolve("t5_bf16.pth").toString(), "--limit", "2");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("tensors:  22"), r.out());
        assertTrue(r.out().contains("dtypes:   BF16 22"), r.out());
        assertTrue(r.out().contains("umT5 text encoder"), r.out());
        assertTrue(r.out().contains("umT5 vocab 512, dim 64, 4 heads × 16, ffn 160, 2 layers, 32 buckets"), r.out());
        assertTrue(r.out().contains("token_embedding.weight"), r.out());
    }

    @Test
    void inspectRecognisesASafetensorsEncoder() {
        CommandRun r = run("inspect", Golden.dir("sampling-tiny").resolve("t5.safetensors").toString());
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("names:   Wan (blocks.N.attn.…)"), r.out());
    }

    @Test
    void aHostilePthIsOneLineOnStderr() throws IOException {
        Path bad = Files.write(tmp.resolve("bad.pth"), new byte[] {1, 2, 3});
        CommandRun r = run("inspect", bad.toString());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("not a zip archive"), r.err());
        assertNotEquals(0, r.exitCode());
    }

    @Test
    void verifyGoldenRunsTheUmT5Comparisons() {
        CommandRun r = run("verify-golden", Golden.dir("sampling-tiny").toString());
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("umT5 FP32_REFERENCE"), r.out());
        // sampling-tiny is also a sampling folder: 37 solver and CFG-loop comparisons run beside the 74 umT5 ones
        assertTrue(r.out().contains("111 compared, 0 failed"), r.out());
    }
}
