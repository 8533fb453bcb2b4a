package dev.wanlora.cli;

import dev.wanlora.pipeline.sample.SampleMedia;
import dev.wanlora.pipeline.sample.SampleModels;
import dev.wanlora.pipeline.sample.SamplePrompt;
import dev.wanlora.pipeline.sample.SamplePromptFile;
import dev.wanlora.pipeline.sample.SampleRunner;
import dev.wanlora.pipeline.sample.SampleNames;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.Backends;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.sampling.FlowSolver;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.pipeline.UserError;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code wanlora sample}: the training-time sampler without training (spec §10), to check a LoRA after a run or to
 * compare epochs: every prompt is sampled with the base model and each {@code --lora} (one file per prompt and LoRA,
 * {@code {output_name}_{lora}_{idx:02d}_{timestamp}_{seed}.mp4} in {@code {output_dir}/sample/}).
 */
@Command(name = "sample", sortOptions = false, mixinStandardHelpOptions = true,
        description = "Make sample videos with the Wan DiT and LoRA files, as training's --sample_prompts does.")
public final class SampleCommand implements Callable<Integer> {

    @Option(names = "--dit", required = true, paramLabel = "FILE", description = "Wan2.1 T2V DiT checkpoint.")
    Path dit;

    @Option(names = "--vae", paramLabel = "FILE", description = "Wan2.1 VAE checkpoint.")
    Path vae;

    @Option(names = "--t5", paramLabel = "FILE", description = "umT5-XXL text encoder checkpoint.")
    Path t5;

    @Option(names = {"--t5_tokenizer", "--t5-tokenizer"}, paramLabel = "FILE|DIR", description = "umT5 tokenizer.json"
            + " or its folder. Default: beside --t5, its google/umt5-xxl/, then the Hugging Face cache (models--google--umt5-xxl).")
    Path t5Tokenizer;

    @Option(names = {"--fp8_t5", "--fp8-t5"}, description = "Run the text encoder in fp8 (musubi's --fp8_t5).")
    boolean fp8T5;

    @Option(names = "--lora", paramLabel = "FILE[:WEIGHT]",
            description = "LoRA to apply (unmerged), with an optional multiplier (default 1.0); repeat to sample each.")
    List<String> loras = new ArrayList<>();

    static final class Prompts {
        @Option(names = {"--prompts", "--sample_prompts"}, paramLabel = "FILE", required = true,
                description = "Prompt file (.txt, .toml or .json), as --sample_prompts.")
        Path file;

        @Option(names = "--prompt", paramLabel = "LINE", required = true,
                description = "One prompt in the .txt syntax, e.g. \"a cat --w 832 --h 480 --f 81 --d 42\".")
        String line;
    }

    @ArgGroup(multiplicity = "1")
    Prompts prompts;

    @Option(names = {"--output_dir", "--output-dir"}, paramLabel = "DIR", defaultValue = ".",
            description = "Samples go to DIR/sample/ (default ${DEFAULT-VALUE}).")
    Path outputDir;

    @Option(names = {"--output_name", "--output-name"}, paramLabel = "NAME", defaultValue = "sample",
            description = "File name prefix (default ${DEFAULT-VALUE}).")
    String outputName;

    @Option(names = {"--sample_solver", "--sample-solver"}, paramLabel = "unipc|euler", defaultValue = "unipc",
            description = "Flow solver: unipc (musubi's training sampler) or euler (default ${DEFAULT-VALUE}).")
    String solver;

    @Option(names = {"--sample_fps", "--sample-fps"}, paramLabel = "N", defaultValue = "" + SampleMedia.DEFAULT_FPS,
            description = "Video frame rate (default ${DEFAULT-VALUE}, Wan's native rate; musubi writes 24).")
    int fps;

    @Option(names = {"--fp8_base", "--fp8-base"}, description = "Block weights in fp8 e4m3 (musubi's --fp8_base).")
    boolean fp8Base;

    @Option(names = {"--fp8_scaled", "--fp8-scaled"}, description = "With --fp8_base: block-wise scaled fp8 (musubi's --fp8_scaled).")
    boolean fp8Scaled;

    @Option(names = {"--blocks_to_swap", "--blocks-to-swap"}, paramLabel = "N", defaultValue = "0",
            description = "Stream the last N blocks' weights from host memory (default ${DEFAULT-VALUE}).")
    int blocksToSwap;

    @Option(names = "--backend", paramLabel = "NAME", defaultValue = "auto",
            description = "auto, cpu, cuda or cuda:N (default ${DEFAULT-VALUE}).")
    String backendName;

