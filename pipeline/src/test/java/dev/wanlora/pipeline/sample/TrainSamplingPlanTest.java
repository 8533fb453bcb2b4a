package dev.wanlora.pipeline.sample;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.sampling.DenoisingLoop;
import dev.wanlora.models.sampling.LatentDecoder;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.sampling.TextEncoder;
import dev.wanlora.models.umt5.UmT5Config;
import dev.wanlora.models.umt5.UmT5Weights;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.vae.WanVae;
import dev.wanlora.models.wan.vae.WanVaeConfig;
import dev.wanlora.pipeline.UserError;
import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A training run's samples in its memory plan at the release sizes, plan only (no weights): the 14B DiT, umT5-XXL in
 * bf16, the Wan 2.1 VAE, prompts at 832×480×81 and a still, rank 32.
 */
class TrainSamplingPlanTest {

    private static final long GIB = 1L << 30;

    /** umT5-XXL and the Wan 2.1 VAE as their checkpoints' shapes give them, without files; records the streaming set. */
    private static final class ReleaseModels implements SampleModels {
        UmT5Weights.Streaming streaming = UmT5Weights.Streaming.NONE;

        @Override public TextEncoder openTextEncoder(Backend backend, int dim) { throw new UnsupportedOperationException(); }

        @Override public LatentDecoder openDecoder(Backend backend) { throw new UnsupportedOperationException(); }

        @Override public long decoderWeightBytes(DType dtype) { return 73_000_000L * dtype.sizeBytes(); }

        @Override public long decoderWorkBytes(int h, int w, DType dtype) {
            return WanVae.decodeWorkingBytes(WanVaeConfig.wan21(), h, w, dtype);
        }

        @Override public SamplingMemoryPlan.TextEncoder textEncoderPlan(DType dtype, int slots) {
            return new SamplingMemoryPlan.TextEncoder(UmT5Config.xxl(), dtype, false, slots);
        }

        @Override public void streamTextEncoder(UmT5Weights.Streaming s) { streaming = s; }
    }

    private static final List<SamplePrompt> PROMPTS = List.of(
            SamplePromptFile.fromCommandLine("a fox in the snow --w 832 --h 480 --f 81 --d 1"),
            SamplePromptFile.fromCommandLine("a still cat --w 512 --h 512 --d 2 --l 1.0"));

    private static TrainSamplingPlan plan(ReleaseModels models) {
        return TrainSamplingPlan.of(PROMPTS, models, WanDitConfig.t2v14B(), ComputePrecision.BF16_MUSUBI, 32);
    }

    @Test
    void theTrainingItemIsSamplingMemoryPlansDuringTraining() {
        ReleaseModels models = new ReleaseModels();
        MemoryPlan.Item item = plan(models).memoryItem();
        // 832×480×81: 21 latent frames of 60×104; the forward-only activations of it outweigh the VAE's decode buffers
        long act = WanDitActivations.sizeBytes(WanDitConfig.t2v14B(), ComputePrecision.BF16_MUSUBI,
                WanDitActivations.Key.forwardOnly(1, 21, 60, 104, 32));
        long decode = WanVae.decodeWorkingBytes(WanVaeConfig.wan21(), 60, 104, DType.BF16);
        long time = 20L * 7 * 5120 * 4 + 4; // 20 steps of e and e0, fp32, and the timestep
        long contexts = 3L * 512 * 4096 * 2; // two prompts and the negative prompt, 512 bf16 rows each at most
        assertTrue(act + time > decode, act + " " + decode);
        assertEquals(contexts + 73_000_000L * 2 + act + time, item.bytes());
        assertEquals("sampling", item.category());
        System.out.println(item);
    }

