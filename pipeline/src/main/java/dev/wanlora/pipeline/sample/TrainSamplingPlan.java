package dev.wanlora.pipeline.sample;

import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.sampling.DenoisingLoop;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.umt5.UmT5Weights;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanMemoryPlan;
import dev.wanlora.pipeline.UserError;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;

/**
 * A training run's samples in the run's memory plan (DESIGN.md §6, issue 10), from {@link SamplingMemoryPlan} as
 * {@code wanlora sample} plans them, in three decisions:
 * <ol>
 * <li>{@link #memoryItem}: what sampling adds beside training's plans ({@link SamplingMemoryPlan#duringTraining}:
 *     the encoded prompts, the decoder's weights, and the larger of the forward-only activations with the per-sample
 *     constants and the decode buffers), with CFG as two batch-1 forwards and without the cross-attention k/v cache,
 *     so neither batch-2 CFG nor the cache ever costs a swapped block or a refused run;</li>
 * <li>{@link #planPromptEncoding}: the prompts are encoded before the DiT loads, with nothing else on the device, so
 *     umT5 streams just enough of its layers to fit the budget alone ({@link SamplingMemoryPlan#smallestFittingT5Streaming});
 *     when even every layer streamed does not fit, the run stops before training with one line;</li>
 * <li>{@link #cfgMode} and {@link #fitsCrossAttentionCache}: after the training plan is admitted, CFG runs as one
 *     batch-2 forward, and then each sample keeps its texts' k/v, where the plan has room for them.</li>
 * </ol>
 * The plan is made as a GPU holds it (bf16 umT5, VAE and contexts), as the training plan is, also on the CPU backend.
 */
public final class TrainSamplingPlan {

    private final List<SamplePrompt> prompts;
    private final SampleModels models;
    private final SamplingPlanner.Dit dit;
    private final int loraRank;

    private TrainSamplingPlan(List<SamplePrompt> prompts, SampleModels models, SamplingPlanner.Dit dit, int loraRank) {
        this.prompts = prompts;
        this.models = models;
        this.dit = dit;
        this.loraRank = loraRank;
    }

    /**
     * The samples of a run training a rank-{@code loraRank} LoRA on a DiT of {@code config} in {@code precision};
     * {@code models} checked ({@link SampleModels#check}).
     */
    public static TrainSamplingPlan of(List<SamplePrompt> prompts, SampleModels models, WanDitConfig config,
                                       ComputePrecision precision, int loraRank) {
        // only the forward-only activations and the per-sample constants depend on the DiT here (training's plan holds
        // its weights), so its storage fields are placeholders
        return new TrainSamplingPlan(prompts, models, new SamplingPlanner.Dit(config, precision,
                WanDitWeights.Quantization.NONE, true, DType.BF16, 2), loraRank);
    }

    private SamplingMemoryPlan.Settings settings(List<MemoryPlan.Item> others) {
        // the training LoRA is in training's plan, so the sampling plan counts none
        return SamplingPlanner.settings(dit, prompts, models, DType.BF16, 0, loraRank, others);
    }

    /**
     * The "sampling" item of the training plan (CFG as two batch-1 forwards, without the k/v cache; see
     * {@link #cfgMode} and {@link #fitsCrossAttentionCache}).
     */
    public MemoryPlan.Item memoryItem() {
        return SamplingMemoryPlan.duringTraining(settings(List.of()), false, DenoisingLoop.CfgMode.TWO_BATCH_1);
    }

    /**
     * How CFG runs, in a training plan of {@code plannedBytes} (with {@link #memoryItem}) under {@code budgetBytes} (0:
     * no budget): one batch-2 forward where its activations fit (they add to the denoise side of the sampling item,
     * which may hide them under the decode side), else two batch-1 forwards; batch 1 when no prompt uses CFG.
     */
    public DenoisingLoop.CfgMode cfgMode(long plannedBytes, long budgetBytes) {
        SamplingMemoryPlan.Settings s = settings(List.of());
        if (s.contextsPerSample() == 1) return DenoisingLoop.CfgMode.TWO_BATCH_1;
        return budgetBytes <= 0 || plannedBytes + extraBytes(s, false, DenoisingLoop.CfgMode.BATCH_2) <= budgetBytes
                ? DenoisingLoop.CfgMode.BATCH_2 : DenoisingLoop.CfgMode.TWO_BATCH_1;
    }

