package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The plan's arithmetic by hand for the 14B model, and against what the tiny model really allocates. */
class WanMemoryPlanTest {
    private static final long GIB = 1L << 30;

    /** 14B, 384×208 px × 45 frames → latent F = (45 − 1)/4 + 1 = 12, H = 208/8 = 26, W = 384/8 = 48: L = 12·13·24 = 3744. */
    private static WanMemoryPlan.Settings wan14B(int frames, int height, int width, List<MemoryPlan.Item> others) {
        return new WanMemoryPlan.Settings(WanDitConfig.t2v14B(), ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, true,
                DType.BF16, List.of(new WanDitActivations.Key(1, frames, height, width, 32, false)), OptimizerConfig.adamw8bit(), 2,
                others);
    }

    @Test
    void savedAttentionOutputsAt384x208x45ByHand() {
        WanMemoryPlan.Settings off = wan14B(12, 26, 48, List.of());
        WanDitActivations.Key k = off.shapes().getFirst();
        WanMemoryPlan.Settings on = new WanMemoryPlan.Settings(off.config(), off.precision(), off.quantization(), true,
                DType.BF16, List.of(new WanDitActivations.Key(1, 12, 26, 48, 32, false, true)), off.optimizer(), 2, List.of());
        // per block: out (1, 3744, 5120) bf16 = 38,338,560 bytes + lse (1, 40, 3744) fp32 = 599,040; × 40 blocks
        long saved = 40 * (3744L * 5120 * 2 + 40L * 3744 * 4);
        assertEquals(1_557_504_000L, saved);
        assertEquals(saved, WanMemoryPlan.plan(on, 0).bytesOf(WanMemoryPlan.SAVED_ATTENTION));
        assertEquals(0, WanMemoryPlan.plan(off, 0).bytesOf(WanMemoryPlan.SAVED_ATTENTION));
        // the shared block state no longer holds its own output and log-sum-exp: the plan grows by 39 blocks' worth
        assertEquals(39 * (3744L * 5120 * 2 + 40L * 3744 * 4),
                WanMemoryPlan.plan(on, 0).totalBytes() - WanMemoryPlan.plan(off, 0).totalBytes());
        assertEquals(WanMemoryPlan.plan(off, 0).bytesOf(WanMemoryPlan.RECOMPUTE) - (3744L * 5120 * 2 + 40L * 3744 * 4),
                WanMemoryPlan.plan(on, 0).bytesOf(WanMemoryPlan.RECOMPUTE), k.toString());
    }

