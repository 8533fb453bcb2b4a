package dev.wanlora.pipeline.train;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.pipeline.sample.SampleModels;
import dev.wanlora.pipeline.sample.SamplePrompt;
import dev.wanlora.pipeline.sample.SamplePromptFile;
import dev.wanlora.pipeline.sample.SampleNames;
import dev.wanlora.pipeline.sample.SampleRunner;
import dev.wanlora.pipeline.sample.TrainSamplingPlan;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.sampling.DenoisingLoop;
import dev.wanlora.models.sampling.FlowSolver;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitConfig;

import java.io.PrintWriter;
import java.time.LocalDateTime;
import java.util.List;
import java.util.Locale;

/**
 * Samples during training (spec §10, musubi's {@code sample_images}): when (musubi's {@code should_sample_images}:
 * step 0 only with --sample_at_first; after a step when steps % --sample_every_n_steps == 0; after an epoch when
 * epoch % --sample_every_n_epochs == 0), and the phase itself through {@link SampleRunner}. Prompts are encoded
 * once before the DiT loads. Sampling reads the LoRA and draws its noise from the prompt's seed, so training's
 * random state, weights and optimizer are untouched: a run with samples trains exactly as one without.
 */
final class TrainSampling implements AutoCloseable {

    private final RunSettings.Samples settings;
    private final RunSettings.Output output;
    private final List<SamplePrompt> prompts;
    private final SampleModels models;
    private final FlowSolver.Kind solver;
    private SampleRunner runner;
    private TrainSamplingPlan plan;

    private TrainSampling(RunSettings.Samples settings, RunSettings.Output output, List<SamplePrompt> prompts,
                          SampleModels models, FlowSolver.Kind solver) {
        this.settings = settings;
        this.output = output;
        this.prompts = prompts;
        this.models = models;
        this.solver = solver;
    }

    /** The run's sampling, or null when no samples are asked for; reads and checks the prompts and the models. */
    static TrainSampling create(RunSettings.Samples s, RunSettings.Output output, SampleModels models) {
        if (!s.isAsked()) return null;
        List<SamplePrompt> prompts = SamplePromptFile.read(s.prompts());
        FlowSolver.Kind solver;
        try {
            solver = FlowSolver.Kind.parse(s.solver());
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        if (s.fps() < 1 || s.fps() > 240) throw new UserError("--sample_fps " + s.fps() + ": expected 1..240, e.g. 16");
        SampleRunner.checkSchedules(prompts, solver, "--sample_prompts " + s.prompts());
        models.check();
        return new TrainSampling(s, output, prompts, models, solver);
    }

    /**
     * Encodes the prompts (before the DiT loads, as musubi does) and frees the text encoder: umT5 streams as many layers
     * as the budget needs ({@link TrainSamplingPlan#planPromptEncoding}), and each sample keeps its texts'
     * cross-attention k/v where the admitted training plan ({@code memory}) leaves room for them.
     */
    void prepare(Backend backend, int textDim, RunMemory memory, PrintWriter out) {
        planEncoding(backend.device(), memory, out);
        DenoisingLoop.CfgMode cfgMode = plan.cfgMode(memory.plannedBytes(), memory.budget());
        boolean caches = plan.fitsCrossAttentionCache(memory.plannedBytes(), memory.budget(), cfgMode);
        if (prompts.stream().anyMatch(p -> p.cfgScale() != 1.0)) {
            out.printf(Locale.ROOT, "sampling: CFG runs %s%s%n", cfgMode.describe(), cfgMode == DenoisingLoop.CfgMode.BATCH_2
                    ? "" : ": batch 2 exceeds the budget");
        }
        out.printf(Locale.ROOT, "sampling: cross-attention k/v of each sample's texts (%s) %s%n",
                MemoryPlan.formatBytes(plan.crossAttentionCacheBytes()), caches ? "kept over its steps"
                        : "recomputed every step: keeping them exceeds the budget");
        runner = SampleRunner.prepare(backend, prompts, models, new SampleRunner.Settings(solver, settings.fps(),
                output.dir(), output.names().name(), caches, cfgMode), textDim, out, false);
    }

    /**
     * The prompt encoding's plan under the admitted training plan {@code memory}: printed, umT5's streaming set, a
     * budget even every streamed layer exceeds refused with one line. {@link #prepare} starts with it; --dry_run
     * stops after it (device null: no backend is open, the CUDA runtime is estimated as the training plan estimates it).
     */
    void planEncoding(DeviceFacts device, RunMemory memory, PrintWriter out) {
        if (device == null) {
            plan.planPromptEncodingWithoutDevice(memory.budget(), memory.budgetSource(), settings.fp8T5(), out);
        } else {
            plan.planPromptEncoding(device, memory.budget(), memory.budgetSource(), settings.fp8T5(), out);
        }
    }

    /**
     * The sampling phase in the memory plan ({@link TrainSamplingPlan#memoryItem}): the encoded prompts and the VAE
     * decoder's weights, and the larger of the forward-only activations of the largest prompt with the per-sample
     * constants and the decoder's working memory (each freed before the other is made).
     */
    MemoryPlan.Item memoryItem(WanDitConfig config, ComputePrecision precision, int loraRank) {
        plan = TrainSamplingPlan.of(prompts, models, config, precision, loraRank);
        return plan.memoryItem();
    }

    boolean atFirst() { return settings.atFirst(); }

    boolean afterStep(long step) { return settings.everyNSteps() != null && step % settings.everyNSteps() == 0; }

    boolean afterEpoch(int epoch) { return settings.everyNEpochs() != null && epoch % settings.everyNEpochs() == 0; }

    /**
     * One sampling phase after global step {@code step} (epoch files when {@code epoch} is not null); returns its
     * seconds. The forward-only activation plans are freed afterwards, so training has its memory back.
     */
    double run(WanDit dit, LoraNetwork lora, long step, Integer epoch, TrainLog log, PrintWriter out) {
        long start = System.nanoTime();
        LocalDateTime time = LocalDateTime.now();
        runner.sampleAll(dit, lora, (i, seed) -> epoch != null ? SampleNames.epochStem(output.names().name(), epoch, i, time, seed)
                : SampleNames.stepStem(output.names().name(), step, i, time, seed), (tag, media) -> log.image(tag, step, media),
                "sample/");
        dit.releaseForwardOnlyPlans();
        double seconds = (System.nanoTime() - start) / 1e9;
        log.sampling(step, seconds);
        out.printf(Locale.ROOT, "sampling: %d sample(s) %s in %.1f s%n", prompts.size(),
                epoch != null ? "after epoch " + epoch : "at step " + step, seconds);
        out.flush();
        return seconds;
    }

    @Override
    public void close() {
        if (runner != null) runner.close();
    }
}
