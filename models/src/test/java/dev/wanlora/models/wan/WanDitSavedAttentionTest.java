package dev.wanlora.models.wan;

import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.engine.backend.ProfilingBackend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Keeping each block's self-attention output and log-sum-exp through gradient checkpointing changes no number: the
 * saved tensors are what the recompute would write (same deterministic op, same inputs). Two training steps and a
 * forward on the golden tiny model, with and without saving, compared bit for bit (losses, every LoRA gradient, the
 * prediction), resident and with block swapping; and the recompute really skips the self-attention calls.
 */
@RequiresGolden("wan-tiny")
class WanDitSavedAttentionTest {
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
    void goldenModelBitIdentical() {
        runs.assertSameWithSavedAttention(runs.golden, ComputePrecision.FP32, Quantization.NONE, true, BlockSwap.NONE);
        runs.assertSameWithSavedAttention(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                BlockSwap.NONE);
    }

    @Test
    void goldenModelBitIdenticalWithBlockSwap() {
        runs.assertSameWithSavedAttention(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                new BlockSwap(1, 2));
        runs.assertSameWithSavedAttention(runs.fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                new BlockSwap(3, 2));
    }

    @Test
    void recomputeSkipsSelfAttention() {
        // 2 blocks × (self + cross) attention calls in the forward; the recompute adds 2 × 2 without saving, 2 × 1 with
        assertEquals(8, attentionCallsPerStep(false));
        assertEquals(6, attentionCallsPerStep(true));
    }

    @Test
    void keyRefusesSavingWithoutCheckpointing() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new WanDitActivations.Key(1, 1, 2, 2, 4, true, true));
        assertEquals("WanDitActivations.Key: savesAttentionOutputs needs gradient checkpointing (keepsBlockIntermediates"
                + " false); without it every block keeps its attention output", e.getMessage());
    }

    private static long attentionCallsPerStep(boolean savesAttention) {
        try (WanDitWeights w = runs.load(runs.golden, ComputePrecision.FP32, Quantization.NONE, true, BlockSwap.NONE);
             WanDit dit = new WanDit(backend, w.config(), w, ComputePrecision.FP32, true);
             LoraNetwork lora = runs.lora(w.config())) {
            dit.savesAttentionOutputs(savesAttention);
            backend.startRecording("step");
            TrainingSteps.lossAndBackward(backend, dit, runs.xt, runs.timesteps, runs.goldenContexts, runs.target, lora, 1f);
            return backend.stopRecording().stream().filter(op -> op.op().equals("attention")).count();
        }
    }
}
