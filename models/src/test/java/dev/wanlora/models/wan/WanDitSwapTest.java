package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
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
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Block streaming changes where weights are read from, never a number: swapped and resident runs give bit-identical
 * losses, predictions and LoRA gradients, over two training steps (the second starts with the blocks the first
 * backward left in the slots) and a forward-only pass. On the CPU backend the streamer runs the GPU's schedule with
 * synchronous copies, so a wrong block in a slot, a stale slot or a missed reload would change the numbers.
 */
class WanDitSwapTest {
    private static final Backend CPU = new CpuBackend();

    /** The golden tiny model (2 blocks: N = 1 is also the maximum, numLayers − 1). */
    private static SafeTensors golden;
    /**
     * A random 5-block model of the same widths, so N = 1, 3 and 4 (= numLayers − 1) stream through the ring; with a
     * small text encoder width (64) and length (32), which only speeds the test up.
     */
    private static SafeTensors fiveBlocks;
    private static Tensor xt, target, timesteps;
    /** A context for each model: (13, 4096) for the golden one, (13, 64) for the five-block one. */
    private static List<Tensor> goldenContexts, fiveBlockContexts;
    /** The resident run of each configuration, computed once. */
    private static final Map<String, List<float[]>> RESIDENT = new java.util.HashMap<>();

    @BeforeAll
    static void open(@TempDir Path tmp) {
        golden = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"), SafeTensors.DIT_PREFIXES);
        WanDitConfig five = new WanDitConfig(256, 512, 2, 5, 16, 16, 64, 256, 32, 1e-6f, WanDitConfig.PATCH_1_2_2);
        Path file = tmp.resolve("wan-5-blocks.safetensors");
        SafeTensorsWriter.write(file, WanDitWeights.randomCheckpoint(five, 7), Map.of());
        fiveBlocks = SafeTensors.open(file, SafeTensors.DIT_PREFIXES);
        SplittableRandom random = new SplittableRandom(11);
        Shape latent = Shape.of(1, 16, 2, 4, 6); // 2·2·3 = 12 tokens: small, so the CPU test is quick
        Tensor x0 = CPU.fromFloats(DType.F32, latent, gaussian(random, latent.numElements()));
        Tensor noise = CPU.fromFloats(DType.F32, latent, gaussian(random, latent.numElements()));
        xt = CPU.allocate(DType.F32, latent);
        target = CPU.allocate(DType.F32, latent);
        CPU.flowMatchingInput(xt, target, x0, noise, CPU.fromFloats(DType.F32, Shape.of(1), new float[] {0.7f}));
        timesteps = CPU.fromFloats(DType.F32, Shape.of(1), new float[] {701f});
        goldenContexts = List.of(CPU.fromFloats(DType.BF16, Shape.of(13, 4096), gaussian(random, 13 * 4096)));
        fiveBlockContexts = List.of(CPU.fromFloats(DType.BF16, Shape.of(13, 64), gaussian(random, 13 * 64)));
    }

    @AfterAll
    static void close() {
        golden.close();
        fiveBlocks.close();
    }

    @Test
    void goldenModelSwappingItsOneAllowedBlock() {
        // fp32 with dequantized weights (without checkpointing: the backward reacquires what the forward released),
        // and musubi's bf16 path with fp8 codes + scales streamed (half the bytes)
        assertSameRun(golden, ComputePrecision.FP32, Quantization.NONE, true, false, new BlockSwap(1, 2));
        assertSameRun(golden, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(1, 2));
    }

    @Test
    void fiveBlocksSwappingOneToAllButOne() {
        assertSameRun(fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(1, 2));
        assertSameRun(fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(4, 2));
        assertSameRun(fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true, new BlockSwap(3, 3));
    }

