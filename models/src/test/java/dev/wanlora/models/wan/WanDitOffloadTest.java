package dev.wanlora.models.wan;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.models.wan.WanDitActivations.Offload;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Activation offload changes where the saved block inputs and attention outputs wait between forward and backward,
 * never a number: offloaded and resident runs give bit-identical losses, LoRA gradients and predictions (two training
 * steps and a forward, {@link SwapRuns}). On the CPU backend the offload runs the GPU's schedule with synchronous
 * copies, so a wrong item in a slot, a stale slot or a missed reload would change the numbers; the copy counts show the
 * ring keeps what it can.
 */
class WanDitOffloadTest {
    private static SwapRuns runs;

    @BeforeAll
    static void open(@TempDir Path tmp) {
        runs = new SwapRuns(new CpuBackend(), tmp);
    }

    @AfterAll
    static void close() {
        runs.close();
    }

    @Test
    void goldenModelOffloadingEveryInput() {
        // 2 blocks: 3 saved inputs, all in host memory (the head's too), through a 2-slot ring
        runs.assertSameWithOffload(runs.golden, ComputePrecision.FP32, Quantization.NONE, true, BlockSwap.NONE, false,
                new Offload(3, 0, 2));
        runs.assertSameWithOffload(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                BlockSwap.NONE, true, new Offload(3, 2, 2));
    }

    @Test
    void fiveBlocksWithBlockSwapAndSavedAttention() {
        runs.assertSameWithOffload(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                new BlockSwap(3, 2), true, new Offload(4, 3, 2));
        runs.assertSameWithOffload(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                new BlockSwap(4, 2), true, new Offload(6, 5, 3));
        runs.assertSameWithOffload(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                BlockSwap.NONE, false, new Offload(1, 0, 2));
    }

    @Test
    void copiesOnlyWhatTheRingCannotKeep() {
        // 4 of 6 inputs offloaded, 2 slots: every forward stores each offloaded input once (3 forwards: 12); each backward
        // finds the last 2 the forward wrote still in the slots and loads the other 2 (2 backwards: 4). The attention
        // outputs of blocks 0..2 through their own 2 slots: 3 stores per forward (9), 3 − 2 = 1 load per backward (2).
        // With 3 slots each backward loads 4 − 3 = 1 input.
        long[] copies = runs.assertSameWithOffload(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED,
                false, BlockSwap.NONE, true, new Offload(4, 3, 2));
        assertArrayEquals(new long[] {4, 12, 2, 9}, copies);
        long[] deeper = runs.assertSameWithOffload(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED,
                false, BlockSwap.NONE, false, new Offload(4, 0, 3));
        assertArrayEquals(new long[] {2, 12, 0, 0}, deeper);
    }

    @Test
    void offloadNeedsCheckpointing() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new WanDitActivations.Key(1, 2, 4, 6, 4, true, false, new Offload(1, 0, 2)));
        assertEquals("WanDitActivations.Key: activation offload needs gradient checkpointing (keepsBlockIntermediates"
                + " false); got Offload[blockInputs=1, attentionOutputs=0, ringSlots=2]", e.getMessage());
    }
}
