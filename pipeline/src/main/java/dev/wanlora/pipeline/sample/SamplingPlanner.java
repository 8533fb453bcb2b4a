package dev.wanlora.pipeline.sample;

import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.umt5.UmT5Tokenizer;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The inputs of {@link SamplingMemoryPlan} from what a sampling run knows before loading anything: the prompts (their
 * latent shapes and distinct texts), the {@link SampleModels} (umT5's sizes, the VAE decoder's bytes, read by
 * {@link SampleModels#check}), the DiT's settings and the largest LoRA. {@code wanlora sample} plans with it, and a
 * training run with --sample_prompts through {@link TrainSamplingPlan}.
 */
public final class SamplingPlanner {
    private SamplingPlanner() {}

    /** The DiT as the run loads it. {@code keepsFp8Codes}: fp8 weights stay codes + scales on the device (the GPU). */
    public record Dit(WanDitConfig config, ComputePrecision precision, WanDitWeights.Quantization quantization,
                      boolean keepsFp8Codes, DType checkpointDType, int swapSlots) {}

    /**
     * The plan's settings.
     *
     * @param modelDType     the dtype umT5 and the VAE run in (BF16 on the GPU, F32 on the CPU backend)
     * @param loraParameters the largest LoRA's parameter count (0: none)
     * @param loraRank       the largest LoRA rank (0: none)
     * @param others         the caller's own categories (CUDA runtime, allocation margin), present in every phase
     */
    public static SamplingMemoryPlan.Settings settings(Dit dit, List<SamplePrompt> prompts, SampleModels models,
                                                       DType modelDType, long loraParameters, int loraRank,
                                                       List<MemoryPlan.Item> others) {
        List<int[]> shapes = new ArrayList<>();
        long decoderWork = 0;
        Set<String> texts = new LinkedHashSet<>();
        int steps = 1, contextsPerSample = 1;
        for (SamplePrompt p : prompts) {
            steps = Math.max(steps, p.sampleSteps());
            if (p.cfgScale() != 1.0) contextsPerSample = 2;
            long[] s = p.latentShape();
            shapes.add(new int[] {(int) s[1], (int) s[2], (int) s[3]});
            decoderWork = Math.max(decoderWork, models.decoderWorkBytes((int) s[2], (int) s[3], modelDType));
            texts.add(p.prompt());
            if (p.cfgScale() != 1.0) texts.add(p.negativePromptOrDefault());
        }
        var ditSettings = SamplingMemoryPlan.ditSettings(dit.config(), dit.precision(), dit.quantization(),
                dit.keepsFp8Codes(), dit.checkpointDType(), shapes, loraRank, dit.swapSlots());
        // each distinct text keeps at most 512 rows (the tokenizer's length; musubi trims to the real count)
        return new SamplingMemoryPlan.Settings(ditSettings, loraParameters,
                models.textEncoderPlan(modelDType, BlockStreamer.DEFAULT_SLOTS), (long) texts.size() * UmT5Tokenizer.TEXT_LENGTH,
                steps, contextsPerSample, models.decoderWeightBytes(modelDType), decoderWork, others);
    }
}
