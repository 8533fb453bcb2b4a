package dev.wanlora.pipeline.sample;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.sampling.DenoisingLoop;
import dev.wanlora.models.sampling.FlowSolver;
import dev.wanlora.models.sampling.LatentDecoder;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.sampling.SolverPrecision;
import dev.wanlora.models.sampling.TextEncoder;
import dev.wanlora.models.wan.WanDit;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The sampling phase musubi runs during training (spec §10), shared by {@code wanlora train} and {@code wanlora
 * sample}: {@link #prepare} encodes every distinct prompt and negative prompt once (the text encoder is closed before
 * the DiT is needed, as musubi deletes T5), then {@link #sampleAll} makes one file per prompt: seeded noise, the CFG
 * loop with the LoRA applied, the decoder, an .mp4 or .png and a TensorBoard image of the first frame.
 *
 * <p>Training's random state is not touched: the initial latent comes from the counter-based generator keyed by the
 * prompt's seed ({@code --d}; a fresh random seed when absent, as musubi draws one, and named in the file), and
 * nothing else is random.
 */
public final class SampleRunner implements AutoCloseable {

    /**
     * {@code --sample_solver} and {@code --sample_fps}; files go to {@code {outputDir}/sample/};
     * {@code cachesCrossAttention}: the memory plan has room for each sample's cross-attention k/v of its prompt and
     * negative prompt ({@link SamplingMemoryPlan#crossAttentionCacheBytes}; see {@link DenoisingLoop}); {@code cfgMode}:
     * CFG's two passes as one batch-2 forward or two batch-1 forwards, as the memory plan chose.
     */
    public record Settings(FlowSolver.Kind solver, int fps, Path outputDir, String outputName,
                           boolean cachesCrossAttention, DenoisingLoop.CfgMode cfgMode) {}

    /** Where a sample's image summary goes (TensorBoard), or nowhere. */
    public interface ImageSink {
        void image(String tag, SampleMedia media);

        ImageSink NONE = (tag, media) -> { };
    }

    /** One written sample: its file, prompt index and seed, and its frames (for a grid of several LoRAs). */
    public record Written(Path file, int promptIndex, long seed, SampleMedia media, int steps, double secondsPerStep,
                          double decodeSeconds) {}

    private final Backend backend;
    private final List<SamplePrompt> prompts;
    private final SampleModels models;
    private final Settings settings;
    private final PrintWriter out;
    private final boolean isTerminal;
    /** Contexts by raw string (musubi's cache key), on the backend. */
    private final Map<String, Tensor> contexts = new LinkedHashMap<>();

    private SampleRunner(Backend backend, List<SamplePrompt> prompts, SampleModels models, Settings settings,
                         PrintWriter out, boolean isTerminal) {
        this.backend = backend;
        this.prompts = prompts;
        this.models = models;
        this.settings = settings;
        this.out = out;
        this.isTerminal = isTerminal;
    }

    /**
     * Stops with one line for a prompt whose schedule the solver cannot run (e.g. UniPC at 80 steps with shift 14.5,
     * where musubi's scheduler fails), before any work: {@code source} names the prompts ("--sample_prompts FILE").
     */
    public static void checkSchedules(List<SamplePrompt> prompts, FlowSolver.Kind solver, String source) {
        for (SamplePrompt p : prompts) {
            try {
                FlowSolver.create(solver, p.sampleSteps(), p.discreteFlowShift(), SolverPrecision.FLOAT32);
            } catch (IllegalArgumentException e) {
                throw new UserError(source + ": prompt " + (p.index() + 1) + ": " + e.getMessage() + " (--s, --fs)", e);
            }
        }
    }

    /** Encodes every prompt and negative prompt (the DiT's text dim {@code textDim}), then closes the encoder. */
    public static SampleRunner prepare(Backend backend, List<SamplePrompt> prompts, SampleModels models,
                                       Settings settings, int textDim, PrintWriter out, boolean isTerminal) {
        SampleRunner r = new SampleRunner(backend, prompts, models, settings, out, isTerminal);
        long start = System.nanoTime();
        try (TextEncoder encoder = models.openTextEncoder(backend, textDim)) {
            for (SamplePrompt p : prompts) {
                r.contexts.computeIfAbsent(p.prompt(), encoder::encode);
                if (p.cfgScale() != 1.0) r.contexts.computeIfAbsent(p.negativePromptOrDefault(), encoder::encode);
            }
            out.printf(Locale.ROOT, "samples: %d prompt(s), %d text(s) encoded by %s in %.1f s%n", prompts.size(),
                    r.contexts.size(), encoder.describe(), (System.nanoTime() - start) / 1e9);
        } catch (RuntimeException e) {
            r.close();
            throw e;
        }
        return r;
    }

    public List<SamplePrompt> prompts() { return prompts; }

    /** Bytes of the encoded prompts kept on the backend. */
    public long contextBytes() { return contexts.values().stream().mapToLong(Tensor::sizeBytes).sum(); }

    /** How many distinct texts were encoded. */
    public int contextCount() { return contexts.size(); }

    /**
     * One sample per prompt with {@code dit} and {@code lora} (null: the base model). {@code stem} names each file
     * (index, seed → stem); {@code tagPrefix} prefixes the image summaries' tags.
     */
    public List<Written> sampleAll(WanDit dit, LoraNetwork lora, Stem stem, ImageSink images, String tagPrefix) {
        List<Written> written = new ArrayList<>();
        try (LatentDecoder decoder = models.openDecoder(backend)) {
            for (SamplePrompt p : prompts) written.add(sampleOne(dit, lora, p, decoder, stem, images, tagPrefix));
        }
        return written;
    }

    /** Names a sample's file: {@code stem(index, seed)} without extension. */
    public interface Stem {
        String of(int index, long seed);
    }

    private Written sampleOne(WanDit dit, LoraNetwork lora, SamplePrompt p, LatentDecoder decoder, Stem stem,
                              ImageSink images, String tagPrefix) {
        long seed = p.seed() != null ? p.seed() : new SecureRandom().nextLong() & 0x7FFF_FFFFL;
        long[] shape = p.latentShape();
        Shape latentShape = Shape.of(shape);
        float[] noise;
        try (Tensor x0 = backend.allocate(DType.F32, latentShape)) {
            backend.gaussianNoise(x0, seed, 0);
            noise = backend.toFloats(x0);
        }
        DenoisingLoop.Settings loop = new DenoisingLoop.Settings(p.sampleSteps(), p.discreteFlowShift(), p.cfgScale(),
                settings.solver());
        String label = String.format(Locale.ROOT, "sample %02d/%02d", p.index() + 1, prompts.size());
        double[] stepSeconds = {0};
        float[] latent = new DenoisingLoop(backend, dit, settings.cachesCrossAttention(), settings.cfgMode()).run(noise,
                latentShape, contexts.get(p.prompt()),
                loop.usesUncond() ? contexts.get(p.negativePromptOrDefault()) : null, lora, loop, SolverPrecision.FLOAT32,
                (k, n, c, u, v, next, seconds) -> {
                    stepSeconds[0] += seconds;
                    if (isTerminal) {
                        out.print("\r" + bar(label, k + 1, n, stepSeconds[0] / (k + 1)));
                        out.flush();
                    }
                });
        dit.releaseForwardOnlyPlans(); // the decode phase of the memory plan: activations freed, decoder buffers made
        long decodeStart = System.nanoTime();
        LatentDecoder.Video video = decoder.decode(latent, (int) shape[1], (int) shape[2], (int) shape[3]);
        SampleMedia media = SampleMedia.fromPixels(video.pixels(), video.frames(), video.height(), video.width());
        double decodeSeconds = (System.nanoTime() - decodeStart) / 1e9;
        Path file = SampleNames.folder(settings.outputDir()).resolve(SampleNames.fileName(stem.of(p.index(), seed),
                media.frameCount()));
        try {
            Files.createDirectories(file.getParent());
        } catch (IOException e) {
            throw new UncheckedIOException(file.getParent() + ": cannot create the sample folder (" + e.getMessage() + ")", e);
        }
        media.write(file, settings.fps());
        images.image(String.format(Locale.ROOT, "%s%02d", tagPrefix, p.index()), media);
        double perStep = stepSeconds[0] / p.sampleSteps();
        if (isTerminal) out.print("\r");
        out.println(bar(label, p.sampleSteps(), p.sampleSteps(), perStep) + String.format(Locale.ROOT,
                "%s, decode %.2f s → %s", loop.usesUncond() ? " (CFG " + (settings.cfgMode() == DenoisingLoop.CfgMode.BATCH_2
                        ? "batch 2)" : "2 × batch 1)") : "", decodeSeconds, file));
        out.flush();
        return new Written(file, p.index(), seed, media, p.sampleSteps(), perStep, decodeSeconds);
    }

    /** "sample 01/02 [##########----------] 10/20 steps, 0.41 s/step". */
    static String bar(String label, int done, int total, double secondsPerStep) {
        int width = 20, filled = (int) ((long) width * done / total);
        return String.format(Locale.ROOT, "%s [%s%s] %d/%d steps, %.2f s/step", label, "#".repeat(filled),
                "-".repeat(width - filled), done, total, secondsPerStep);
    }

    @Override
    public void close() {
        contexts.values().forEach(Tensor::close);
        contexts.clear();
    }
}
