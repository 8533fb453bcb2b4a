package dev.wanlora.pipeline.train;

import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.memory.HostMemory;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.musubi.Bucket;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.CacheItem;
import dev.wanlora.models.musubi.DatasetConfig;
import dev.wanlora.models.musubi.DatasetSpec;
import dev.wanlora.models.musubi.FrameExtraction;
import dev.wanlora.models.musubi.FrameSpec;
import dev.wanlora.models.musubi.Resolution;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanMemoryPlan;
import dev.wanlora.pipeline.UserError;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import java.util.TreeSet;

/**
 * The training run's memory budgeting (DESIGN.md §6): sizes every device buffer of the run from resolved settings
 * before anything is allocated, prints the plan, resolves {@code --blocks_to_swap auto} to the cheapest configuration
 * that fits (swap count and activation offload, {@link WanMemoryPlan#cheapestFitting}), and refuses a plan over the
 * budget (the GPU's memory, or --max_vram) naming the smallest count that would fit. On the CPU the plan is printed as
 * a GPU would hold it and checked only against an explicit --max_vram. The host plan (pinned swapped blocks, offloaded
 * activations, staging) is printed too and refused over --max_host_ram (default: MemAvailable). After an out-of-memory
 * error it gives the advice ({@link #outOfMemoryAdvice}).
 */
public final class RunMemory {
    /** How much lower than the failed plan the out-of-memory advice aims. */
    private static final long OOM_HEADROOM_BYTES = 1L << 30;

    /**
     * What the plan is made of, resolved from the command line.
     *
     * @param shapes        every activation plan key of the run without saved attention outputs ({@link #inputShapes})
     * @param savingShapes  the same with saved attention outputs (--checkpoint_attention on)
     * @param blocksToSwap  --blocks_to_swap N (0 when not given); ignored when {@code autoSwap}
     * @param dryRun        --dry_run: the plan is for a GPU whatever the backend (none may be open)
     * @param extraItems    what else the run holds on the device (the samples' activations and decoder)
     * @param maxVram       --max_vram as given, or null
     * @param maxHostRam    --max_host_ram as given, or null
     */
    public record Request(WanDitConfig config, ComputePrecision precision, WanDitWeights.Quantization quantization,
                          DType blockDType, List<WanDitActivations.Key> shapes, List<WanDitActivations.Key> savingShapes,
                          OptimizerConfig optimizer, int swapSlots, int blocksToSwap, boolean autoSwap,
                          CheckpointAttention attention, boolean gradientCheckpointing, boolean cpuOffload, boolean dryRun,
                          List<MemoryPlan.Item> extraItems, String maxVram, String maxHostRam) {}

    private final Request r;
    private final DeviceFacts device;
    private final long budget;
    private final WanMemoryPlan.Settings settings;
    private final WanMemoryPlan.Choice choice;
    private final boolean savesAttentionOutputs;
    private final boolean keepsBackwardWeights;

    private RunMemory(Request r, DeviceFacts device, long budget, WanMemoryPlan.Settings settings,
                      WanMemoryPlan.Choice choice, boolean savesAttentionOutputs, boolean keepsBackwardWeights) {
        this.r = r;
        this.device = device;
        this.budget = budget;
        this.settings = settings;
        this.choice = choice;
        this.savesAttentionOutputs = savesAttentionOutputs;
        this.keepsBackwardWeights = keepsBackwardWeights;
    }

    /** The chosen swap count and activation offload. */
    public WanMemoryPlan.Choice choice() { return choice; }

    /** --checkpoint_attention resolved by the plan. */
    public boolean savesAttentionOutputs() { return savesAttentionOutputs; }

    /** fp8 weights kept dequantized from each block's recompute for its backward (WanDit.keepsBackwardWeights). */
    public boolean keepsBackwardWeights() { return keepsBackwardWeights; }

    /** The budget in bytes (0: none, the plan is unchecked). */
    public long budget() { return budget; }

    /** The total of the plan the run was admitted with. */
    public long plannedBytes() { return WanMemoryPlan.plan(settings, choice).totalBytes(); }

