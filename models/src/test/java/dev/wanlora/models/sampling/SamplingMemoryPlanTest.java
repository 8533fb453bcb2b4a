package dev.wanlora.models.sampling;

import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.umt5.UmT5Config;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import dev.wanlora.models.wan.WanMemoryPlan;
import dev.wanlora.models.wan.vae.WanVae;
import dev.wanlora.models.wan.vae.WanVaeConfig;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.OptionalInt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The sampling memory plan at the release sizes: 14B DiT, umT5-XXL, the Wan 2.1 VAE, 832×480×81. */
class SamplingMemoryPlanTest {

    private static final long GIB = 1L << 30;
    /** 832×480×81: 21 latent frames of 60×104. */
    private static final List<int[]> SHAPES = List.of(new int[] {21, 60, 104}, new int[] {1, 32, 32});

    private static SamplingMemoryPlan.Settings settings(boolean fp8T5, Quantization q, int loraRank) {
        WanDitConfig c = WanDitConfig.t2v14B();
        WanMemoryPlan.Settings dit = SamplingMemoryPlan.ditSettings(c, ComputePrecision.BF16_MUSUBI, q, true, DType.BF16,
                SHAPES, loraRank, 2);
        long loraParams = loraRank == 0 ? 0 : loraRank * 40L * (8 * (5120 + 5120) + 2 * (5120 + 13824));
        WanVaeConfig vae = WanVaeConfig.wan21();
        long decoderWeights = 100_000_000L; // stands in for the decoder's parameter bytes (read from --vae in the CLI)
        return new SamplingMemoryPlan.Settings(dit, loraParams,
                new SamplingMemoryPlan.TextEncoder(UmT5Config.xxl(), DType.BF16, fp8T5, 2), 2 * 120, 20, 2,
                decoderWeights, WanVae.decodeWorkingBytes(vae, 60, 104, DType.BF16),
                List.of(new MemoryPlan.Item("CUDA runtime", WanMemoryPlan.ESTIMATED_CUDA_RUNTIME_BYTES, "estimated")));
    }

    @Test
    void residentUmT5IsItsParameters() {
        // every layer resident: embedding + 24 layers + final norm = the parameter count, in bf16 = 10.58 GiB (the
        // brief's measured 10.6 GiB); with --fp8_t5: the bf16 embedding (1.96 GiB), fp8 Linears (4.31 GiB), bf16 norms
        // and bias tables, fp32 block scales (1/64 of the Linears × 4 bytes = 0.27 GiB) = 6.54 GiB (measured: 6.6 GiB)
        UmT5Config c = UmT5Config.xxl();
        long bf16 = SamplingMemoryPlan.textEncoderItems(new SamplingMemoryPlan.TextEncoder(c, DType.BF16, false, 2), 0)
                .getFirst().bytes();
        assertEquals(2 * c.parameterCount(), bf16);
        long fp8 = SamplingMemoryPlan.textEncoderItems(new SamplingMemoryPlan.TextEncoder(c, DType.BF16, true, 2), 0)
                .getFirst().bytes();
        long linears = 24L * (4L * 4096 * 4096 + 3L * 4096 * 10240);
        long rest = c.parameterCount() - linears;
        assertEquals(2 * rest + linears + linears / 64 * 4, fp8);
        assertEquals(10.58, bf16 / (double) GIB, 0.01);
        assertEquals(6.54, fp8 / (double) GIB, 0.01);
    }

