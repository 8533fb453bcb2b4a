package dev.wanlora.cli;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.Backends;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.cli.train.CheckpointAttentionConverter;
import dev.wanlora.pipeline.train.BenchRun;
import dev.wanlora.pipeline.train.Fp8Compute;
import dev.wanlora.pipeline.train.CheckpointAttention;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.backend.ProfilingBackend.OpTime;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import dev.wanlora.models.wan.WanMemoryPlan;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code wanlora bench}: seconds per training step, per resolution, on this machine, with a random-weight model
 * drawn on the device (nothing to download). Each step is {@code wanlora train}'s step at musubi's reference settings
 * ({@link BenchRun}). Per resolution it prints one summary line, e.g.
 * {@code 14B 384x208x45 (3744 tok) fp8_scaled r32: 0.73 s/it (min 0.72, max 0.75), peak 21.4 GiB (plan 21.2 GiB)  [NVIDIA H100 80GB HBM3]},
 * then the device time of the step's halves, and a one-step op profile (device time per op, forward / backward /
 * update, and the most expensive ops).
 *
 * <p>Peak memory is the high-water mark of wanlora's own device allocations during the steps (torch's
 * max_memory_allocated, the figure musubi reports), with {@code wanlora train}'s memory plan for the same settings
 * (without the CUDA runtime) beside it, and the driver's view (cuMemGetInfo, which adds the CUDA context and library
 * workspaces) on the next line. {@code --blocks_to_swap N} streams the last N blocks' Linear weights as the trainer does.
 */
@Command(name = "bench", sortOptions = false, mixinStandardHelpOptions = true,
        description = "Seconds per training step per resolution on this GPU, with a random-weight model (nothing to download).")
public final class BenchCommand implements Callable<Integer> {

    @Option(names = "--task", paramLabel = "t2v-14B|t2v-1.3B|tiny", defaultValue = "t2v-14B",
            description = "Model shapes (default ${DEFAULT-VALUE}); tiny is the golden test model, for the CPU.")
    String task;

    @Option(names = "--dit", paramLabel = "FILE", description = "Load the block weights from this DiT checkpoint of --task"
            + " (wanlora train's loader) instead of drawing random ones on the device: the same step on your file.")
    Path dit;

    @Option(names = "--resolution", paramLabel = "WxH", split = ",", defaultValue = "384x208",
            description = "Pixel width x height, repeatable or comma-separated (default ${DEFAULT-VALUE}); multiples of 16.")
    List<String> resolutions;

    @Option(names = "--frames", paramLabel = "N", defaultValue = "45",
            description = "Pixel frames, 4n+1 (default ${DEFAULT-VALUE}; latent frames (N-1)/4+1).")
    int frames;

    @Option(names = "--batch_size", paramLabel = "B", defaultValue = "1", description = "Samples per step (default ${DEFAULT-VALUE}).")
    int batchSize;

    @Option(names = "--fp8_base", description = "fp8 e4m3 block weights (alone: unit scales, musubi's plain --fp8_base).")
    boolean fp8Base;

    @Option(names = "--fp8_scaled", description = "Block-wise scaled fp8 weights (musubi's --fp8_base --fp8_scaled; the default).")
    boolean fp8Scaled;

    @Option(names = "--bf16_base", description = "bf16 block weights instead of fp8.")
    boolean bf16Base;

    @Option(names = "--fp8_compute", description = "Opt-in: the block Linears' forward GEMMs in per-tensor fp8 (cuBLASLt's"
            + " fp8 GEMM; compute capability 8.9+), the weights re-quantized per tensor at load. Off by default.")
    boolean fp8Compute;

    @Option(names = {"--blocks_to_swap", "--blocks-to-swap"}, paramLabel = "N|auto", defaultValue = "0",
            description = "Stream the Linear weights of the last N blocks from pinned host memory (default ${DEFAULT-VALUE});"
                    + " auto: the cheapest swap count and activation offload whose memory plan fits (--max_vram), planned"
                    + " for the largest resolution, as wanlora train --blocks_to_swap auto.")
    String blocksToSwapFlag;