    /**
     * Plans, prints and checks the run's memory on {@code device} (null: no backend is open, under --dry_run with
     * --max_vram).
     *
     * @throws UserError when the device or host plan exceeds its budget, naming what would fit
     */
    public static RunMemory plan(Request r, DeviceFacts device, PrintWriter out) {
        long budget = budget(r, device, out);
        boolean plansForGpu = r.dryRun() || !storesFp32(device);
        WanMemoryPlan.Settings without = new WanMemoryPlan.Settings(r.config(), r.precision(), r.quantization(),
                plansForGpu, r.blockDType(), r.shapes(), r.optimizer(), r.swapSlots(), callerMemory(r, device, r.shapes()));
        WanMemoryPlan.Settings with = new WanMemoryPlan.Settings(r.config(), r.precision(), r.quantization(),
                plansForGpu, r.blockDType(), r.savingShapes(), r.optimizer(), r.swapSlots(),
                callerMemory(r, device, r.savingShapes()));
        int maxSwap = r.config().numLayers() - 1;
        long hostBudget = hostBudget(r);
        // musubi's --gradient_checkpointing_cpu_offload: every saved block input in host memory
        WanDitActivations.Offload forcedOffload = r.gradientCheckpointing() && r.cpuOffload()
                ? new WanDitActivations.Offload(r.config().numLayers() + 1, 0, WanMemoryPlan.OFFLOAD_RING_SLOTS)
                : WanDitActivations.Offload.NONE;
        // auto never swaps more blocks or offloads more to afford the saved attention outputs: it takes them only
        // where they fit
        WanMemoryPlan.Settings settings = r.gradientCheckpointing() && r.attention() == CheckpointAttention.ON ? with : without;
        OptionalInt fitting = budget > 0 ? WanMemoryPlan.smallestFittingSwap(settings, budget) : OptionalInt.of(0);
        WanMemoryPlan.Choice choice = r.autoSwap() ? autoChoice(r, settings, budget, fitting, forcedOffload, hostBudget)
                : new WanMemoryPlan.Choice(r.blocksToSwap(), forcedOffload);
        boolean fitsWith = budget <= 0 || WanMemoryPlan.plan(with, choice).fits(budget);
        boolean saves = r.gradientCheckpointing() && r.attention().resolve(fitsWith);
        if (saves && settings != with) {
            settings = with;
            fitting = budget > 0 ? WanMemoryPlan.smallestFittingSwap(settings, budget) : OptionalInt.of(0);
        }
        // fp8 weights kept from each block's recompute for its backward: taken only where the plan with them fits
        boolean keeps = WanMemoryPlan.considersBackwardWeights(settings, r.gradientCheckpointing())
                && (budget <= 0 || WanMemoryPlan.plan(WanMemoryPlan.withBackwardWeights(settings), choice).fits(budget));
        if (keeps) settings = WanMemoryPlan.withBackwardWeights(settings);
        RunMemory m = new RunMemory(r, device, budget, settings, choice, saves, keeps);
        MemoryPlan plan = WanMemoryPlan.plan(settings, choice);
        WanDitActivations.Key largest = largestShape(r.shapes());
        String attention = !r.gradientCheckpointing() ? "" : "; --checkpoint_attention " + (saves ? "on" : "off")
                + (r.attention() != CheckpointAttention.AUTO ? "" : saves ? " chosen by auto"
                : " chosen by auto: with it the plan exceeds the budget");
        String offload = !choice.offload().isOffloading() ? "" : "; activation offload: saved inputs of "
                + choice.offload().blockInputs() + " blocks" + (choice.offload().attentionOutputs() == 0 ? ""
                : " and attention outputs of " + choice.offload().attentionOutputs()) + " in host memory"
                + (r.autoSwap() ? " (auto)" : " (--gradient_checkpointing_cpu_offload)");
        out.printf(Locale.ROOT, "memory plan (--blocks_to_swap %d%s, rank %d, largest input %d×%d×%d×%d latent = %d tokens%s%s%s%s):%n",
                choice.blocksToSwap(), r.autoSwap() ? " chosen by auto" : "", largest.loraRank(), largest.batch(), largest.frames(),
                largest.height(), largest.width(), tokens(largest), attention, offload,
                budget > 0 ? "; budget " + m.budgetSource() : "",
                storesFp32(device) && !r.dryRun() ? "; as a GPU holds it, the CPU backend stores fp32" : "");
        plan.format(budget).forEach(out::println);
        MemoryPlan host = WanMemoryPlan.hostPlan(settings, choice);
        out.println("host memory plan (besides the JVM; budget " + hostBudgetSource(r, hostBudget) + "):");
        host.format(hostBudget).forEach(out::println);
        if (budget > 0 && !plan.fits(budget)) throw new UserError(m.overBudget(plan, fitting, hostBudget));
        if (hostBudget > 0 && !host.fits(hostBudget)) {
            throw new UserError(String.format(Locale.ROOT, "host memory plan: %s (pinned swapped blocks %s, offloaded"
                            + " activations %s, staging %s) exceeds %s; swap fewer blocks, drop"
                            + " --gradient_checkpointing_cpu_offload, or free host memory", MemoryPlan.formatBytes(host.totalBytes()),
                    MemoryPlan.formatBytes(host.bytesOf(WanMemoryPlan.HOST_SWAPPED)),
                    MemoryPlan.formatBytes(host.bytesOf(WanMemoryPlan.HOST_OFFLOADED)),
                    MemoryPlan.formatBytes(host.bytesOf(WanMemoryPlan.HOST_STAGING)), hostBudgetSource(r, hostBudget)));
        }
        if (choice.blocksToSwap() > 0) {
            out.printf(Locale.ROOT, "block streaming: the Linear weights of blocks %d..%d from %s of %s host memory through %d"
                            + " device slots%n", r.config().numLayers() - choice.blocksToSwap(), maxSwap,
                    MemoryPlan.formatBytes(WanMemoryPlan.hostBytes(settings, choice.blocksToSwap())),
                    device != null && !device.pinsHostMemory() ? "ordinary" : "pinned", r.swapSlots());
        }
        return m;
    }