    @Test
    void umT5StreamsJustEnoughLayersToFit() {
        SamplingMemoryPlan.Settings s = settings(false, Quantization.FP8_SCALED, 32);
        // resident it needs ~11.5 GiB with its buffers and the runtime: fits 12G, not 8G
        assertEquals(OptionalInt.of(0), SamplingMemoryPlan.smallestFittingT5Streaming(s, 12 * GIB));
        OptionalInt n = SamplingMemoryPlan.smallestFittingT5Streaming(s, 8 * GIB);
        assertTrue(n.isPresent() && n.getAsInt() > 0 && n.getAsInt() < 24, "streamed layers " + n);
        assertTrue(SamplingMemoryPlan.encodePlan(s, n.getAsInt()).fits(8 * GIB));
        assertFalse(SamplingMemoryPlan.encodePlan(s, n.getAsInt() - 1).fits(8 * GIB));
        // all 24 streamed: the embedding (1.96 GiB), 2 slots of 368 MiB, buffers: fits 4 GiB
        MemoryPlan all = SamplingMemoryPlan.encodePlan(s, 24);
        assertEquals(2 * dev.wanlora.models.umt5.UmT5Weights.streamedLayout(UmT5Config.xxl(), DType.BF16, false).sizeBytes(),
                all.bytesOf(SamplingMemoryPlan.T5_SLOTS));
        assertTrue(all.fits(4 * GIB), all.format(4 * GIB).toString());
        all.format(4 * GIB).forEach(System.out::println);
    }

    @Test
    void phasesAndSwapUnder24G() {
        SamplingMemoryPlan.Settings s = settings(false, Quantization.FP8_SCALED, 32);
        long budget = 24 * GIB;
        OptionalInt swap = SamplingMemoryPlan.smallestFittingSwap(s, budget);
        assertTrue(swap.isPresent(), "some --blocks_to_swap fits 24G");
        int t5 = SamplingMemoryPlan.smallestFittingT5Streaming(s, budget).orElseThrow();
        SamplingMemoryPlan.Phases p = SamplingMemoryPlan.plan(s, new SamplingMemoryPlan.Choice(swap.getAsInt(), t5, false,
                DenoisingLoop.CfgMode.TWO_BATCH_1));
        assertTrue(p.fits(budget));
        p.format(budget).forEach(System.out::println);
        if (swap.getAsInt() > 0) {
            assertFalse(SamplingMemoryPlan.plan(s, new SamplingMemoryPlan.Choice(swap.getAsInt() - 1, t5, false,
                    DenoisingLoop.CfgMode.TWO_BATCH_1)).fits(budget));
        }
        // the denoise phase holds the activations, the decode phase the decoder's buffers, never both
        assertEquals(0, p.denoise().bytesOf(SamplingMemoryPlan.DECODER_WORK));
        assertEquals(0, p.decode().bytesOf(SamplingMemoryPlan.ACTIVATIONS));
        long act = WanDitActivations.sizeBytes(WanDitConfig.t2v14B(), ComputePrecision.BF16_MUSUBI,
                WanDitActivations.Key.forwardOnly(1, 21, 60, 104, 32));
        assertEquals(act, p.denoise().bytesOf(SamplingMemoryPlan.ACTIVATIONS));
        assertEquals(p.peakBytes(), Math.max(p.encode().totalBytes(), Math.max(p.denoise().totalBytes(), p.decode().totalBytes())));
        // the DiT's items are WanMemoryPlan's for the same swap count
        MemoryPlan dit = WanMemoryPlan.plan(s.dit(), swap.getAsInt());
        assertEquals(dit.bytesOf(WanMemoryPlan.WEIGHTS), p.denoise().bytesOf(WanMemoryPlan.WEIGHTS));
        assertEquals(dit.bytesOf(WanMemoryPlan.SWAP_SLOTS), p.decode().bytesOf(WanMemoryPlan.SWAP_SLOTS));
    }

    @Test
    void duringTrainingAddsTheLargerOfActivationsAndDecode() {
        SamplingMemoryPlan.Settings s = settings(false, Quantization.NONE, 16);
        MemoryPlan.Item item = SamplingMemoryPlan.duringTraining(s, false, DenoisingLoop.CfgMode.TWO_BATCH_1);
        long act = WanDitActivations.sizeBytes(WanDitConfig.t2v14B(), ComputePrecision.BF16_MUSUBI,
                WanDitActivations.Key.forwardOnly(1, 21, 60, 104, 16));
        long contexts = 240L * 4096 * 2;
        long time = 20L * 7 * 5120 * 4 + 4; // e (C) and e0 (6, C) fp32 per step, and the timestep
        assertEquals(contexts + s.decoderWeightBytes() + Math.max(act + time, s.decoderWorkBytes()), item.bytes());
        System.out.println(item);
    }