    /**
     * Whether each sample can keep its texts' cross-attention k/v with CFG as {@code cfgMode} ({@link #cfgMode}), in a
     * training plan of {@code plannedBytes} (with {@link #memoryItem}) under {@code budgetBytes} (0: no budget, always).
     * The cache adds to the denoise side of the sampling item, which may hide it under the decode side.
     */
    public boolean fitsCrossAttentionCache(long plannedBytes, long budgetBytes, DenoisingLoop.CfgMode cfgMode) {
        return budgetBytes <= 0 || plannedBytes + extraBytes(settings(List.of()), true, cfgMode) <= budgetBytes;
    }

    /** What the sampling item grows by beyond {@link #memoryItem} with the cache and the CFG mode given. */
    private static long extraBytes(SamplingMemoryPlan.Settings s, boolean caches, DenoisingLoop.CfgMode cfgMode) {
        return SamplingMemoryPlan.duringTraining(s, caches, cfgMode).bytes()
                - SamplingMemoryPlan.duringTraining(s, false, DenoisingLoop.CfgMode.TWO_BATCH_1).bytes();
    }

    /** The k/v cache's bytes per sample (prompt, and negative prompt under CFG). */
    public long crossAttentionCacheBytes() {
        return SamplingMemoryPlan.crossAttentionCacheBytes(settings(List.of()));
    }

    /**
     * Plans the prompt encoding (the first thing on the device after the CUDA runtime), prints it, and sets umT5's
     * layer streaming to the fewest streamed layers that fit {@code budgetBytes} (0: no budget, every layer resident).
     * Nothing is planned for the demo's stand-ins.
     *
     * @param budgetSource how the budget is printed, e.g. "22.0 GiB (--max_vram 22G)"
     * @throws UserError when even every layer streamed exceeds the budget
     */
    public void planPromptEncoding(DeviceFacts device, long budgetBytes, String budgetSource, boolean hasFp8T5,
                                   PrintWriter out) {
        planPromptEncoding(encodeOthers(device), budgetBytes, budgetSource, hasFp8T5, out);
    }

    /**
     * {@link #planPromptEncoding(DeviceFacts, long, String, boolean, PrintWriter)} under --dry_run with no GPU touched:
     * the CUDA runtime estimated and the allocation margin, as the dry run's training plan counts them.
     */
    public void planPromptEncodingWithoutDevice(long budgetBytes, String budgetSource, boolean hasFp8T5, PrintWriter out) {
        planPromptEncoding(List.of(WanMemoryPlan.estimatedCudaRuntime(), WanMemoryPlan.allocationMargin()), budgetBytes,
                budgetSource, hasFp8T5, out);
    }

    private void planPromptEncoding(List<MemoryPlan.Item> others, long budgetBytes, String budgetSource, boolean hasFp8T5,
                                    PrintWriter out) {
        SamplingMemoryPlan.Settings s = settings(others);
        if (s.textEncoder() == null) return;
        int layers = s.textEncoder().config().numLayers();
        int streamed = 0;
        if (budgetBytes > 0) {
            OptionalInt fitting = SamplingMemoryPlan.smallestFittingT5Streaming(s, budgetBytes);
            if (fitting.isEmpty()) {
                throw new UserError(String.format(Locale.ROOT, "memory plan: encoding the sample prompts needs %s even with"
                                + " every umT5 layer streamed, over the budget of %s; %s", MemoryPlan.formatBytes(
                                SamplingMemoryPlan.encodePlan(s, layers).totalBytes()), budgetSource,
                        hasFp8T5 ? "raise --max_vram, or train without --sample_prompts"
                                : "add --fp8_t5 or raise --max_vram"));
            }
            streamed = fitting.getAsInt();
        }
        out.printf(Locale.ROOT, "memory plan (sampling's prompt encoding, before the DiT loads%s):%n",
                streamed == 0 ? "" : "; umT5 streams " + streamed + " of its " + layers + " layers to fit the budget");
        SamplingMemoryPlan.encodePlan(s, streamed).format(budgetBytes).forEach(out::println);
        out.flush();
        // the plan's slot count: SamplingPlanner plans BlockStreamer.DEFAULT_SLOTS
        models.streamTextEncoder(new UmT5Weights.Streaming(streamed, BlockStreamer.DEFAULT_SLOTS));
    }

    /** What is on the device while the prompts are encoded besides the encoder: as RunMemory counts it. */
    private static List<MemoryPlan.Item> encodeOthers(DeviceFacts device) {
        List<MemoryPlan.Item> items = new ArrayList<>();
        if (device != null && device.hasDeviceMemory()) {
            items.add(WanMemoryPlan.cudaRuntime(device.usedBytes()));
            items.add(WanMemoryPlan.allocationMargin());
        }
        return items;
    }
}
