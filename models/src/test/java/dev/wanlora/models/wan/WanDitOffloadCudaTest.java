package dev.wanlora.models.wan;

import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.models.wan.WanDitActivations.Offload;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * {@link WanDitOffloadTest} on the GPU: pinned host images, one async copy per item each way on the copy stream, events
 * between the streams. Bit-identity here also shows the ordering is right: a store reading a slot before the compute
 * wrote it, a compute op reading a slot before its load landed, or a load overwriting a slot still being read would
 * change the numbers. musubi's bf16 path, with block swapping sharing the copy stream.
 */
@RequiresCuda
class WanDitOffloadCudaTest {
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
        runs.assertSameWithOffload(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                BlockSwap.NONE, true, new Offload(3, 2, 2));
        runs.assertSameWithOffload(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.NONE, false,
                new BlockSwap(1, 2), false, new Offload(2, 0, 2));
    }

    @Test
    void fiveBlocksWithBlockSwap() {
        long[] copies = runs.assertSameWithOffload(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED,
                false, new BlockSwap(3, 2), true, new Offload(4, 3, 2));
        assertArrayEquals(new long[] {4, 12, 2, 9}, copies);
        runs.assertSameWithOffload(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                new BlockSwap(4, 2), true, new Offload(6, 5, 3));
    }
}
