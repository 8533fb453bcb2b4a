package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.lora.LoraModule;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Swapped-versus-resident runs of the DiT on one backend (the CPU test and the CUDA test share it): two training
 * steps (the second starts with the blocks the first backward left in the slots) and a forward-only pass, on the golden
 * 2-block model and on a random 5-block one, compared bit for bit. Also checkpointed runs with and without saved
 * self-attention outputs ({@link WanDit#savesAttentionOutputs(boolean)}), compared the same way.
 */
final class SwapRuns implements AutoCloseable {
    private final Backend backend;
    /** The golden tiny model (2 blocks: N = 1 is also the maximum, numLayers − 1). */
    final SafeTensors golden;
    /**
     * A random 5-block model of the same widths, so N = 1, 3 and 4 (= numLayers − 1) stream through the ring; with a
     * small text encoder width (64) and length (32), which only speeds the test up.
     */
    final SafeTensors fiveBlocks;
    final Tensor xt, target, timesteps;
    /** A context for each model: (13, 4096) for the golden one, (13, 64) for the five-block one. */
    final List<Tensor> goldenContexts, fiveBlockContexts;
    /** The resident run of each configuration, computed once. */
    private final Map<String, List<float[]>> resident = new HashMap<>();

    SwapRuns(Backend backend, Path tmp) {
        this.backend = backend;
        golden = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"), SafeTensors.DIT_PREFIXES);
        WanDitConfig five = new WanDitConfig(256, 512, 2, 5, 16, 16, 64, 256, 32, 1e-6f, WanDitConfig.PATCH_1_2_2);
        Path file = tmp.resolve("wan-5-blocks.safetensors");
        SafeTensorsWriter.write(file, WanDitWeights.randomCheckpoint(five, 7), Map.of());
        fiveBlocks = SafeTensors.open(file, SafeTensors.DIT_PREFIXES);
        SplittableRandom random = new SplittableRandom(11);
        Shape latent = Shape.of(1, 16, 2, 4, 6); // 2·2·3 = 12 tokens: small, so the CPU test is quick
        Tensor x0 = backend.fromFloats(DType.F32, latent, gaussian(random, latent.numElements()));
        Tensor noise = backend.fromFloats(DType.F32, latent, gaussian(random, latent.numElements()));
        xt = backend.allocate(DType.F32, latent);
        target = backend.allocate(DType.F32, latent);
        backend.flowMatchingInput(xt, target, x0, noise, backend.fromFloats(DType.F32, Shape.of(1), new float[] {0.7f}));
        timesteps = backend.fromFloats(DType.F32, Shape.of(1), new float[] {701f});
        goldenContexts = List.of(backend.fromFloats(DType.BF16, Shape.of(13, 4096), gaussian(random, 13 * 4096)));
        fiveBlockContexts = List.of(backend.fromFloats(DType.BF16, Shape.of(13, 64), gaussian(random, 13 * 64)));
    }

    @Override
    public void close() {
        golden.close();
        fiveBlocks.close();
    }

    /** Asserts the swapped run equals the resident one bit for bit, and prints one line saying so. */
    void assertSameRun(SafeTensors checkpoint, ComputePrecision precision, Quantization quantization,
                       boolean dequantizeAtLoad, boolean checkpointing, BlockSwap swap) {
        String what = precision + " " + quantization + (checkpointing ? " checkpointed" : "");
        List<float[]> expected = resident.computeIfAbsent(checkpoint.path() + " " + what, k -> {
            try (WanDitWeights w = load(checkpoint, precision, quantization, dequantizeAtLoad, BlockSwap.NONE)) {
                return run(w, precision, checkpointing);
            }
        });
        List<float[]> swapped;
        try (WanDitWeights w = load(checkpoint, precision, quantization, dequantizeAtLoad, swap)) {
            swapped = run(w, precision, checkpointing);
            assertTrue(w.streamer().loadCount() > 0);
        }
        what += " " + swap;
        assertEquals(expected.size(), swapped.size());
        for (int i = 0; i < expected.size(); i++) assertArrayEquals(expected.get(i), swapped.get(i), 0f, what + " tensor " + i);
        System.out.printf("swap bit-identity [%s, %s, %d blocks]: losses %.9g %.9g, %d tensors equal%n", backend.name(), what,
                WanDitConfig.fromCheckpoint(checkpoint).numLayers(), expected.get(0)[0], expected.get(1)[0], expected.size());
    }

    /**
     * Asserts a checkpointed run keeping the self-attention outputs equals one recomputing them, bit for bit, with
     * {@code swap} for both; prints one line saying so.
     */
    void assertSameWithSavedAttention(SafeTensors checkpoint, ComputePrecision precision, Quantization quantization,
                                      boolean dequantizeAtLoad, BlockSwap swap) {
        List<float[]> recomputed, saved;
        try (WanDitWeights w = load(checkpoint, precision, quantization, dequantizeAtLoad, swap)) {
            recomputed = run(w, precision, true, false);
        }
        try (WanDitWeights w = load(checkpoint, precision, quantization, dequantizeAtLoad, swap)) {
            saved = run(w, precision, true, true);
        }
        String what = precision + " " + quantization + " " + swap;
        assertEquals(recomputed.size(), saved.size());
        for (int i = 0; i < saved.size(); i++) {
            assertArrayEquals(recomputed.get(i), saved.get(i), 0f, what + " tensor " + i);
        }
        System.out.printf("saved-attention bit-identity [%s, %s, %d blocks]: losses %.9g %.9g, %d tensors equal%n",
                backend.name(), what, WanDitConfig.fromCheckpoint(checkpoint).numLayers(), saved.get(0)[0],
                saved.get(1)[0], saved.size());
    }

    /**
     * Asserts a checkpointed run with {@code offload} equals the same run without it, bit for bit, with {@code swap}
     * for both; returns the offloaded run's offload copy counts {loads, stores} of the saved inputs and prints one line.
     */
    long[] assertSameWithOffload(SafeTensors checkpoint, ComputePrecision precision, Quantization quantization,
                                 boolean dequantizeAtLoad, BlockSwap swap, boolean savesAttention,
                                 WanDitActivations.Offload offload) {
        List<float[]> resident, offloaded;
        long[] copies = new long[4];
        try (WanDitWeights w = load(checkpoint, precision, quantization, dequantizeAtLoad, swap)) {
            resident = run(w, precision, true, savesAttention, WanDitActivations.Offload.NONE, null);
        }
        try (WanDitWeights w = load(checkpoint, precision, quantization, dequantizeAtLoad, swap)) {
            offloaded = run(w, precision, true, savesAttention, offload, copies);
        }
        String what = precision + " " + quantization + " " + swap + (savesAttention ? " saved attention " : " ") + offload;
        assertEquals(resident.size(), offloaded.size());
        for (int i = 0; i < offloaded.size(); i++) {
            assertArrayEquals(resident.get(i), offloaded.get(i), 0f, what + " tensor " + i);
        }
        System.out.printf("offload bit-identity [%s, %s, %d blocks]: losses %.9g %.9g, %d tensors equal; inputs loaded %d,"
                        + " stored %d; attention loaded %d, stored %d%n", backend.name(), what,
                WanDitConfig.fromCheckpoint(checkpoint).numLayers(), offloaded.get(0)[0], offloaded.get(1)[0],
                offloaded.size(), copies[0], copies[1], copies[2], copies[3]);
        return copies;
    }

    WanDitWeights load(SafeTensors checkpoint, ComputePrecision precision, Quantization quantization,
                       boolean dequantizeAtLoad, BlockSwap swap) {
        return WanDitWeights.load(backend, checkpoint, WanDitConfig.fromCheckpoint(checkpoint), precision, quantization,
                dequantizeAtLoad, swap);
    }

    /** Losses of two steps (gradScale 1 then 0.5), every accumulated LoRA gradient, and a forward's prediction. */
    List<float[]> run(WanDitWeights weights, ComputePrecision precision, boolean checkpointing) {
        return run(weights, precision, checkpointing, false);
    }

    /** {@link #run(WanDitWeights, ComputePrecision, boolean)} keeping the self-attention outputs when {@code savesAttention}. */
    List<float[]> run(WanDitWeights weights, ComputePrecision precision, boolean checkpointing, boolean savesAttention) {
        return run(weights, precision, checkpointing, savesAttention, WanDitActivations.Offload.NONE, null);
    }

    /** The run with activation offload; {@code copies} (when not null) receives {inputs loaded, stored, attention loaded, stored}. */
    List<float[]> run(WanDitWeights weights, ComputePrecision precision, boolean checkpointing, boolean savesAttention,
                      WanDitActivations.Offload offload, long[] copies) {
        WanDitConfig config = weights.config();
        List<Tensor> contexts = config.textDim() == 64 ? fiveBlockContexts : goldenContexts;
        List<float[]> out = new ArrayList<>();
        try (WanDit dit = new WanDit(backend, config, weights, precision, checkpointing); LoraNetwork lora = lora(config)) {
            dit.savesAttentionOutputs(savesAttention);
            dit.offloadActivations(offload);
            out.add(TrainingSteps.lossAndBackward(backend, dit, xt, timesteps, contexts, target, lora, 1f));
            out.add(TrainingSteps.lossAndBackward(backend, dit, xt, timesteps, contexts, target, lora, 0.5f));
            for (LoraModule m : lora.modules()) {
                out.add(backend.toFloats(m.dDown()));
                out.add(backend.toFloats(m.dUp()));
            }
            out.add(backend.toFloats(dit.forward(xt, timesteps, contexts, lora)));
            if (copies != null) {
                WanDitActivations a = dit.lastActivations();
                copies[0] = a.savedInputs.loadCount();
                copies[1] = a.savedInputs.storeCount();
                copies[2] = a.savedAttention == null ? 0 : a.savedAttention.loadCount();
                copies[3] = a.savedAttention == null ? 0 : a.savedAttention.storeCount();
            }
        }
        return out;
    }

    /** Rank-4 LoRA with random down and up (a zero up, musubi's init, would leave every down gradient zero). */
    LoraNetwork lora(WanDitConfig config) {
        SplittableRandom random = new SplittableRandom(3);
        List<LoraModuleWeights> modules = new ArrayList<>();
        for (int i = 0; i < config.numLayers(); i++) {
            for (BlockLinear layer : BlockLinear.values()) {
                Shape w = layer.weightShape(config);
                int out = (int) w.dim(0), in = (int) w.dim(1);
                float[] down = gaussian(random, 4L * in), up = gaussian(random, 4L * out);
                for (int k = 0; k < down.length; k++) down[k] *= 0.05f;
                for (int k = 0; k < up.length; k++) up[k] *= 0.05f;
                modules.add(new LoraModuleWeights(LoraModule.nameOf(i, layer), 4, in, out, 2f, down, up));
            }
        }
        return LoraNetwork.fromWeights(backend, config, modules, "random");
    }

    private static float[] gaussian(SplittableRandom random, long n) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            // Box-Muller from two uniforms
            v[i] = (float) (Math.sqrt(-2 * Math.log(1 - random.nextDouble())) * Math.cos(2 * Math.PI * random.nextDouble()));
        }
        return v;
    }
}
