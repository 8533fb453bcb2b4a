package dev.wanlora.models.wan.vae;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.golden.GoldenVerifier.Comparison;
import dev.wanlora.models.golden.GoldenVerifier.Mode;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Our VAE on the CPU against musubi's golden tensors (testdata/golden/vae-tiny): every line must pass. */
class WanVaeGoldenTest {

    @Test
    void cpuReferenceMatchesEveryGolden() {
        Backend backend = new CpuBackend();
        VaeGoldenVerifier verifier = new VaeGoldenVerifier(backend, Golden.dir("vae-tiny"));
        assertEquals(new WanVaeConfig(7, 16), verifier.config());
        List<Comparison> lines = verifier.run(Mode.FP32_REFERENCE, c -> System.out.println(c.describe()));
        List<Comparison> failed = lines.stream().filter(c -> !c.passed()).toList();
        assertTrue(failed.isEmpty(), "failed: " + failed.stream().map(Comparison::describe).toList());
        // decode: z_denorm, conv2, decoder.conv1, middle, stage0, stage1, stage2.chunk0, stage3.chunk0, video;
        // encode: encoder.out, output.mu.
        assertEquals(11, lines.size(), "compared lines");
    }

    /** The reference backend's own bf16 path (bf16 weights, every op output rounded) within the bf16 bounds. */
    @Test
    void cpuBf16PathStaysWithinTheBf16Bounds() {
        VaeGoldenVerifier verifier = new VaeGoldenVerifier(new CpuBackend(), Golden.dir("vae-tiny"));
        List<Comparison> lines = verifier.run(Mode.BF16_DEVICE, c -> System.out.println(c.describe()));
        List<Comparison> failed = lines.stream().filter(c -> !c.passed()).toList();
        assertTrue(failed.isEmpty(), "failed: " + failed.stream().map(Comparison::describe).toList());
        assertEquals(11, lines.size(), "compared lines");
    }
}
