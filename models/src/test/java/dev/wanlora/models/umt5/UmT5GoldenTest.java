package dev.wanlora.models.umt5;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.golden.GoldenVerifier.Comparison;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The umT5 encoder on the CPU reference (float32) against sampling-tiny, which musubi's own T5Encoder computed: every
 * hidden state, the output and the trimmed outputs, from t5.safetensors, t5.pth and t5_bf16.pth; the bucket tables;
 * every tokenizer case. Bounds: UmT5GoldenVerifier.
 */
class UmT5GoldenTest {

    @Test
    void everyComparisonPasses() {
        List<Comparison> all = new UmT5GoldenVerifier(new CpuBackend(), Golden.dir("sampling-tiny"), DType.F32)
                .run(c -> System.out.println(c.describe()));
        long failed = all.stream().filter(c -> !c.passed()).count();
        assertEquals(0, failed, failed + " of " + all.size() + " comparisons failed");
        // 3 weight files × (embed, 2 layers, final, 2 trimmed) + 2 bucket tables + 17 tokenizer cases × 3, + 3 reported.
        assertEquals(3 * 6 + 2 + 17 * 3 + 3, all.size());
    }
}