    private static boolean storesFp32(DeviceFacts device) {
        return device != null && device.storesFp32();
    }

    private static boolean onGpu(DeviceFacts device) {
        return device != null && device.hasDeviceMemory();
    }

    /**
     * --blocks_to_swap auto: the smallest swap count that fits without offload; else the cheapest swap count and
     * activation offload that fit (with --gradient_checkpointing); else the largest swap count (refused by the caller).
     */
    private static WanMemoryPlan.Choice autoChoice(Request r, WanMemoryPlan.Settings s, long budget, OptionalInt fitting,
                                                   WanDitActivations.Offload forced, long hostBudget) {
        int maxSwap = r.config().numLayers() - 1;
        if (budget <= 0) return new WanMemoryPlan.Choice(0, forced);
        if (forced.isOffloading()) {
            OptionalInt n = MemoryPlan.smallestFitting(0, maxSwap, k -> WanMemoryPlan.plan(s, new WanMemoryPlan.Choice(k, forced)),
                    budget);
            return new WanMemoryPlan.Choice(n.orElse(maxSwap), forced);
        }
        if (fitting.isPresent()) return WanMemoryPlan.Choice.swapping(fitting.getAsInt());
        WanMemoryPlan.Choice c = r.gradientCheckpointing()
                ? WanMemoryPlan.cheapestFitting(s, budget, hostBudget, true) : null;
        return c != null ? c : WanMemoryPlan.Choice.swapping(maxSwap);
    }

    /** The host budget: --max_host_ram, else MemAvailable of /proc/meminfo (0 when unknown: unchecked). */
    private static long hostBudget(Request r) {
        if (r.maxHostRam() != null) return MemoryPlan.parseBytes("--max_host_ram", r.maxHostRam());
        return HostMemory.availableBytes();
    }

    private static String hostBudgetSource(Request r, long hostBudget) {
        if (hostBudget <= 0) return "unknown: /proc/meminfo not readable; pass --max_host_ram";
        return MemoryPlan.formatBytes(hostBudget) + (r.maxHostRam() != null ? " (--max_host_ram " + r.maxHostRam() + ")"
                : " (MemAvailable)");
    }

