package dev.wanlora.cli;

import dev.wanlora.pipeline.train.Fp8Compute;
import dev.wanlora.pipeline.UserError;
import dev.wanlora.pipeline.sample.SampleGrid;
import dev.wanlora.pipeline.sample.SampleLora;
import dev.wanlora.pipeline.sample.SampleMedia;
import dev.wanlora.pipeline.sample.SampleModels;
import dev.wanlora.pipeline.sample.SampleNames;
import dev.wanlora.pipeline.sample.SamplePrompt;
import dev.wanlora.pipeline.sample.SamplePromptFile;
import dev.wanlora.pipeline.sample.SampleRunner;
import dev.wanlora.engine.Backends;
import dev.wanlora.pipeline.sample.SamplingPlanner;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.sampling.DenoisingLoop;
import dev.wanlora.models.sampling.FlowSolver;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.umt5.UmT5Weights;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanMemoryPlan;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;
import java.util.concurrent.Callable;

/**
 * {@code wanlora sample}: the training-time sampler without training (spec §10), to check a LoRA after a run or to
 * compare epochs: every prompt is sampled with the base model, or with each {@code --lora} (one file per prompt and
 * LoRA, {@code {output_name}_{lora}_{idx:02d}_{timestamp}_{seed}.mp4} in {@code {output_dir}/sample/}, and with
 * several LoRAs a grid per prompt, {@link SampleGrid}). The memory plan ({@link SamplingMemoryPlan}) is printed first
 * and checked against the budget; umT5 streams its layers when it does not fit whole.
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
            + " or its folder. Default: beside --t5, its tokenizer/, its google/umt5-xxl/, then the Hugging Face cache (models--google--umt5-xxl).")
    Path t5Tokenizer;

    @Option(names = {"--fp8_t5", "--fp8-t5"}, description = "Run the text encoder in fp8 (musubi's --fp8_t5).")
    boolean fp8T5;

    @Option(names = {"--lora", "--lora_weight", "--lora-weight"}, paramLabel = "FILE[:WEIGHT]",
            description = "LoRA to apply (unmerged), with an optional multiplier (default 1.0); repeat to sample each"
                    + " (one video per LoRA and prompt, and a grid per prompt with the LoRAs side by side).")
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

    @Option(names = {"--fp8_compute", "--fp8-compute"}, description = "Opt-in, with --fp8_base: the block Linears' forward"
            + " GEMMs in per-tensor fp8 (cuBLASLt's fp8 GEMM; compute capability 8.9+), the weights re-quantized per tensor"
            + " at load. Off by default.")
    boolean fp8Compute;

    @Option(names = {"--blocks_to_swap", "--blocks-to-swap"}, paramLabel = "N|auto", defaultValue = "0",
            description = "Stream the last N blocks' weights from host memory; auto: the fewest that fit the budget"
                    + " (default ${DEFAULT-VALUE}).")
    String blocksToSwap;

    @Option(names = {"--max_vram", "--max-vram"}, paramLabel = "SIZE",
            description = "Device memory budget, e.g. 24G (default: the GPU's memory). umT5 streams its layers when it"
                    + " does not fit whole.")
    String maxVram;

    @Option(names = {"--dry_run", "--dry-run"},
            description = "Print the memory plan of this command line and exit (0: it fits); nothing is loaded.")
    boolean dryRun;

    @Option(names = {"--lora_multiplier", "--lora-multiplier"}, paramLabel = "W", arity = "1..*",
            description = "musubi's --lora_multiplier: one weight per --lora in order, or one for all (default 1.0).")
    List<Float> loraMultipliers = new ArrayList<>();

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
        // a prompt without --d gets one seed for every LoRA, so the LoRAs' videos of it compare
        list = list.stream().map(p -> p.seed() != null ? p : p.withSeed(new SecureRandom().nextLong() & 0x7FFF_FFFFL)).toList();
        if (!Files.isRegularFile(dit)) throw new UserError("--dit " + dit + ": no such file");
        List<SampleLora> loraList = SampleLora.parse(loras, loraMultipliers);
        SampleModels models = standIns ? SampleModels.demoStandIns() : SampleModels.files(t5, t5Tokenizer, fp8T5, vae);
        models.check();
        if (standIns) out.println("warning: --stand_in_models: random stand-ins replace umT5 and the VAE; the samples show nothing");
        String time = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMddHHmmss", Locale.ROOT));
        long start = System.nanoTime();
        try (SafeTensors checkpoint = SafeTensors.open(dit, SafeTensors.DIT_PREFIXES);
             Backend backend = dryRun ? null : openBackend(out)) {
            WanDitConfig config = WanDitConfig.fromCheckpoint(checkpoint);
            DType fileDType = checkpoint.info("patch_embedding.weight").dtype();
            ComputePrecision precision = fileDType == DType.F32 || fileDType == DType.F16 ? ComputePrecision.FP32
                    : ComputePrecision.BF16_MUSUBI;
            SamplingMemoryPlan.Choice choice = planMemory(out, backend, checkpoint, config, precision, list, models, loraList);
            int swap = choice.blocksToSwap();
            if (fp8Compute) {
                Fp8Compute.check(dryRun ? DeviceFacts.cpu() : backend.device(), quantization(),
                        "add --fp8_base (and --fp8_scaled for a bf16 checkpoint)");
                out.println(Fp8Compute.NOTE);
            }
            if (dryRun) {
                out.println("dry run: nothing was loaded");
                return 0;
            }
            SampleRunner.Settings settings = new SampleRunner.Settings(kind, fps, outputDir, outputName,
                    choice.cachesCrossAttention(), choice.cfgMode());
            try (SampleRunner runner = SampleRunner.prepare(backend, list, models, settings, config.textDim(), out, false);
                 WanDitWeights weights = WanDitWeights.load(backend, checkpoint, config, precision, quantization(),
                         !backend.device().keepsFp8Quantized(), fp8Compute, new WanDitWeights.BlockSwap(swap, 2), bytes -> {});
                 WanDit model = new WanDit(backend, config, weights, precision, false)) {
                out.printf(Locale.ROOT, "model: %s, %d blocks, dim %d, %s%n", dit.getFileName(), config.numLayers(),
                        config.dim(), precision);
                if (loraList.isEmpty()) {
                    runner.sampleAll(model, null, (i, seed) -> String.format(Locale.ROOT, "%s_%02d_%s_%d", outputName, i,
                            time, seed), SampleRunner.ImageSink.NONE, "");
                }
                List<List<SampleRunner.Written>> byLora = new ArrayList<>();
                for (SampleLora l : loraList) {
                    try (LoraNetwork lora = l.load(backend, config)) {
                        out.println("LoRA: " + l.describe());
                        byLora.add(runner.sampleAll(model, lora, (i, seed) -> String.format(Locale.ROOT, "%s_%s_%02d_%s_%d",
                                outputName, l.name(), i, time, seed), SampleRunner.ImageSink.NONE, ""));
                    }
                }
                if (loraList.size() > 1) SampleGrid.writeAll(byLora, loraList, outputDir, outputName, time, fps, out);
            }
        } catch (IllegalArgumentException | SafeTensorsException e) {
            throw new UserError(e.getMessage(), e);
        }
        out.printf(Locale.ROOT, "sampling took %.1f s; files in %s%n", (System.nanoTime() - start) / 1e9,
                SampleNames.folder(outputDir));
        return 0;
    }

    /**
     * Prints the sampling memory plan (phase by phase) and returns its choice (the --blocks_to_swap to use, whether the
     * cross-attention k/v are kept); sets the umT5 layer streaming the plan needs. The budget: --max_vram (at most the GPU's memory), else the GPU's memory; the CPU
     * backend without --max_vram checks nothing. --dry_run plans as a GPU holds it (bf16 umT5 and VAE, fp8 codes).
     */
    private SamplingMemoryPlan.Choice planMemory(PrintWriter out, Backend backend, SafeTensors checkpoint, WanDitConfig config,
                           ComputePrecision precision, List<SamplePrompt> list, SampleModels models, List<SampleLora> loraList) {
        boolean asGpu = backend == null || !backend.device().storesFp32();
        long budget = maxVram == null ? 0 : MemoryPlan.parseBytes("--max_vram", maxVram);
        List<MemoryPlan.Item> others = new ArrayList<>();
        if (backend != null && backend.device().hasDeviceMemory()) {
            DeviceFacts d = backend.device();
            budget = budget == 0 ? d.totalMemoryBytes() : Math.min(budget, d.totalMemoryBytes());
            others.add(WanMemoryPlan.cudaRuntime(d.usedBytes()));
        } else if (backend == null) {
            others.add(WanMemoryPlan.estimatedCudaRuntime());
        }
        if (asGpu) {
            others.add(WanMemoryPlan.allocationMargin());
        }
        if (fp8Compute) { // counted in every phase (the plan's "others"): a little more than the DiT phase needs
            long rows = config.textLen();
            for (SamplePrompt p : list) {
                long[] latent = p.latentShape();
                rows = Math.max(rows, latent[1] * (latent[2] / 2) * (latent[3] / 2));
            }
            others.add(Fp8Compute.inputCodes(config, rows));
        }
        long loraParameters = 0;
        int loraRank = 0;
        for (SampleLora l : loraList) {
            loraParameters = Math.max(loraParameters, l.parameterCount());
            loraRank = Math.max(loraRank, l.rank());
        }
        DType blockDType = checkpoint.info("blocks.0.self_attn.q.weight").dtype();
        SamplingPlanner.Dit ditPlan = new SamplingPlanner.Dit(config, precision, quantization(), asGpu, blockDType, 2);
        SamplingMemoryPlan.Settings s = SamplingPlanner.settings(ditPlan, list, models, asGpu ? DType.BF16 : DType.F32,
                loraParameters, loraRank, others);
        int t5Streamed = 0;
        if (budget > 0) {
            OptionalInt n = SamplingMemoryPlan.smallestFittingT5Streaming(s, budget);
            t5Streamed = n.orElse(s.textEncoder() == null ? 0 : s.textEncoder().config().numLayers());
        }
        int swap;
        OptionalInt fitting = budget > 0 ? SamplingMemoryPlan.smallestFittingSwap(s, budget) : OptionalInt.of(0);
        if (blocksToSwap.equals("auto")) {
            swap = fitting.orElse(config.numLayers() - 1);
        } else {
            try {
                swap = Integer.parseInt(blocksToSwap);
            } catch (NumberFormatException e) {
                throw new UserError("--blocks_to_swap " + blocksToSwap + ": expected a number of blocks or auto");
            }
            if (swap < 0 || swap > config.numLayers() - 1) {
                throw new UserError("--blocks_to_swap " + swap + ": expected 0 to " + (config.numLayers() - 1)
                        + " (this model has " + config.numLayers() + " blocks) or auto");
            }
        }
        SamplingMemoryPlan.Choice choice = SamplingMemoryPlan.choose(s, swap, t5Streamed, budget);
        SamplingMemoryPlan.Phases plan = SamplingMemoryPlan.plan(s, choice);
        out.printf(Locale.ROOT, "memory plan (sampling, --blocks_to_swap %d%s%s%s%s):%n", swap,
                blocksToSwap.equals("auto") ? " chosen by auto" : "",
                t5Streamed == 0 ? "" : ", umT5 streams " + t5Streamed + " of its layers",
                s.contextsPerSample() == 1 ? "" : ", CFG " + (choice.cfgMode() == DenoisingLoop.CfgMode.BATCH_2
                        ? "as one batch-2 forward" : "as two batch-1 forwards (batch 2 does not fit)"),
                budget > 0 ? "; budget " + budgetSource(budget) : backend != null && !backend.device().hasDeviceMemory()
                        ? "; no budget on the CPU without --max_vram" : "; no budget: pass --max_vram to check it");
        plan.format(budget).forEach(out::println);
        out.flush();
        if (budget > 0 && !plan.fits(budget)) throw new UserError(overBudget(plan, budget, swap, fitting, list));
        models.streamTextEncoder(new UmT5Weights.Streaming(t5Streamed, 2));
        return choice;
    }

    private String budgetSource(long budget) {
        return MemoryPlan.formatBytes(budget) + (maxVram != null ? " (--max_vram " + maxVram + ")" : " (the GPU's memory)");
    }

    /** One line: what does not fit, and the change that would. */
    private String overBudget(SamplingMemoryPlan.Phases plan, long budget, int swap, OptionalInt fitting,
                              List<SamplePrompt> list) {
        String phase = !plan.encode().fits(budget) ? "encoding the prompts" : !plan.denoise().fits(budget) ? "denoising"
                : "decoding";
        String head = String.format(Locale.ROOT, "memory plan: %s needs %s with --blocks_to_swap %d, over the budget of %s",
                phase, MemoryPlan.formatBytes(plan.peakBytes()), swap, budgetSource(budget));
        if (!plan.encode().fits(budget)) {
            return head + "; even with every umT5 layer streamed the encoder does not fit: raise --max_vram or add --fp8_t5";
        }
        if (fitting.isPresent()) return head + "; use --blocks_to_swap " + fitting.getAsInt() + " (or auto)";
        SamplePrompt largest = list.getFirst();
        for (SamplePrompt p : list) {
            if ((long) p.width() * p.height() * p.frameCount() > (long) largest.width() * largest.height() * largest.frameCount()) {
                largest = p;
            }
        }
        return head + String.format(Locale.ROOT, "; no --blocks_to_swap fits: lower prompt %d's size (--w %d --h %d --f %d)%s",
                largest.index() + 1, largest.width(), largest.height(), largest.frameCount(),
                fp8Base ? " or raise --max_vram" : ", add --fp8_base --fp8_scaled or raise --max_vram");
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
            if (Backends.attentionPath(b) != null) out.println(Backends.attentionPath(b));
            return b;
        } catch (IllegalArgumentException | UnsupportedOperationException e) {
            throw new UserError(e.getMessage(), e);
        }
    }
}