    @Test
    void copiesOnlyWhatTheRingCannotKeep() {
        // N = 4 streamed blocks, K = 2 slots. First forward: 4 copies; every later pass: N − K (the first K blocks
        // of a pass are the ones the previous pass ended with). Two steps and a forward: 4 + 2 + 2 + 2 + 2.
        try (WanDitWeights weights = load(fiveBlocks, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false,
                new BlockSwap(4, 2))) {
            run(weights, ComputePrecision.BF16_MUSUBI, true);
            assertEquals(12, weights.streamer().loadCount());
            // the streamed images are fp8 codes + bf16 scales: ten Linears of a 256/512-wide block
            assertEquals(2 * weights.streamer().layout().sizeBytes(), weights.streamer().deviceBytes());
            assertTrue(weights.block(4).linear(BlockLinear.FFN_0).isStreamed());
            assertFalse(weights.block(0).linear(BlockLinear.FFN_0).isStreamed());
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> weights.block(4).linear(BlockLinear.FFN_0).weightShape());
            assertTrue(e.getMessage().startsWith("ffn.0.weight is streamed (--blocks_to_swap)")
                    || e.getMessage().startsWith("blocks.4.ffn.0.weight is streamed (--blocks_to_swap)"), e.getMessage());
        }
    }

    @Test
    void refusesSwappingEveryBlock() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> load(fiveBlocks,
                ComputePrecision.FP32, Quantization.NONE, true, new BlockSwap(5, 2)));
        assertEquals("--blocks_to_swap 5 with --block_swap_ring_size 2: expected 0 to 4 blocks (this model has 5; musubi's"
                + " limit is blocks − 1) and at least 2 slots", e.getMessage());
    }

    private static void assertSameRun(SafeTensors checkpoint, ComputePrecision precision, Quantization quantization,
                                      boolean dequantizeAtLoad, boolean checkpointing, BlockSwap swap) {
        String what = precision + " " + quantization + (checkpointing ? " checkpointed" : "");
        List<float[]> resident = RESIDENT.computeIfAbsent(checkpoint.path() + " " + what, k -> {
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
        assertEquals(resident.size(), swapped.size());
        for (int i = 0; i < resident.size(); i++) assertArrayEquals(resident.get(i), swapped.get(i), 0f, what + " tensor " + i);
        System.out.printf("swap bit-identity [cpu, %s, %d blocks]: loss %.9g, %d tensors equal%n", what,
                checkpoint.keys().stream().filter(k -> k.endsWith(".norm3.bias")).count(), resident.getFirst()[0],
                resident.size());
    }

    private static WanDitWeights load(SafeTensors checkpoint, ComputePrecision precision, Quantization quantization,
                                      boolean dequantizeAtLoad, BlockSwap swap) {
        return WanDitWeights.load(CPU, checkpoint, WanDitConfig.fromCheckpoint(checkpoint), precision, quantization,
                dequantizeAtLoad, swap);
    }

    /** Losses of two steps (gradScale 1 then 0.5), every accumulated LoRA gradient, and a forward's prediction. */
    private static List<float[]> run(WanDitWeights weights, ComputePrecision precision, boolean checkpointing) {
        WanDitConfig config = weights.config();
        List<Tensor> contexts = config.textDim() == 64 ? fiveBlockContexts : goldenContexts;
        List<float[]> out = new ArrayList<>();
        try (WanDit dit = new WanDit(CPU, config, weights, precision, checkpointing); LoraNetwork lora = lora(config)) {
            out.add(CPU.toFloats(dit.lossAndBackward(xt, timesteps, contexts, target, lora, 1f)));
            out.add(CPU.toFloats(dit.lossAndBackward(xt, timesteps, contexts, target, lora, 0.5f)));
            for (LoraModule m : lora.modules()) {
                out.add(CPU.toFloats(m.dDown()));
                out.add(CPU.toFloats(m.dUp()));
            }
            out.add(CPU.toFloats(dit.forward(xt, timesteps, contexts, lora)));
        }
        return out;
    }

    /** Rank-4 LoRA with random down and up (a zero up, musubi's init, would leave every down gradient zero). */
    private static LoraNetwork lora(WanDitConfig config) {
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
        return LoraNetwork.fromWeights(CPU, config, modules, "random");
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