    /** The over-budget message: the plan's total, the budget, and the smallest count that fits (or what to change). */
    private String overBudget(MemoryPlan plan, OptionalInt fitting, long hostBudget) {
        String head = String.format(Locale.ROOT, "memory plan: %s with --blocks_to_swap %d exceeds the budget of %s",
                MemoryPlan.formatBytes(plan.totalBytes()), choice.blocksToSwap(), budgetSource())
                + (savesAttentionOutputs ? String.format(Locale.ROOT, " (of which %s saved attention outputs:"
                + " --checkpoint_attention auto or off drops them)",
                MemoryPlan.formatBytes(plan.bytesOf(WanMemoryPlan.SAVED_ATTENTION))) : "")
                + (plan.bytesOf(SamplingMemoryPlan.DURING_TRAINING) == 0 ? "" : String.format(Locale.ROOT, " (of which %s"
                + " for the samples: smaller sizes in --sample_prompts (--w, --h, --f) need less)",
                MemoryPlan.formatBytes(plan.bytesOf(SamplingMemoryPlan.DURING_TRAINING))));
        if (fitting.isPresent()) {
            return head + String.format(Locale.ROOT, "; --blocks_to_swap %d fits (%s): pass it, or --blocks_to_swap auto",
                    fitting.getAsInt(), MemoryPlan.formatBytes(WanMemoryPlan.plan(settings, fitting.getAsInt()).totalBytes()));
        }
        WanMemoryPlan.Choice offloading = r.gradientCheckpointing()
                ? WanMemoryPlan.cheapestFitting(settings, budget, hostBudget, true) : null;
        if (offloading != null) {
            WanDitActivations.Offload off = offloading.offload();
            return head + String.format(Locale.ROOT, "; with activation offload it fits: --blocks_to_swap auto (%d blocks"
                            + " swapped, saved inputs of %d blocks%s in host memory: %s)", offloading.blocksToSwap(),
                    off.blockInputs(), off.attentionOutputs() == 0 ? "" : " and attention outputs of " + off.attentionOutputs(),
                    MemoryPlan.formatBytes(WanMemoryPlan.plan(settings, offloading).totalBytes()));
        }
        int maxSwap = r.config().numLayers() - 1;
        MemoryPlan most = WanMemoryPlan.plan(settings, maxSwap);
        WanDitActivations.Key largest = largestShape(settings.shapes());
        return head + String.format(Locale.ROOT, "; even --blocks_to_swap %d (the most for %d blocks) needs %s, of which %s"
                        + " are activations (largest input %d×%d×%d×%d latent, %d tokens): lower the resolution or frame count"
                        + " of the largest bucket in the dataset config%s", maxSwap, r.config().numLayers(),
                MemoryPlan.formatBytes(most.totalBytes()),
                MemoryPlan.formatBytes(most.bytesOf(WanMemoryPlan.SAVED_INPUTS) + most.bytesOf(WanMemoryPlan.RECOMPUTE)),
                largest.batch(), largest.frames(), largest.height(), largest.width(), tokens(largest),
                r.gradientCheckpointing() ? "" : ", or add --gradient_checkpointing");
    }

    /** The budget in bytes: --max_vram (at most the GPU's memory), else the GPU's memory; 0 on the CPU without --max_vram. */
    private static long budget(Request r, DeviceFacts device, PrintWriter out) {
        long asked = r.maxVram() == null ? 0 : MemoryPlan.parseBytes("--max_vram", r.maxVram());
        if (!onGpu(device)) return asked;
        long total = device.totalMemoryBytes();
        if (asked > total) {
            out.println("info: --max_vram " + r.maxVram() + " is more than the GPU's " + MemoryPlan.formatBytes(total)
                    + "; planning for the GPU's memory");
        }
        return asked > 0 ? Math.min(asked, total) : total;
    }

    /** The budget as the plan names it, e.g. {@code 24.00 GiB (--max_vram 24G)}. */
    String budgetSource() {
        return MemoryPlan.formatBytes(budget) + (r.maxVram() != null ? " (--max_vram " + r.maxVram() + ")" : " (the GPU's memory)");
    }