    @Option(names = "--stand_in_models",
            description = "Use the demo's random stand-ins instead of --t5 and --vae: tests the pipeline, the pictures"
                    + " show nothing (no text understanding, no VAE).")
    boolean standIns;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        if (fps < 1 || fps > 240) throw new UserError("--sample_fps " + fps + ": expected 1..240, e.g. 16");
        FlowSolver.Kind kind;
        try {
            kind = FlowSolver.Kind.parse(solver);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        List<SamplePrompt> list = prompts.file != null ? SamplePromptFile.read(prompts.file)
                : List.of(SamplePromptFile.fromCommandLine(prompts.line));
        SampleRunner.checkSchedules(list, kind, prompts.file != null ? "--prompts " + prompts.file : "--prompt");
        if (!Files.isRegularFile(dit)) throw new UserError("--dit " + dit + ": no such file");
        SampleModels models = standIns ? SampleModels.demoStandIns() : SampleModels.files(t5, t5Tokenizer, fp8T5, vae);
        models.check();
        if (standIns) out.println("warning: --stand_in_models: random stand-ins replace umT5 and the VAE; the samples show nothing");
        String time = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMddHHmmss", Locale.ROOT));
        long start = System.nanoTime();
        try (Backend backend = openBackend(out);
             SafeTensors checkpoint = SafeTensors.open(dit, SafeTensors.DIT_PREFIXES)) {
            WanDitConfig config = WanDitConfig.fromCheckpoint(checkpoint);
            DType fileDType = checkpoint.info("patch_embedding.weight").dtype();
            ComputePrecision precision = fileDType == DType.F32 || fileDType == DType.F16 ? ComputePrecision.FP32
                    : ComputePrecision.BF16_MUSUBI;
            SampleRunner.Settings settings = new SampleRunner.Settings(kind, fps, outputDir, outputName);
            try (SampleRunner runner = SampleRunner.prepare(backend, list, models, settings, config.textDim(), out, false);
                 WanDitWeights weights = WanDitWeights.load(backend, checkpoint, config, precision, quantization(),
                         !backend.device().keepsFp8Quantized(),
                         new WanDitWeights.BlockSwap(blocksToSwap, 2));
                 WanDit model = new WanDit(backend, config, weights, precision, false)) {
                out.printf(Locale.ROOT, "model: %s, %d blocks, dim %d, %s%n", dit.getFileName(), config.numLayers(),
                        config.dim(), precision);
                if (loras.isEmpty()) {
                    runner.sampleAll(model, null, (i, seed) -> String.format(Locale.ROOT, "%s_%02d_%s_%d", outputName, i,
                            time, seed), SampleRunner.ImageSink.NONE, "");
                }
                for (String spec : loras) {
                    String name = loraName(spec);
                    try (LoraNetwork lora = readLora(backend, config, spec)) {
                        out.println("LoRA: " + spec);
                        runner.sampleAll(model, lora, (i, seed) -> String.format(Locale.ROOT, "%s_%s_%02d_%s_%d", outputName,
                                name, i, time, seed), SampleRunner.ImageSink.NONE, "");
                    }
                }
            }
        } catch (IllegalArgumentException | SafeTensorsException e) {
            throw new UserError(e.getMessage(), e);
        }
        out.printf(Locale.ROOT, "sampling took %.1f s; files in %s%n", (System.nanoTime() - start) / 1e9,
                SampleNames.folder(outputDir));
        return 0;
    }

    private WanDitWeights.Quantization quantization() {
        if (fp8Scaled && !fp8Base) throw new UserError("--fp8_scaled needs --fp8_base (musubi's pairing); add --fp8_base");
        return !fp8Base ? WanDitWeights.Quantization.NONE
                : fp8Scaled ? WanDitWeights.Quantization.FP8_SCALED : WanDitWeights.Quantization.FP8_BASE;
    }

    private Backend openBackend(PrintWriter out) {
        try {
            String name = backendName;
            if (name.equals("auto")) {
                String reason = Backends.gpuUnavailableReason();
                name = reason == null ? "cuda" : "cpu";
                if (reason != null) out.println("info: no usable GPU (" + reason + "); sampling on the CPU");
            }
            Backend b = Backends.create(name);
            out.println("backend: " + b.name());
            return b;
        } catch (IllegalArgumentException | UnsupportedOperationException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    /** FILE[:WEIGHT]: the file's LoRA with up weights scaled by WEIGHT (the multiplier on its output). */
    private static LoraNetwork readLora(Backend backend, WanDitConfig config, String spec) {
        Path file = Path.of(filePart(spec));
        float weight = weightPart(spec);
        if (!Files.isRegularFile(file)) throw new UserError("--lora " + spec + ": no such file " + file);
        List<LoraModuleWeights> scaled = new ArrayList<>();
        for (LoraModuleWeights m : LoraFile.read(file).modules()) {
            float[] up = m.up().clone();
            for (int i = 0; i < up.length; i++) up[i] *= weight;
            scaled.add(new LoraModuleWeights(m.name(), m.rank(), m.inFeatures(), m.outFeatures(), m.alpha(), m.down(), up));
        }
        return LoraNetwork.fromWeights(backend, config, scaled, file.toString());
    }

    /** The file part of FILE[:WEIGHT] (a Windows drive letter's colon is not a weight separator). */
    static String filePart(String spec) {
        int colon = spec.lastIndexOf(':');
        return colon > 1 && isNumber(spec.substring(colon + 1)) ? spec.substring(0, colon) : spec;
    }

    static float weightPart(String spec) {
        int colon = spec.lastIndexOf(':');
        return colon > 1 && isNumber(spec.substring(colon + 1)) ? Float.parseFloat(spec.substring(colon + 1)) : 1f;
    }

    private static boolean isNumber(String s) {
        try {
            return Float.isFinite(Float.parseFloat(s));
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /** The LoRA's name in sample file names: its file stem, plus "x0.8" when weighted. */
    private static String loraName(String spec) {
        String stem = Path.of(filePart(spec)).getFileName().toString().replaceFirst("\\.safetensors$", "");
        float w = weightPart(spec);
        return w == 1f ? stem : stem + "x" + w;
    }
}