    @Test
    void batch2CfgIsPlannedAtBatch2AndTakenOnlyWhereItFits() {
        SamplingMemoryPlan.Settings s = settings(false, Quantization.FP8_SCALED, 32);
        WanDitConfig c = WanDitConfig.t2v14B();
        long batch1 = WanDitActivations.sizeBytes(c, ComputePrecision.BF16_MUSUBI, WanDitActivations.Key.forwardOnly(1, 21, 60, 104, 32));
        long batch2 = WanDitActivations.sizeBytes(c, ComputePrecision.BF16_MUSUBI, WanDitActivations.Key.forwardOnly(2, 21, 60, 104, 32));
        // every activation but the RoPE tables (L, D/2) scales with B
        long rope = 2L * 21 * 30 * 52 * 64 * 4;
        assertEquals(2 * (batch1 - rope) + rope, batch2);
        SamplingMemoryPlan.Phases two = SamplingMemoryPlan.plan(s, new SamplingMemoryPlan.Choice(20, 0, false,
                DenoisingLoop.CfgMode.TWO_BATCH_1));
        SamplingMemoryPlan.Phases one = SamplingMemoryPlan.plan(s, new SamplingMemoryPlan.Choice(20, 0, false,
                DenoisingLoop.CfgMode.BATCH_2));
        assertEquals(batch1, two.denoise().bytesOf(SamplingMemoryPlan.ACTIVATIONS));
        assertEquals(batch2, one.denoise().bytesOf(SamplingMemoryPlan.ACTIVATIONS));
        assertEquals(two.decode().totalBytes(), one.decode().totalBytes(), "the decode phase does not hold the activations");

        // the swap count is chosen at batch 1 without the cache; batch 2 comes next, then the cache, each where it fits
        long budget = 24 * GIB;
        int swap = SamplingMemoryPlan.smallestFittingSwap(s, budget).orElseThrow();
        SamplingMemoryPlan.Choice tight = SamplingMemoryPlan.choose(s, swap, 0, budget);
        long least = SamplingMemoryPlan.plan(s, new SamplingMemoryPlan.Choice(swap, 0, false,
                DenoisingLoop.CfgMode.TWO_BATCH_1)).denoise().totalBytes();
        assertEquals(least + batch2 - batch1 <= budget ? DenoisingLoop.CfgMode.BATCH_2 : DenoisingLoop.CfgMode.TWO_BATCH_1,
                tight.cfgMode(), "at the smallest swap count for 24G");
        assertTrue(SamplingMemoryPlan.plan(s, tight).fits(budget));
        // 832×480×81 at batch 2 holds ~2 × 8 GiB of activations: 24G at swap 20 keeps two batch-1 forwards
        assertEquals(new SamplingMemoryPlan.Choice(20, 0, true, DenoisingLoop.CfgMode.TWO_BATCH_1),
                SamplingMemoryPlan.choose(s, 20, 0, budget));
        assertEquals(new SamplingMemoryPlan.Choice(0, 0, true, DenoisingLoop.CfgMode.BATCH_2),
                SamplingMemoryPlan.choose(s, 0, 0, 0), "no budget: everything");
        // batch 2 comes before the cache: exactly batch 2's denoise phase fits batch 2 without the cache
        long exact = one.denoise().totalBytes();
        assertEquals(new SamplingMemoryPlan.Choice(20, 0, false, DenoisingLoop.CfgMode.BATCH_2),
                SamplingMemoryPlan.choose(s, 20, 0, exact));
        assertEquals(new SamplingMemoryPlan.Choice(20, 0, true, DenoisingLoop.CfgMode.BATCH_2),
                SamplingMemoryPlan.choose(s, 20, 0, exact + SamplingMemoryPlan.crossAttentionCacheBytes(s)));
        // a budget just under batch 2 at swap 20: two batch-1 forwards, with the cache when that still fits
        long justUnder = exact - 1;
        SamplingMemoryPlan.Choice under = SamplingMemoryPlan.choose(s, 20, 0, justUnder);
        assertEquals(DenoisingLoop.CfgMode.TWO_BATCH_1, under.cfgMode());
        assertEquals(two.denoise().totalBytes() + SamplingMemoryPlan.crossAttentionCacheBytes(s) <= justUnder,
                under.cachesCrossAttention());
        one.format(budget).forEach(System.out::println);
    }