    /**
     * Every activation plan key the run will make (WanDit keeps one per input shape): per bucket of the training data
     * the full batch and the short last batch, without gradient checkpointing keeping every block's intermediates;
     * the validation data's forward-only shapes. Where a dataset's caches are not readable (--dry_run), its config's
     * largest buckets stand in ({@code dataToml}, {@code validationToml}). {@code savesAttention}: with gradient
     * checkpointing, the keys {@code WanDit.plan} makes once {@code WanDit.savesAttentionOutputs} is on (forward-only
     * calls share them).
     */
    public static List<WanDitActivations.Key> inputShapes(CacheDataset data, DatasetConfig dataToml, CacheDataset validationData,
                                                          DatasetConfig validationToml, int rank, boolean gradientCheckpointing,
                                                          boolean savesAttention) {
        Set<WanDitActivations.Key> keys = new LinkedHashSet<>();
        if (data != null) addShapes(keys, data, rank, !gradientCheckpointing);
        else addLargestBuckets(keys, dataToml, rank, !gradientCheckpointing);
        if (validationData != null) addShapes(keys, validationData, rank, false);
        else if (validationToml != null) addLargestBuckets(keys, validationToml, rank, false);
        boolean saves = savesAttention && gradientCheckpointing;
        return keys.stream().map(k -> new WanDitActivations.Key(k.batch(), k.frames(), k.height(), k.width(),
                k.loraRank(), k.keepsBlockIntermediates(), saves)).distinct().toList();
    }

    private static void addShapes(Set<WanDitActivations.Key> keys, CacheDataset dataset, int rank, boolean keepsIntermediates) {
        for (CacheDataset.DatasetCache d : dataset.datasets()) {
            int batchSize = d.spec().batchSize();
            for (Map.Entry<Bucket, List<CacheItem>> bucket : d.buckets().entrySet()) {
                long items = d.trainItemCount(bucket.getKey());
                Set<List<Long>> latents = new HashSet<>();
                for (CacheItem item : bucket.getValue()) {
                    long[] l = item.latentShape().dims(); // (16, F, H, W)
                    latents.add(List.of(l[1], l[2], l[3]));
                }
                // items of a bucket share a latent shape whenever batches hold more than one (discovery checks it)
                TreeSet<Long> batches = new TreeSet<>();
                if (latents.size() > 1) batches.add(1L);
                else {
                    batches.add(Math.min(batchSize, items));
                    if (items > batchSize && items % batchSize != 0) batches.add(items % batchSize);
                }
                for (List<Long> l : latents) {
                    for (long b : batches) {
                        keys.add(new WanDitActivations.Key((int) b, l.get(0).intValue(), l.get(1).intValue(),
                                l.get(2).intValue(), rank, keepsIntermediates));
                    }
                }
            }
        }
    }

    /**
     * Without caches (--dry_run): per dataset the bucket musubi's bucketing could produce with the most tokens, at the
     * dataset's batch size and its longest clip (the largest target_frames; FULL: max_frames rounded to 4n+1; an image: 1).
     */
    private static void addLargestBuckets(Set<WanDitActivations.Key> keys, DatasetConfig config, int rank,
                                          boolean keepsIntermediates) {
        for (DatasetSpec d : config.datasets()) {
            List<Resolution> buckets = d.bucketSelector().buckets();
            // among buckets of equal token count, the configured resolution (it is one when its sides are multiples of 16)
            Resolution largest = buckets.contains(d.resolution()) ? d.resolution() : null;
            for (Resolution r : buckets) {
                if (largest == null || (r.width() / 16) * (r.height() / 16) > (largest.width() / 16) * (largest.height() / 16)) {
                    largest = r;
                }
            }
            int frames = 1;
            if (d.isVideo()) {
                frames = d.frames().extraction() == FrameExtraction.FULL ? FrameSpec.roundDownTo4nPlus1(d.frames().maxFrames())
                        : d.frames().targetFrames().stream().mapToInt(Integer::intValue).max().orElse(1);
            }
            keys.add(new WanDitActivations.Key(d.batchSize(), FrameSpec.latentFrames(frames), largest.height() / 8,
                    largest.width() / 8, rank, keepsIntermediates));
        }
    }

