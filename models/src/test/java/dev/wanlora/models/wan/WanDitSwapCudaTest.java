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

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link WanDitSwapTest} on the GPU: pinned host images, one async copy per block on the copy stream, events between
 * the streams. Bit-identity here also shows the ordering is right: a compute op reading a slot before its copy landed,
 * or a copy overwriting a slot still being read, would change the numbers. musubi's bf16 path (the GPU's), fp8 codes +
 * scales streamed as the GPU keeps them.
 */
@RequiresCuda
@RequiresGolden("wan-tiny")
class WanDitSwapCudaTest {
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
        runs.assertSameRun(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(1, 2));
        runs.assertSameRun(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.NONE, false, false, new BlockSwap(1, 2));
    }

    @Test
    void fiveBlocks() {
        runs.assertSameRun(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(1, 2));
        runs.assertSameRun(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(4, 2));
        runs.assertSameRun(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(3, 3));
    }

    @Test
    void copiesOnlyWhatTheRingCannotKeep() {
        try (WanDitWeights weights = runs.load(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED,
                false, new BlockSwap(4, 2))) {
            runs.run(weights, ComputePrecision.BF16_MUSUBI, true);
            assertEquals(12, weights.streamer().loadCount()); // as on the CPU: the schedule is the backend-independent part
        }
    }
}