    @Test
    void wan14BAt384x208x45Rank32Fp8ScaledByHand() {
        WanMemoryPlan.Settings s = wan14B(12, 26, 48, List.of());
        // One block's Linears as fp8 codes (1 byte) + bf16 scales (O·I/64 · 2 bytes), C = 5120, Fd = 13824:
        //   8 attention: 8·(5120² + 5120·80·2) = 216,268,800; ffn.0 and ffn.2: 2·(13824·5120 + 13824·5120/64·2)
        //   = 145,981,440; together 362,250,240 bytes (345.47 MiB), every entry a multiple of 256 (no padding).
        long block = 362_250_240L;
        // Everything else in bf16: embeddings 5120·64 + 5120 (patch) + 5120·4096 + 5120 + 5120² + 5120 (text)
        //   + 5120·256 + 5120 + 5120² + 5120 (time) + 30720·5120 + 30720 (projection) + 64·5120 + 64 (head) + 2·5120
        //   = 232,719,424 elements; per block 6C + 9C + Fd + 4C + 2C = 121,344, × 40 = 4,853,760;
        //   (232,719,424 + 4,853,760)·2 = 475,146,368 bytes.
        long nonLinear = 475_146_368L;
        // LoRA: per block 8·32·(5120 + 5120) + 2·32·(5120 + 13824) = 3,833,856, × 40 = 153,354,240 parameters P;
        //   fp32 weights + gradients 8P, bf16 copies 2P, AdamW8bit codes 2P + absmax 2·4·P/256 (every tensor's size is a
        //   multiple of 256 and ≥ 4096) = 12P + P/32 = 1,845,043,200 bytes.
        long lora = 1_845_043_200L;
        // saved block inputs: 41 × 3744 × 5120 × 2 bytes; dequantization scratch: ffn's 13824 × 5120 × 2 bytes
        long saved = 1_571_880_960L;
        long scratch = 141_557_760L;
        long activations = WanDitActivations.sizeBytes(s.config(), s.precision(), s.shapes().getFirst()) - saved;

        MemoryPlan none = WanMemoryPlan.plan(s, 0);
        assertEquals(nonLinear + 40 * block, none.bytesOf(WanMemoryPlan.WEIGHTS));
        assertEquals(0, none.bytesOf(WanMemoryPlan.SWAP_SLOTS));
        assertEquals(scratch, none.bytesOf(WanMemoryPlan.DEQUANTIZATION));
        assertEquals(lora, none.bytesOf(WanMemoryPlan.LORA));
        assertEquals(saved, none.bytesOf(WanMemoryPlan.SAVED_INPUTS));
        assertEquals(activations, none.bytesOf(WanMemoryPlan.RECOMPUTE));
        long total0 = nonLinear + 40 * block + scratch + lora + saved + activations;
        assertEquals(total0, none.totalBytes());

        MemoryPlan ten = WanMemoryPlan.plan(s, 10);
        assertEquals(nonLinear + 30 * block, ten.bytesOf(WanMemoryPlan.WEIGHTS));
        assertEquals(2 * block, ten.bytesOf(WanMemoryPlan.SWAP_SLOTS));
        assertEquals(total0 - 10 * block + 2 * block, ten.totalBytes());
        assertEquals(10 * block, WanMemoryPlan.hostBytes(s, 10));
        ten.format(24 * GIB).forEach(System.out::println);

        // It fits 24 GiB unswapped (≈ 18.4 GiB). With a 16 GiB budget: T(N) = T0 + 2·block − N·block ≤ 16 GiB needs
        // N ≥ (T0 + 2·block − 16 GiB)/block = 9.26…, so auto picks 10 (musubi's reference command's count).
        assertEquals(0, WanMemoryPlan.smallestFittingSwap(s, 24 * GIB).getAsInt());
        assertEquals((long) Math.ceil((total0 + 2.0 * block - 16 * GIB) / block), 10);
        assertEquals(10, WanMemoryPlan.smallestFittingSwap(s, 16 * GIB).getAsInt());
        // One and two swapped blocks cost the ring's two slots and save less: never chosen over 0.
        assertTrue(WanMemoryPlan.plan(s, 1).totalBytes() > total0);
        assertEquals(total0, WanMemoryPlan.plan(s, 2).totalBytes());
    }

    /** Issue 14: under --fp8_base --fp8_scaled the CPU's plan said "Linears bf16", as if fp8 had been dropped. */
    @Test
    void fp8WeightsDequantizedAtLoadSaySo() {
        WanMemoryPlan.Settings gpu = wan14B(12, 26, 48, List.of());
        WanMemoryPlan.Settings cpu = new WanMemoryPlan.Settings(gpu.config(), gpu.precision(), gpu.quantization(), false,
                DType.BF16, gpu.shapes(), gpu.optimizer(), 2, List.of());
        assertTrue(String.join("\n", WanMemoryPlan.plan(gpu, 0).format(0)).contains("40 of 40 blocks' Linears fp8 + bf16 scales"));
        assertTrue(String.join("\n", WanMemoryPlan.plan(cpu, 0).format(0))
                .contains("40 of 40 blocks' Linears bf16 (fp8 values, dequantized at load)"));
    }

    @Test
    void wan14BAt832x480x81DoesNotFit24GiB() {
        // latent 21 × 60 × 104 = 32760 tokens: the saved block inputs alone are 41 × 32760 × 5120 × 2 = 12.81 GiB
        WanMemoryPlan.Settings s = wan14B(21, 60, 104, List.of());
        assertEquals(13_753_958_400L, WanMemoryPlan.plan(s, 39).bytesOf(WanMemoryPlan.SAVED_INPUTS));
        assertTrue(WanMemoryPlan.smallestFittingSwap(s, 24 * GIB).isEmpty());
        WanMemoryPlan.plan(s, 39).format(24 * GIB).forEach(System.out::println);
        // 38.12 GiB unswapped; a 32 GiB card needs N ≥ (T0 + 2·block − 32 GiB)/block = 20.1…, so 21 (22 while the
        // layout still held the LayerNorm output and its gradient, which the fused layerNormModulate made unused:
        // 2 × 32760 × 5120 × 2 B = 0.62 GiB more)
        long total0 = WanMemoryPlan.plan(s, 0).totalBytes(), block = 362_250_240L;
        assertEquals(21, (long) Math.ceil((total0 + 2.0 * block - 32 * GIB) / block));
        assertEquals(21, WanMemoryPlan.smallestFittingSwap(s, 32 * GIB).getAsInt());
    }

