package dev.wanlora.models.wan;

import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

/**
 * {@link WanDitSavedAttentionTest} on the GPU: the flash-attention kernels are deterministic, so the saved output and
 * log-sum-exp equal the recompute's and a checkpointed step gives bit-identical losses, LoRA gradients and
 * prediction with and without saving; musubi's bf16 path with fp8 codes + scales, resident and streamed.
 */
@RequiresCuda
@RequiresGolden("wan-tiny")
class WanDitSavedAttentionCudaTest {
    private static SwapRuns runs;

    @BeforeAll
    static void open(@TempDir Path tmp) {
        runs = new SwapRuns(CudaTests.backend(), tmp);
    }

    @AfterAll
    static void close() {
        if (runs != null) runs.close();
    }

    @Test
    void goldenModel() {
        runs.assertSameWithSavedAttention(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                BlockSwap.NONE);
        runs.assertSameWithSavedAttention(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.NONE, false,
                BlockSwap.NONE);
    }

    @Test
    void withBlockSwap() {
        runs.assertSameWithSavedAttention(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                new BlockSwap(1, 2));
        runs.assertSameWithSavedAttention(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                new BlockSwap(3, 2));
    }
}