    /** What the trainer and the backend allocate besides the model: batch tensors; on the GPU the attention workspace and the runtime. */
    private static List<MemoryPlan.Item> callerMemory(Request r, DeviceFacts device, List<WanDitActivations.Key> shapes) {
        long attention = 0;
        Set<Shape> latents = new HashSet<>();
        for (WanDitActivations.Key k : shapes) {
            latents.add(Shape.of(k.batch(), r.config().inChannels(), k.frames(), k.height(), k.width()));
            attention = Math.max(attention, DeviceFacts.attentionWorkspaceBytes(k.batch(), r.config().numHeads(), tokens(k)));
        }
        // TrainStep keeps one set of batch buffers per latent shape, reused by every batch of that shape
        long batch = latents.stream().mapToLong(BatchTensors::sizeBytes).sum();
        List<MemoryPlan.Item> items = new ArrayList<>();
        items.add(new MemoryPlan.Item("batch inputs", batch, "per batch shape: x0, x_t, target fp32, noise bf16, 512-row bf16 contexts"));
        items.addAll(r.extraItems());
        if (onGpu(device)) {
            items.add(new MemoryPlan.Item("attention workspace", attention, "backward delta (B, N, L) fp32"));
            items.add(WanMemoryPlan.cudaRuntime(device.usedBytes()));
        } else if (r.dryRun()) {
            items.add(new MemoryPlan.Item("attention workspace", attention, "backward delta (B, N, L) fp32"));
            items.add(WanMemoryPlan.estimatedCudaRuntime());
        }
        if (onGpu(device) || r.dryRun()) {
            items.add(WanMemoryPlan.allocationMargin());
        }
        return items;
    }

    private static WanDitActivations.Key largestShape(List<WanDitActivations.Key> shapes) {
        WanDitActivations.Key best = shapes.getFirst();
        for (WanDitActivations.Key k : shapes) if (k.batch() * tokens(k) > best.batch() * tokens(best)) best = k;
        return best;
    }

    private static long tokens(WanDitActivations.Key k) {
        return (long) k.frames() * (k.height() / 2) * (k.width() / 2);
    }

    /**
     * The out-of-memory advice: the plan the run was admitted with, and the smallest swap count planned to leave
     * {@link #OOM_HEADROOM_BYTES} more free (the plan missed something, so the fitting count is not enough).
     */
    public String outOfMemoryAdvice() {
        int swapped = choice.blocksToSwap();
        WanDitActivations.Offload offload = choice.offload();
        long planned = WanMemoryPlan.plan(settings, new WanMemoryPlan.Choice(swapped, offload)).totalBytes();
        OptionalInt more = MemoryPlan.smallestFitting(swapped + 1, r.config().numLayers() - 1,
                n -> WanMemoryPlan.plan(settings, new WanMemoryPlan.Choice(n, offload)), planned - OOM_HEADROOM_BYTES);
        String plan = "the memory plan for --blocks_to_swap " + swapped + " was " + MemoryPlan.formatBytes(planned)
                + (budget > 0 ? " of " + budgetSource() : "");
        return gpuPrefix(device) + plan + (more.isPresent()
                ? "; try --blocks_to_swap " + more.getAsInt() + " (planned " + MemoryPlan.formatBytes(OOM_HEADROOM_BYTES)
                + " lower), or lower the resolution or frame count in the dataset config"
                : "; lower the resolution or frame count in the dataset config");
    }

    /** The out-of-memory advice before a plan was made. */
    public static String outOfMemoryAdviceWithoutPlan(DeviceFacts device) {
        return gpuPrefix(device) + "use --fp8_base --fp8_scaled, --gradient_checkpointing and --blocks_to_swap";
    }

    private static String gpuPrefix(DeviceFacts device) {
        return onGpu(device) ? "the GPU has " + MemoryPlan.formatBytes(device.totalMemoryBytes()) + "; " : "";
    }
}