    /** What wanlora train --dry_run adds for a GPU (no GPU touched): batch inputs, attention workspace, runtime, margin. */
    private static List<MemoryPlan.Item> dryRunOthers(int frames, int height, int width) {
        long tokens = (long) frames * (height / 2) * (width / 2);
        long latent = 16L * frames * height * width;
        // BatchTensors: x0, x_t, target fp32 and noise bf16 of the latent, one 512-row bf16 context (4096 wide)
        return List.of(new MemoryPlan.Item("batch inputs", latent * (3 * 4 + 2) + 512L * 4096 * 2, ""),
                new MemoryPlan.Item("attention workspace", DeviceFacts.attentionWorkspaceBytes(1, 40, tokens), ""),
                new MemoryPlan.Item("CUDA runtime", WanMemoryPlan.ESTIMATED_CUDA_RUNTIME_BYTES, ""),
                new MemoryPlan.Item("allocation margin", WanMemoryPlan.ALLOCATION_MARGIN_BYTES, ""));
    }

    @Test
    void wan14BAt832x480x81Fits24GiBWithActivationOffload() {
        // Issue 12's shape: 32760 tokens, fp8_scaled, rank 32, checkpointing, driver overheads counted. No swap count
        // alone fits (the 12.81 GiB of saved inputs stay); offloading saved inputs to the host does.
        WanMemoryPlan.Settings s = wan14B(21, 60, 104, dryRunOthers(21, 60, 104));
        assertTrue(WanMemoryPlan.smallestFittingSwap(s, 24 * GIB).isEmpty());
        WanMemoryPlan.Choice c = WanMemoryPlan.cheapestFitting(s, 24 * GIB, 64 * GIB, true);
        assertNotNull(c);
        MemoryPlan plan = WanMemoryPlan.plan(s, c);
        plan.format(24 * GIB).forEach(System.out::println);
        WanMemoryPlan.hostPlan(s, c).format(64 * GIB).forEach(System.out::println);
        assertTrue(plan.fits(24 * GIB), c.toString());
        assertTrue(c.offload().blockInputs() > 0 && c.offload().attentionOutputs() == 0, c.toString());
        // the saved inputs on the device: (41 − offloaded) resident + a ring of 2, each 32760 × 5120 × 2 bytes
        long item = 32760L * 5120 * 2;
        assertEquals((41 - c.offload().blockInputs() + 2) * item, plan.bytesOf(WanMemoryPlan.SAVED_INPUTS));
        assertEquals(c.offload().blockInputs() * item, WanMemoryPlan.hostPlan(s, c).bytesOf(WanMemoryPlan.HOST_OFFLOADED));
        // the cheapest: one fewer offloaded input or swapped block no longer fits
        if (c.offload().blockInputs() > 1) {
            assertFalse(WanMemoryPlan.plan(s, new WanMemoryPlan.Choice(c.blocksToSwap(),
                    new WanDitActivations.Offload(c.offload().blockInputs() - 1, 0, 2))).fits(24 * GIB));
        }
        assertFalse(WanMemoryPlan.plan(s, new WanMemoryPlan.Choice(c.blocksToSwap() - 1, c.offload())).fits(24 * GIB));
        // 64 GiB of host memory holds it (a 3090 machine's), 8 GiB does not: then nothing fits
        assertTrue(WanMemoryPlan.hostPlan(s, c).fits(64 * GIB));
        assertNull(WanMemoryPlan.cheapestFitting(s, 24 * GIB, 8 * GIB, true));
    }

    @Test
    void wan14BAt768x416x81Fits24GiBWithActivationOffload() {
        // latent 21 × 52 × 96: 21 · 26 · 48 = 26208 tokens
        WanMemoryPlan.Settings s = wan14B(21, 52, 96, dryRunOthers(21, 52, 96));
        WanMemoryPlan.Choice c = WanMemoryPlan.cheapestFitting(s, 24 * GIB, 64 * GIB, true);
        assertNotNull(c);
        assertTrue(WanMemoryPlan.plan(s, c).fits(24 * GIB));
        System.out.println("768x416x81 under 24 GiB: " + c + ", " + MemoryPlan.formatBytes(WanMemoryPlan.plan(s, c).totalBytes())
                + " device, " + MemoryPlan.formatBytes(WanMemoryPlan.hostPlan(s, c).totalBytes()) + " host");
    }