    /**
     * Issue 10's last case: 14B fp8_scaled at 384×384×45 (12 latent frames of 48×48) with --blocks_to_swap 10 under
     * --max_vram 24G: batch-2 CFG (3.0 GiB of activations) and the k/v cache fit, at a peak of 17.5 GiB.
     */
    @Test
    void theIssuesSwap10SampleUnder24G() {
        SamplingMemoryPlan.Settings base = settings(false, Quantization.FP8_SCALED, 32);
        WanMemoryPlan.Settings dit = SamplingMemoryPlan.ditSettings(WanDitConfig.t2v14B(), ComputePrecision.BF16_MUSUBI,
                Quantization.FP8_SCALED, true, DType.BF16, List.of(new int[] {12, 48, 48}), 32, 2);
        SamplingMemoryPlan.Settings s = new SamplingMemoryPlan.Settings(dit, base.loraParameters(), base.textEncoder(),
                2 * 512, 20, 2, base.decoderWeightBytes(), WanVae.decodeWorkingBytes(WanVaeConfig.wan21(), 48, 48,
                DType.BF16), base.others());
        long budget = 24 * GIB;
        int t5 = SamplingMemoryPlan.smallestFittingT5Streaming(s, budget).orElseThrow();
        SamplingMemoryPlan.Choice choice = SamplingMemoryPlan.choose(s, 10, t5, budget);
        SamplingMemoryPlan.Phases p = SamplingMemoryPlan.plan(s, choice);
        System.out.println("14B fp8_scaled 384x384x45, --blocks_to_swap 10, --max_vram 24G: " + choice);
        p.format(budget).forEach(System.out::println);
        assertEquals(new SamplingMemoryPlan.Choice(10, 0, true, DenoisingLoop.CfgMode.BATCH_2), choice);
        assertTrue(p.fits(budget));
    }

    @Test
    void withoutCfgThereIsNoBatch2() {
        SamplingMemoryPlan.Settings cfg = settings(false, Quantization.NONE, 0);
        SamplingMemoryPlan.Settings noCfg = new SamplingMemoryPlan.Settings(cfg.dit(), 0, cfg.textEncoder(), 120, 20, 1,
                cfg.decoderWeightBytes(), cfg.decoderWorkBytes(), cfg.others());
        assertEquals(DenoisingLoop.CfgMode.TWO_BATCH_1, SamplingMemoryPlan.choose(noCfg, 0, 0, 0).cfgMode());
        long batch1 = WanDitActivations.sizeBytes(WanDitConfig.t2v14B(), ComputePrecision.BF16_MUSUBI,
                WanDitActivations.Key.forwardOnly(1, 21, 60, 104, 0));
        assertEquals(batch1, SamplingMemoryPlan.plan(noCfg, new SamplingMemoryPlan.Choice(0, 0, false,
                DenoisingLoop.CfgMode.BATCH_2)).denoise().bytesOf(SamplingMemoryPlan.ACTIVATIONS));
    }

    @Test
    void encodeBuffersByHand() {
        // a tiny encoder, f32, L = 4: f32 ids/mask/stats 3·4 + buckets 7 = 19 floats; residual, normed, projection and
        // output 4·(4·8); q, k, v, attention 4·(4·8); bias 2·4·4; gate, hidden 2·(4·16): 128 + 128 + 32 + 128 = 416
        UmT5Config c = new UmT5Config(10, 8, 8, 16, 2, 1, 32, 128);
        assertEquals((19 + 416) * 4L, SamplingMemoryPlan.encodeWorkingBytes(c, DType.F32, false, 4));
        // fp8 adds the largest Linear dequantized: 16·8 floats
        assertEquals((19 + 416 + 128) * 4L, SamplingMemoryPlan.encodeWorkingBytes(c, DType.F32, true, 4));
    }
}
