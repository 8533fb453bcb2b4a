package dev.wanlora.models.umt5;

import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.golden.GoldenVerifier.Comparison;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * musubi's bf16 path on CUDA against sampling-tiny's float32 goldens (bound: 1.5 × musubi's own bf16 error + 1e-3,
 * UmT5GoldenVerifier). Run on a GPU machine: {@code mvn -pl models -am test -Dtest=UmT5GoldenCudaTest}.
 */
@RequiresCuda
class UmT5GoldenCudaTest {

    @Test
    void bf16OnCudaWithinBf16Bound() {
        List<Comparison> all = new UmT5GoldenVerifier(CudaTests.backend(), Golden.dir("sampling-tiny"), DType.BF16)
                .run(c -> System.out.println(c.describe()));
        assertEquals(0, all.stream().filter(c -> !c.passed()).count());
    }
}