    @Test
    void wan14BAt384x208x45WithMusubisFlagsFits24GiB() {
        // musubi's reference: --blocks_to_swap 10 --gradient_checkpointing --fp8_base --fp8_scaled, rank 32: fits with
        // room; auto needs no swap and no offload at all
        WanMemoryPlan.Settings s = wan14B(12, 26, 48, dryRunOthers(12, 26, 48));
        assertTrue(WanMemoryPlan.plan(s, 10).fits(24 * GIB));
        assertEquals(new WanMemoryPlan.Choice(0, WanDitActivations.Offload.NONE), WanMemoryPlan.cheapestFitting(s, 24 * GIB, 0, true));
        assertEquals(0, WanMemoryPlan.hostPlan(s, WanMemoryPlan.Choice.swapping(0)).bytesOf(WanMemoryPlan.HOST_SWAPPED));
        assertEquals(10 * 362_250_240L, WanMemoryPlan.hostPlan(s, WanMemoryPlan.Choice.swapping(10)).bytesOf(WanMemoryPlan.HOST_SWAPPED));
    }

    @Test
    void everyInputShapeHasItsOwnActivations() {
        // WanDit keeps a plan per shape: two buckets cost both plans' activations
        var one = wan14B(12, 26, 48, List.of());
        var key2 = new WanDitActivations.Key(2, 1, 60, 104, 32, false);
        var two = new WanMemoryPlan.Settings(one.config(), one.precision(), one.quantization(), true, DType.BF16,
                List.of(one.shapes().getFirst(), key2), one.optimizer(), 2, List.of());
        long extra = WanDitActivations.sizeBytes(one.config(), one.precision(), key2);
        assertEquals(WanMemoryPlan.plan(one, 0).totalBytes() + extra, WanMemoryPlan.plan(two, 0).totalBytes());
        // 41 × (2, 1560, 5120) bf16 more saved inputs: 1560 = 1·30·52 tokens
        assertEquals(1_571_880_960L + 41L * 2 * 1560 * 5120 * 2, WanMemoryPlan.plan(two, 0).bytesOf(WanMemoryPlan.SAVED_INPUTS));
    }

    @Test
    void callerCategoriesAddUp() {
        var others = List.of(new MemoryPlan.Item("CUDA runtime", 512L << 20, "measured"));
        assertEquals(WanMemoryPlan.plan(wan14B(12, 26, 48, List.of()), 5).totalBytes() + (512L << 20),
                WanMemoryPlan.plan(wan14B(12, 26, 48, others), 5).totalBytes());
    }

    @Test
    void weightsAndSlotsEqualWhatTheTinyModelHolds() {
        CpuBackend cpu = new CpuBackend();
        try (SafeTensors checkpoint = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"),
                SafeTensors.DIT_PREFIXES)) {
            WanDitConfig config = WanDitConfig.fromCheckpoint(checkpoint);
            for (Quantization q : List.of(Quantization.NONE, Quantization.FP8_SCALED)) {
                for (int n : new int[] {0, 1}) {
                    var s = new WanMemoryPlan.Settings(config, ComputePrecision.BF16_MUSUBI, q, true, DType.BF16,
                            List.of(new WanDitActivations.Key(1, 3, 8, 12, 4, false)), OptimizerConfig.adamw(), 2, List.of());
                    MemoryPlan plan = WanMemoryPlan.plan(s, n);
                    try (WanDitWeights w = WanDitWeights.load(cpu, checkpoint, config, ComputePrecision.BF16_MUSUBI, q, false,
                            new BlockSwap(n, 2))) {
                        assertEquals(plan.bytesOf(WanMemoryPlan.WEIGHTS) + plan.bytesOf(WanMemoryPlan.SWAP_SLOTS),
                                w.deviceBytes(), q + " swap " + n);
                        if (n > 0) assertEquals(WanMemoryPlan.hostBytes(s, n), w.streamer().hostBytes());
                    }
                }
            }
            try (LoraNetwork lora = LoraNetwork.create(cpu, config, 4, 4, 1)) {
                assertEquals(lora.numParameters(), WanMemoryPlan.loraParameters(config, 4));
            }
        }
    }
}
