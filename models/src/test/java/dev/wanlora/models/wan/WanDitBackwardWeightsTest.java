package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.ProfilingBackend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Keeping each block's fp8 weights dequantized from its checkpoint recompute for its backward
 * ({@link WanDit#keepsBackwardWeights(boolean)}) changes no number — the kept values come from the same
 * deterministic op on the same codes — and saves the backward's dequantizations: two steps and a forward with fp8
 * codes kept (as on the GPU), compared bit for bit with the scratch path, resident and streamed, with and without
 * saved attention; and the dequantization count per step.
 */
@RequiresGolden("wan-tiny")
class WanDitBackwardWeightsTest {
    private static ProfilingBackend backend;
    private static SwapRuns runs;

    @BeforeAll
    static void open(@TempDir Path tmp) {
        backend = ProfilingBackend.wrap(new CpuBackend());
        runs = new SwapRuns(backend, tmp);
    }

    @AfterAll
    static void close() {
        if (runs != null) runs.close();
        if (backend != null) backend.close();
    }

    @Test
    void bitIdenticalToDequantizingBeforeEachGemm() {
        BackwardWeightRuns.assertSame(backend, runs, runs.golden, Quantization.FP8_SCALED, BlockSwap.NONE, false);
        BackwardWeightRuns.assertSame(backend, runs, runs.golden, Quantization.FP8_SCALED, new BlockSwap(1, 2), true);
        BackwardWeightRuns.assertSame(backend, runs, runs.fiveBlocks, Quantization.FP8_SCALED, new BlockSwap(3, 2), false);
    }

    @Test
    void backwardDequantizesOnlyFfn2() {
        // per block and step: forward 10 Linears, recompute 9 (ffn.2's output is not needed), backward 8 (cross k, v
        // have no input gradient) = 27; keeping the 8 backward Linears from the recompute leaves ffn.2's = 20
        int blocks = 2;
        assertEquals(27L * blocks, BackwardWeightRuns.dequantizationsPerStep(backend, runs, false));
        assertEquals(20L * blocks, BackwardWeightRuns.dequantizationsPerStep(backend, runs, true));
    }

    @Test
    void appliesOnlyWithCheckpointingAndFp8Codes() {
        try (WanDitWeights codes = runs.load(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, BlockSwap.NONE);
             WanDitWeights bf16 = runs.load(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.NONE, false, BlockSwap.NONE);
             WanDit checkpointed = new WanDit(backend, codes.config(), codes, ComputePrecision.BF16_MUSUBI, true);
             WanDit full = new WanDit(backend, codes.config(), codes, ComputePrecision.BF16_MUSUBI, false);
             WanDit unquantized = new WanDit(backend, bf16.config(), bf16, ComputePrecision.BF16_MUSUBI, true)) {
            checkpointed.keepsBackwardWeights(true);
            full.keepsBackwardWeights(true);
            unquantized.keepsBackwardWeights(true);
            assertTrue(checkpointed.keepsBackwardWeights());
            assertFalse(full.keepsBackwardWeights());
            assertFalse(unquantized.keepsBackwardWeights());
            checkpointed.keepsBackwardWeights(false);
            assertFalse(checkpointed.keepsBackwardWeights());
        }
    }

    @Test
    void planCountsOneBlocksBackwardLinears() {
        // 14B: 6 × 5120² + 2 × 13824·5120 = 299 M elements, bf16: 598 MB = 0.56 GiB
        assertEquals(6L * 5120 * 5120 + 2L * 13824 * 5120, WanDit.backwardWeightElements(WanDitConfig.t2v14B()));
        var item = WanMemoryPlan.backwardWeights(WanDitConfig.t2v14B(), ComputePrecision.BF16_MUSUBI);
        assertEquals(WanMemoryPlan.BACKWARD_WEIGHTS, item.category());
        assertEquals(2 * (6L * 5120 * 5120 + 2L * 13824 * 5120), item.bytes());
    }
}