    /** --blocks_to_swap resolved (auto: by the memory plan). */
    int blocksToSwap;

    @Option(names = {"--max_vram", "--max-vram"}, paramLabel = "SIZE",
            description = "Device memory budget, e.g. 24G, counted as the driver counts it (context and allocation margin"
                    + " included); default: the GPU's memory.")
    String maxVram;

    @Option(names = {"--gradient_checkpointing_cpu_offload", "--gradient-checkpointing-cpu-offload"},
            description = "Keep every block's saved input in pinned host memory (musubi's flag; auto offloads as needed).")
    boolean cpuOffload;

    @Option(names = "--network_dim", paramLabel = "R", defaultValue = "32", description = "LoRA rank (default ${DEFAULT-VALUE}).")
    int rank;

    @Option(names = "--network_alpha", paramLabel = "A", description = "LoRA alpha (default: the rank).")
    Float alpha;

    @Option(names = "--gradient_checkpointing", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Recompute each block in the backward (default on; --no-gradient_checkpointing keeps every block's activations).")
    boolean gradientCheckpointing;

    @Option(names = {"--checkpoint_attention", "--checkpoint-attention"}, paramLabel = "auto|on|off",
            converter = CheckpointAttentionConverter.class, defaultValue = "auto",
            description = "Keep each block's self-attention output through checkpointing so the recompute skips it;"
                    + " auto (default): on when the memory plan with it fits the GPU.")
    CheckpointAttention checkpointAttention;

    @Option(names = "--optimizer_type", paramLabel = "NAME", defaultValue = "adamw8bit",
            description = "adamw8bit (default) or adamw.")
    String optimizerType;

    @Option(names = "--steps", paramLabel = "N", defaultValue = "10", description = "Timed steps per resolution (default ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--warmup", paramLabel = "N", defaultValue = "3", description = "Untimed steps first (default ${DEFAULT-VALUE}).")
    int warmup;

    @Option(names = "--text_rows", paramLabel = "L", defaultValue = "" + BenchRun.DEFAULT_TEXT_ROWS,
            description = "Real rows of each text context before padding to 512 (default ${DEFAULT-VALUE}).")
    int textRows;

    @Option(names = "--top_ops", paramLabel = "N", defaultValue = "12",
            description = "Most expensive ops to list from the one-step profile (default ${DEFAULT-VALUE}; 0: no profile).")
    int topOps;

    @Option(names = "--backend", paramLabel = "cuda|cpu", defaultValue = "cuda",
            description = "Where to run (default ${DEFAULT-VALUE}; cpu only with --task tiny).")
    String backendName;

    @Option(names = "--seed", defaultValue = "42", description = "Seed of the random weights and data (default ${DEFAULT-VALUE}).")
    long seed;

    @Spec
    CommandSpec spec;

    /** A checked --resolution: pixel size and the latent grid. */
    record Resolution(int width, int height) {
        int latentWidth() { return width / 8; }

        int latentHeight() { return height / 8; }

        @Override
        public String toString() { return width + "x" + height; }
    }

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        WanDitConfig config = config();
        List<Resolution> checked = resolutions.stream().map(BenchCommand::resolution).toList();
        if (frames < 1 || (frames - 1) % 4 != 0) {
            throw new UserError("--frames " + frames + ": expected 4n+1 pixel frames (1, 5, ..., 45, 81), the VAE's"
                    + " temporal stride; use " + (Math.max(0, frames - 1) / 4 * 4 + 1));
        }
        boolean isAutoSwap = blocksToSwapFlag.strip().equalsIgnoreCase("auto");
        try {
            blocksToSwap = isAutoSwap ? 0 : Integer.parseInt(blocksToSwapFlag.strip());
        } catch (NumberFormatException e) {
            throw new UserError("--blocks_to_swap " + blocksToSwapFlag + ": expected a block count or auto (e.g. 10 or auto)");
        }
        if (blocksToSwap < 0 || blocksToSwap > config.numLayers() - 1) {
            throw new UserError("--blocks_to_swap " + blocksToSwap + ": expected 0.." + (config.numLayers() - 1) + " for "
                    + config.numLayers() + " blocks (musubi's limit: blocks − 1)");
        }
        long budget = 0;
        try {
            if (maxVram != null) budget = MemoryPlan.parseBytes("--max_vram", maxVram);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        if (steps < 1 || warmup < 0 || batchSize < 1 || rank < 1 || textRows < 1 || textRows > config.textLen()) {
            throw new UserError("bench: --steps, --batch_size, --network_dim must be ≥ 1, --warmup ≥ 0 and --text_rows in"
                    + " 1.." + config.textLen() + "; got --steps " + steps + ", --warmup " + warmup + ", --batch_size "
                    + batchSize + ", --network_dim " + rank + ", --text_rows " + textRows);
        }
        Quantization quantization = quantization();
        try (Backend backend = openBackend()) {
            String card = backend.device().name();
            if (fp8Compute) {
                Fp8Compute.check(backend.device(), quantization, "drop --bf16_base");
                out.println(Fp8Compute.NOTE);
            }
            if (Backends.attentionPath(backend) != null) out.println(Backends.attentionPath(backend));
            long built = System.nanoTime();
            WanDitActivations.Offload offload = gradientCheckpointing && cpuOffload
                    ? new WanDitActivations.Offload(config.numLayers() + 1, 0, WanMemoryPlan.OFFLOAD_RING_SLOTS)
                    : WanDitActivations.Offload.NONE;
            BenchRun.Settings settings = new BenchRun.Settings(config, quantization, rank, alpha == null ? rank : alpha,
                    gradientCheckpointing, checkpointAttention, optimizerType, blocksToSwap, seed, offload, budget, fp8Compute);
            if (isAutoSwap || budget > 0) settings = planned(out, backend, settings, checked, isAutoSwap);
            try (SafeTensors checkpoint = dit == null ? null : openCheckpoint(dit);
                 BenchRun run = BenchRun.open(backend, settings, checkpoint, out)) {
                backend.synchronize();
                out.printf(Locale.ROOT, "%s %s (%s) on %s built in %.1f s%s%n", task,
                        dit == null ? "random weights" : "weights of " + dit.getFileName(), label(quantization),
                        backend.name(), (System.nanoTime() - built) / 1e9, backend.device().hasDeviceMemory()
                                ? String.format(Locale.ROOT, "; %.1f GiB allocated", gib(backend.device().memory().liveBytes())) : "");
                out.flush();
                for (Resolution r : checked) bench(out, run, backend, card, quantization, r);
            }
        }
        long rss = peakResidentBytes();
        if (rss > 0) out.printf(Locale.ROOT, "host peak RSS (VmHWM): %.2f GiB%n", gib(rss));
        return 0;
    }

    /** --dit's file, opened as wanlora train opens it (a bad file: one line naming it). */
    private static SafeTensors openCheckpoint(Path file) {
        try {
            return SafeTensors.open(file, SafeTensors.DIT_PREFIXES);
        } catch (SafeTensorsException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    /**
     * --blocks_to_swap auto and --max_vram: plans the largest resolution as wanlora train does (wanlora's allocations,
     * the driver's context as in use now, the allocation margin) and resolves auto to the cheapest fitting swap count
     * and offload; prints the plan, and refuses a plan over the budget.
     */
    private BenchRun.Settings planned(PrintWriter out, Backend backend, BenchRun.Settings s, List<Resolution> checked,
                                      boolean isAutoSwap) {
        Resolution largest = checked.stream().max(Comparator.comparingLong(r -> (long) r.width() * r.height())).orElseThrow();
        int latentFrames = (frames - 1) / 4 + 1;
        Shape latent = Shape.of(batchSize, s.config().inChannels(), latentFrames, largest.latentHeight(), largest.latentWidth());
        DeviceFacts device = backend.device();
        boolean onGpu = device.hasDeviceMemory();
        WanMemoryPlan.Settings base = BenchRun.planSettings(s, latent, false, onGpu);
        long runtime = onGpu ? BenchRun.runtimeBytes(device) : 0;
        long total = device.totalMemoryBytes();
        long budget = s.budgetBytes() > 0 ? (total > 0 ? Math.min(total, s.budgetBytes()) : s.budgetBytes()) : total;
        List<MemoryPlan.Item> others = new ArrayList<>(base.others());
        others.add(new MemoryPlan.Item("CUDA runtime + margin", runtime, "driver-held now, plus the allocation margin"));
        WanMemoryPlan.Settings withRuntime = new WanMemoryPlan.Settings(base.config(), base.precision(), base.quantization(),
                base.keepsFp8Codes(), base.checkpointDType(), base.shapes(), base.optimizer(), base.swapSlots(), others);
        WanMemoryPlan.Choice choice = new WanMemoryPlan.Choice(s.blocksToSwap(), s.offload());
        if (isAutoSwap && budget > 0) {
            var swapOnly = WanMemoryPlan.smallestFittingSwap(withRuntime, budget);
            WanMemoryPlan.Choice c = s.offload().isOffloading() ? null : swapOnly.isPresent()
                    ? WanMemoryPlan.Choice.swapping(swapOnly.getAsInt())
                    : gradientCheckpointing ? WanMemoryPlan.cheapestFitting(withRuntime, budget, 0, true) : null;
            if (c == null && s.offload().isOffloading()) {
                var n = MemoryPlan.smallestFitting(0, s.config().numLayers() - 1,
                        k -> WanMemoryPlan.plan(withRuntime, new WanMemoryPlan.Choice(k, s.offload())), budget);
                if (n.isPresent()) c = new WanMemoryPlan.Choice(n.getAsInt(), s.offload());
            }
            if (c != null) choice = c;
        }
        MemoryPlan plan = WanMemoryPlan.plan(withRuntime, choice);
        out.printf(Locale.ROOT, "memory plan for %sx%d (--blocks_to_swap %d%s%s):%n", largest, frames, choice.blocksToSwap(),
                isAutoSwap ? " chosen by auto" : "", choice.offload().isOffloading() ? ", saved inputs of "
                        + choice.offload().blockInputs() + " blocks offloaded to host memory" : "");
        plan.format(budget).forEach(out::println);
        out.flush();
        if (budget > 0 && !plan.fits(budget)) {
            throw new UserError("bench: the memory plan (" + MemoryPlan.formatBytes(plan.totalBytes()) + ") exceeds the budget"
                    + " of " + MemoryPlan.formatBytes(budget) + "; use --blocks_to_swap auto, or a smaller --resolution/--frames");
        }
        blocksToSwap = choice.blocksToSwap();
        return new BenchRun.Settings(s.config(), s.quantization(), s.rank(), s.alpha(), s.gradientCheckpointing(),
                s.checkpointAttention(), s.optimizerType(), choice.blocksToSwap(), s.seed(), choice.offload(), budget,
                s.fp8Compute());
    }

    private void bench(PrintWriter out, BenchRun run, Backend backend, String card, Quantization quantization, Resolution r) {
        int latentFrames = (frames - 1) / 4 + 1;
        long tokens = (long) latentFrames * (r.latentHeight() / 2) * (r.latentWidth() / 2) * batchSize;
        String head = String.format(Locale.ROOT, "%s %sx%d (%d tok) %s r%d", shortTask(), r, frames, tokens,
                label(quantization), rank) + (batchSize > 1 ? " b" + batchSize : "")
                + (blocksToSwap > 0 ? " swap " + blocksToSwap : "")
                + (run.settings().offload().isOffloading() ? " offload " + run.settings().offload().blockInputs() : "")
                + (maxVram != null ? " max_vram " + maxVram : "");
        try {
            run.shape(batchSize, latentFrames, r.latentHeight(), r.latentWidth(), textRows);
            if (warmup > 0) run.steps(warmup);
            List<BenchRun.StepTime> times = run.steps(steps);
            long peak = backend.device().hasDeviceMemory() ? backend.device().memory().peakLiveBytes() : -1;
            double[] seconds = times.stream().mapToDouble(BenchRun.StepTime::seconds).sorted().toArray();
            String memory = (peak < 0 ? "peak n/a on the cpu" : String.format(Locale.ROOT, "peak %.2f GiB", gib(peak)))
                    + String.format(Locale.ROOT, " (plan %.2f GiB)", gib(run.plan().totalBytes()))
                    + (gradientCheckpointing ? ", checkpoint_attention " + (run.savesAttentionOutputs() ? "on" : "off")
                    + (checkpointAttention == CheckpointAttention.AUTO ? " (auto)" : "") : "")
                    + (run.keepsBackwardWeights() ? ", fp8 weights kept for the backward" : "");
            out.printf(Locale.ROOT, "%s: %.3f s/it (min %.3f, max %.3f), %s  [%s]%n", head, median(seconds),
                    seconds[0], seconds[seconds.length - 1], memory, card);
            double[] model = times.stream().mapToDouble(BenchRun.StepTime::modelMillis).sorted().toArray();
            double[] update = times.stream().mapToDouble(BenchRun.StepTime::updateMillis).sorted().toArray();
            double[] loss = times.stream().mapToDouble(BenchRun.StepTime::loss).toArray();
            out.printf(Locale.ROOT, "  per step (median, %s time): batch+forward+backward %.1f ms, clip+update %.1f ms;"
                            + " loss %.4f..%.4f%s%n", backend.device().hasDeviceMemory() ? "device" : "host", median(model),
                    median(update), Arrays.stream(loss).min().orElse(Double.NaN), Arrays.stream(loss).max().orElse(Double.NaN),
                    driverMemory(backend));
            if (backend.device().hasDeviceMemory()) {
                out.printf(Locale.ROOT, "  device allocations (cuMemAlloc) during the %d timed steps: %d%n", steps,
                        run.deviceAllocationsInLastSteps());
            }
            if (Arrays.stream(loss).anyMatch(l -> !Double.isFinite(l))) {
                out.println("  warning: a loss was not finite (random weights); the timing is still that of a step");
            }
            if (topOps > 0) profile(out, run.profiledStep());
            gemmAlgorithms(out, backend.gemmReport());
        } catch (RuntimeException e) {
            if (!Backends.isOutOfDeviceMemory(e)) throw e;
            out.println(head + ": out of GPU memory (" + e.getMessage() + ")  [" + card + "]");
        } finally {
            run.dit().releaseActivations();
            out.flush();
        }
    }

    /**
     * Prints the profiled step by phase (the step's ops up to the first patchify are the batch's data, then the
     * forward up to the loss, then the backward) and its most expensive ops.
     */
    private void profile(PrintWriter out, List<OpTime> ops) {
        Map<String, Double> phases = BenchRun.phaseMillis(ops);
        Map<String, double[]> byOp = new LinkedHashMap<>(); // key → {millis, count}
        Map<String, Double> byKind = new LinkedHashMap<>();
        double total = 0;
        for (OpTime op : ops) {
            byKind.merge(op.op(), op.millis(), Double::sum);
            double[] a = byOp.computeIfAbsent(op.op() + " " + op.operands(), k -> new double[2]);
            a[0] += op.millis();
            a[1]++;
            total += op.millis();
        }
        StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "  profile (1 step, %d ops, %.1f ms):", ops.size(), total));
        phases.forEach((p, ms) -> line.append(String.format(Locale.ROOT, " %s %.1f", p, ms)));
        out.println(line);
        double stepMillis = total;
        StringBuilder kinds = new StringBuilder("  by op:");
        byKind.entrySet().stream().sorted(Map.Entry.<String, Double>comparingByValue().reversed()).limit(10)
                .forEach(e -> kinds.append(String.format(Locale.ROOT, " %s %.1f ms (%.0f%%),", e.getKey(), e.getValue(),
                        100 * e.getValue() / Math.max(stepMillis, 1e-9))));
        out.println(kinds.substring(0, kinds.length() - 1));
        List<Map.Entry<String, double[]>> top = new ArrayList<>(byOp.entrySet());
        top.sort(Comparator.comparingDouble((Map.Entry<String, double[]> e) -> e.getValue()[0]).reversed());
        for (Map.Entry<String, double[]> e : top.subList(0, Math.min(topOps, top.size()))) {
            double[] a = e.getValue();
            out.printf(Locale.ROOT, "    %7.1f ms %5.1f%% %5d× %8.1f µs  %s%n", a[0], 100 * a[0] / Math.max(total, 1e-9),
                    (long) a[1], 1000 * a[0] / a[1], e.getKey());
        }
    }

    /** Which GEMM algorithm each shape ran (the ten with the most work; the rest counted); nothing on the CPU. */
    private static void gemmAlgorithms(PrintWriter out, List<String> report) {
        if (report.isEmpty()) return;
        List<String> lines = report.subList(1, report.size());
        out.println("  " + report.get(0) + "; " + lines.size() + " shapes so far, largest first:");
        lines.stream().limit(10).forEach(l -> out.println("    " + l));
        if (lines.size() > 10) out.println("    (" + (lines.size() - 10) + " smaller shapes not listed)");
    }

    private static String driverMemory(Backend backend) {
        DeviceFacts device = backend.device();
        if (!device.hasDeviceMemory()) return "";
        return String.format(Locale.ROOT, "; driver reports %.1f GiB in use", gib(device.usedBytes()));
    }

    private WanDitConfig config() {
        try {
            return BenchRun.taskConfig(task);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    private String shortTask() {
        return switch (task) {
            case "t2v-14B" -> "14B";
            case "t2v-1.3B" -> "1.3B";
            default -> task;
        };
    }

    private Quantization quantization() {
        if (bf16Base && (fp8Base || fp8Scaled)) {
            throw new UserError("--bf16_base contradicts --fp8_base/--fp8_scaled; pass one of them");
        }
        if (bf16Base) return Quantization.NONE;
        return fp8Base && !fp8Scaled ? Quantization.FP8_BASE : Quantization.FP8_SCALED;
    }

    private String label(Quantization q) {
        return (fp8Compute ? "fp8_compute " : "") + switch (q) {
            case NONE -> "bf16";
            case FP8_BASE -> "fp8_base";
            case FP8_SCALED -> "fp8_scaled";
        };
    }

    private Backend openBackend() {
        if (!backendName.equals("cuda") && !backendName.equals("cpu")) {
            throw new UserError("--backend " + backendName + " is not known; supported: cuda, cpu");
        }
        if (backendName.equals("cpu") && !task.equals("tiny")) {
            throw new UserError("--backend cpu: the CPU reference runs only --task tiny (a " + task + " step would take"
                    + " hours); use --backend cuda, or --task tiny for a smoke test");
        }
        if (backendName.equals("cuda")) {
            String reason = Backends.gpuUnavailableReason();
            if (reason != null) {
                throw new UserError("--backend cuda: no usable GPU (" + reason + "); run on a machine with an NVIDIA GPU,"
                        + " or --task tiny --backend cpu for a smoke test");
            }
        }
        try {
            return Backends.create(backendName);
        } catch (UnsupportedOperationException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    private static final Pattern RESOLUTION = Pattern.compile("\\s*(\\d{1,5})\\s*[xX]\\s*(\\d{1,5})\\s*");

    /** "384x208" → checked; a user error names the flag otherwise. */
    static Resolution resolution(String value) {
        Matcher m = RESOLUTION.matcher(value);
        if (m.matches()) {
            int w = Integer.parseInt(m.group(1)), h = Integer.parseInt(m.group(2));
            if (w > 0 && h > 0 && w % 16 == 0 && h % 16 == 0) return new Resolution(w, h);
        }
        throw new UserError("--resolution " + value + ": expected WIDTHxHEIGHT in pixels, both positive multiples of 16"
                + " (the VAE's 8× and the 2×2 patch), e.g. 384x208 or 832x480");
    }

    private static double median(double[] sorted) {
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    private static double gib(long bytes) { return bytes / (double) (1L << 30); }

    /** The process's peak resident set (VmHWM of /proc/self/status: pinned host memory included), or 0 when unknown. */
    private static long peakResidentBytes() {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        } catch (java.io.IOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }
}
