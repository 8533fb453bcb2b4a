package dev.wanlora.models.sampling;

import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.golden.GoldenVerifier;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The 8-step CFG loop with musubi's bf16 path on the GPU (forward-only plans, cuBLASLt, our attention kernel) against
 * the float32 golden, within the bf16 bounds of {@link SamplingGoldenVerifier} (≈ 2× the drift the same roundings give
 * on the CPU). The solver lines run on the host and are the same as on the CPU.
 */
@RequiresCuda
class SamplingGoldenCudaTest {

    @Test
    void bf16LoopMatchesTheGolden() {
        SamplingGoldenVerifier verifier = new SamplingGoldenVerifier(CudaTests.backend(), Golden.dir("sampling-tiny"));
        List<GoldenVerifier.Comparison> lines = verifier.run(GoldenVerifier.Mode.BF16_DEVICE,
                c -> System.out.println(c.describe()));
        List<String> failed = lines.stream().filter(c -> !c.passed()).map(GoldenVerifier.Comparison::describe).toList();
        assertTrue(failed.isEmpty(), "failed: " + failed);
        assertTrue(lines.stream().anyMatch(c -> c.key().equals("final")), "the loop ran");
    }
}