    @Test
    void umT5StreamsJustEnoughLayersForTheBudget() {
        ReleaseModels models = new ReleaseModels();
        StringWriter text = new StringWriter();
        plan(models).planPromptEncoding(null, 24 * GIB, "24.00 GiB (--max_vram 24G)", false, new PrintWriter(text, true));
        assertEquals(0, models.streaming.layers(), text.toString()); // 10.6 GiB resident fits 24G
        assertTrue(text.toString().startsWith("memory plan (sampling's prompt encoding, before the DiT loads):"), text.toString());

        text = new StringWriter();
        plan(models).planPromptEncoding(null, 6 * GIB, "6.00 GiB (--max_vram 6G)", false, new PrintWriter(text, true));
        int n = models.streaming.layers();
        assertTrue(n > 0 && n < 24, "streamed " + n);
        assertEquals(2, models.streaming.slots());
        assertTrue(text.toString().contains("; umT5 streams " + n + " of its 24 layers to fit the budget):"), text.toString());
        assertTrue(text.toString().contains(", fits"), text.toString());
        System.out.print(text);

        UserError e = assertThrows(UserError.class, () -> plan(new ReleaseModels()).planPromptEncoding(null, GIB,
                "1.00 GiB (--max_vram 1G)", false, new PrintWriter(new StringWriter())));
        // every layer streamed still holds the bf16 token embedding (256384 × 4096: 1.96 GiB), two layer slots (2 × 368
        // MiB) and the encode buffers (368 MiB): 3.05 GiB
        assertTrue(e.getMessage().matches("memory plan: encoding the sample prompts needs 3\\.05 GiB even with every umT5"
                + " layer streamed, over the budget of 1\\.00 GiB \\(--max_vram 1G\\); add --fp8_t5 or raise --max_vram"),
                e.getMessage());
        UserError fp8 = assertThrows(UserError.class, () -> plan(new ReleaseModels()).planPromptEncoding(null, GIB,
                "1.00 GiB (--max_vram 1G)", true, new PrintWriter(new StringWriter())));
        assertTrue(fp8.getMessage().endsWith("; raise --max_vram, or train without --sample_prompts"), fp8.getMessage());
    }

    @Test
    void theCrossAttentionCacheIsTakenOnlyWhereItFits() {
        TrainSamplingPlan p = plan(new ReleaseModels());
        // CFG on the first prompt: prompt and negative prompt, 40 blocks × 2 × 512 × 5120 bf16 each = 800 MiB
        assertEquals(2L * 40 * 2 * 512 * 5120 * 2, p.crossAttentionCacheBytes());
        DenoisingLoop.CfgMode two = DenoisingLoop.CfgMode.TWO_BATCH_1;
        assertTrue(p.fitsCrossAttentionCache(20 * GIB, 0, two), "no budget");
        assertTrue(p.fitsCrossAttentionCache(20 * GIB, 24 * GIB, two));
        assertTrue(p.fitsCrossAttentionCache(24 * GIB - p.crossAttentionCacheBytes(), 24 * GIB, two));
        assertFalse(p.fitsCrossAttentionCache(24 * GIB - p.crossAttentionCacheBytes() + 1, 24 * GIB, two));
    }

    @Test
    void batch2CfgIsTakenOnlyWhereItFits() {
        TrainSamplingPlan p = plan(new ReleaseModels());
        assertEquals(DenoisingLoop.CfgMode.BATCH_2, p.cfgMode(20 * GIB, 0), "no budget");
        assertEquals(DenoisingLoop.CfgMode.BATCH_2, p.cfgMode(GIB, 24 * GIB));
        // the training plan's sampling item counts batch 1; batch 2 adds its second row's activations (less what the
        // decode side already reserves), so a plan at the budget keeps two batch-1 forwards
        assertEquals(DenoisingLoop.CfgMode.TWO_BATCH_1, p.cfgMode(24 * GIB, 24 * GIB));
        long extra = WanDitActivations.sizeBytes(WanDitConfig.t2v14B(), ComputePrecision.BF16_MUSUBI,
                WanDitActivations.Key.forwardOnly(2, 21, 60, 104, 32)) - WanDitActivations.sizeBytes(WanDitConfig.t2v14B(),
                ComputePrecision.BF16_MUSUBI, WanDitActivations.Key.forwardOnly(1, 21, 60, 104, 32));
        assertEquals(DenoisingLoop.CfgMode.BATCH_2, p.cfgMode(24 * GIB - extra, 24 * GIB));
        assertEquals(DenoisingLoop.CfgMode.TWO_BATCH_1, p.cfgMode(24 * GIB - extra + 1, 24 * GIB));
        DenoisingLoop.CfgMode roomy = p.cfgMode(GIB, 24 * GIB);
        assertTrue(p.fitsCrossAttentionCache(GIB, 24 * GIB, roomy));
    }
}
