package dev.wanlora.models.wan;

import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Block streaming changes where weights are read from, never a number: swapped and resident runs give bit-identical
 * losses, predictions and LoRA gradients ({@link SwapRuns}). On the CPU backend the streamer runs the GPU's schedule
 * with synchronous copies, so a wrong block in a slot, a stale slot or a missed reload would change the numbers.
 */
@RequiresGolden("wan-tiny")
class WanDitSwapTest {
    private static SwapRuns runs;

    @BeforeAll
    static void open(@TempDir Path tmp) {
        runs = new SwapRuns(new CpuBackend(), tmp);
    }

    @AfterAll
    static void close() {
        if (runs != null) runs.close();
    }

    @Test
    void goldenModelSwappingItsOneAllowedBlock() {
        // fp32 with dequantized weights (without checkpointing: the backward reacquires what the forward released),
        // and musubi's bf16 path with fp8 codes + scales streamed (half the bytes)
        runs.assertSameRun(runs.golden, ComputePrecision.FP32, Quantization.NONE, true, false, new BlockSwap(1, 2));
        runs.assertSameRun(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(1, 2));
    }

    @Test
    void fiveBlocksSwappingOneToAllButOne() {
        runs.assertSameRun(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(1, 2));
        runs.assertSameRun(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(4, 2));
        runs.assertSameRun(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(3, 3));
    }

    @Test
    void copiesOnlyWhatTheRingCannotKeep() {
        // N = 4 streamed blocks, K = 2 slots. First forward: 4 copies; every later pass: N − K (the first K blocks
        // of a pass are the ones the previous pass ended with). Two steps and a forward: 4 + 2 + 2 + 2 + 2.
        try (WanDitWeights weights = runs.load(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED,
                false, new BlockSwap(4, 2))) {
            runs.run(weights, ComputePrecision.BF16_MUSUBI, true);
            assertEquals(12, weights.streamer().loadCount());
            assertEquals(2 * weights.streamer().layout().sizeBytes(), weights.streamer().deviceBytes());
            assertTrue(weights.block(4).linear(BlockLinear.FFN_0).isStreamed());
            assertFalse(weights.block(0).linear(BlockLinear.FFN_0).isStreamed());
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> weights.block(4).linear(BlockLinear.FFN_0).weightShape());
            assertEquals("blocks.4.ffn.0.weight is streamed (--blocks_to_swap): its weight is only on the device between"
                    + " WanDitWeights.acquireBlock and releaseBlock", e.getMessage());
        }
    }

    @Test
    void refusesSwappingEveryBlock() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> runs.load(runs.fiveBlocks,
                ComputePrecision.FP32, Quantization.NONE, true, new BlockSwap(5, 2)));
        assertEquals("--blocks_to_swap 5 with --block_swap_ring_size 2: expected 0 to 4 blocks (this model has 5; musubi's"
                + " limit is blocks − 1) and at least 2 slots", e.getMessage());
    }
}
