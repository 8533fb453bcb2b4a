package dev.wanlora.models.golden;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Our DiT on the CPU against musubi's golden tensors (testdata/golden/wan-tiny): every line must pass. */
class WanDitGoldenTest {

    @Test
    void cpuReferenceMatchesEveryGolden() {
        Backend backend = new CpuBackend();
        GoldenVerifier verifier = new GoldenVerifier(backend, Golden.dir("wan-tiny"));
        List<GoldenVerifier.Comparison> lines = verifier.run(GoldenVerifier.Mode.FP32_REFERENCE,
                c -> System.out.println(c.describe()));
        List<GoldenVerifier.Comparison> failed = lines.stream().filter(c -> !c.passed()).toList();
        assertTrue(failed.isEmpty(), "failed: " + failed.stream().map(GoldenVerifier.Comparison::describe).toList());
        assertTrue(lines.size() > 100, "expected outputs, gradients, fp8 bytes and training lines; got " + lines.size());
    }
}
