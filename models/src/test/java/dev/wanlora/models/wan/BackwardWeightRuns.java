package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.ProfilingBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraModule;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Runs for {@link WanDit#keepsBackwardWeights(boolean)} (the CPU and the CUDA test share them). */
final class BackwardWeightRuns {
    private BackwardWeightRuns() {}

    /**
     * Asserts a checkpointed bf16 run on fp8 codes keeping the backward weights equals the same run dequantizing before
     * each GEMM, bit for bit (two steps' losses, every LoRA gradient, a forward's prediction); prints one line.
     */
    static void assertSame(Backend backend, SwapRuns runs, SafeTensors checkpoint, Quantization quantization, BlockSwap swap,
                           boolean savesAttention) {
        List<float[]> scratch = run(backend, runs, checkpoint, quantization, swap, savesAttention, false);
        List<float[]> kept = run(backend, runs, checkpoint, quantization, swap, savesAttention, true);
        String what = quantization + " " + swap + (savesAttention ? " saved attention" : "");
        assertEquals(scratch.size(), kept.size());
        for (int i = 0; i < kept.size(); i++) assertArrayEquals(scratch.get(i), kept.get(i), 0f, what + " tensor " + i);
        System.out.printf("backward-weights bit-identity [%s, %s, %d blocks]: losses %.9g %.9g, %d tensors equal%n",
                backend.name(), what, WanDitConfig.fromCheckpoint(checkpoint).numLayers(), kept.get(0)[0], kept.get(1)[0],
                kept.size());
    }

    private static List<float[]> run(Backend backend, SwapRuns runs, SafeTensors checkpoint, Quantization quantization,
                                     BlockSwap swap, boolean savesAttention, boolean keeps) {
        ComputePrecision precision = ComputePrecision.BF16_MUSUBI;
        try (WanDitWeights w = runs.load(checkpoint, precision, quantization, false, swap);
             WanDit dit = new WanDit(backend, w.config(), w, precision, true);
             LoraNetwork lora = runs.lora(w.config())) {
            dit.savesAttentionOutputs(savesAttention);
            dit.keepsBackwardWeights(keeps);
            assertEquals(keeps, dit.keepsBackwardWeights());
            List<Tensor> contexts = w.config().textDim() == 64 ? runs.fiveBlockContexts : runs.goldenContexts;
            List<float[]> out = new ArrayList<>();
            out.add(TrainingSteps.lossAndBackward(backend, dit, runs.xt, runs.timesteps, contexts, runs.target, lora, 1f));
            out.add(TrainingSteps.lossAndBackward(backend, dit, runs.xt, runs.timesteps, contexts, runs.target, lora, 0.5f));
            for (LoraModule m : lora.modules()) {
                out.add(backend.toFloats(m.dDown()));
                out.add(backend.toFloats(m.dUp()));
            }
            out.add(backend.toFloats(dit.forward(runs.xt, runs.timesteps, contexts, lora)));
            assertTrue(Float.isFinite(out.getFirst()[0]));
            return out;
        }
    }

    /** dequantizeFp8 calls in one checkpointed training step of the golden model on fp8 codes. */
    static long dequantizationsPerStep(ProfilingBackend backend, SwapRuns runs, boolean keeps) {
        try (WanDitWeights w = runs.load(runs.golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, BlockSwap.NONE);
             WanDit dit = new WanDit(backend, w.config(), w, ComputePrecision.BF16_MUSUBI, true);
             LoraNetwork lora = runs.lora(w.config())) {
            dit.keepsBackwardWeights(keeps);
            backend.startRecording("step");
            TrainingSteps.lossAndBackward(backend, dit, runs.xt, runs.timesteps, runs.goldenContexts, runs.target, lora, 1f);
            return backend.stopRecording().stream().filter(op -> op.op().equals("dequantizeFp8")).count();
        }
    }
}
