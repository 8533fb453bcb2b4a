package dev.wanlora.models.wan;

import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

/**
 * {@link WanDitBackwardWeightsTest} on the GPU: the fp8 dequantization kernel is deterministic and each kept weight
 * view is as aligned as the scratch (same cuBLASLt plan and algorithm), so keeping a block's dequantized weights from
 * its recompute for its backward gives bit-identical losses, LoRA gradients and prediction; resident and streamed.
 */
@RequiresCuda
@RequiresGolden("wan-tiny")
class WanDitBackwardWeightsCudaTest {
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
    void bitIdentical() {
        var backend = CudaTests.backend();
        BackwardWeightRuns.assertSame(backend, runs, runs.golden, Quantization.FP8_SCALED, BlockSwap.NONE, false);
        BackwardWeightRuns.assertSame(backend, runs, runs.golden, Quantization.FP8_SCALED, BlockSwap.NONE, true);
        BackwardWeightRuns.assertSame(backend, runs, runs.golden, Quantization.FP8_SCALED, new BlockSwap(1, 2), true);
        BackwardWeightRuns.assertSame(backend, runs, runs.fiveBlocks, Quantization.FP8_SCALED, new BlockSwap(3, 2), false);
    }
}
