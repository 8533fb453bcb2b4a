package dev.wanlora.benchmarks;

import dev.wanlora.pipeline.train.BenchRun;
import dev.wanlora.pipeline.train.CheckpointAttention;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.Backends;
import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.cuda.DeviceBuffer;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.runner.IterationType;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Seconds per training step per resolution: one invocation is one full {@code wanlora train} step ({@link BenchRun}:
 * upload, noise, forward, loss, backward, clip, AdamW8bit update) on a random-weight model drawn on the device,
 * measured single-shot from its start until the device has finished it. The same numbers as {@code wanlora bench}.
 *
 * <p>The grid (issue 11): the seed dataset's shapes 768x768x1, 768x416x21, 384x208x45 plus 832x480x81 (pixels
 * WxHxframes) × {@code --blocks_to_swap} 0 and 10 × fp8_scaled and bf16 × t2v-14B and t2v-1.3B: 32 trials, over an
 * hour on an H200, so pick a subset with JMH's {@code -p}, e.g. {@code -p task=t2v-14B -p shape=384x208x45 -p swap=10}.
 * With {@code $WANLORA_TRAIN_STEP_TABLE} set to a file, each trial appends one tab-separated row there (the
 * measured steps' median/min/max, peak memory and plan, the GEMM floor, a profiled step's phase split; or "out of
 * memory"), which {@link TrainStepTable} turns into the markdown + JSON table. {@code -p backend=cpu} suits only
 * {@code task=tiny} at a small shape.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3)
@Measurement(iterations = 10)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-Xss8m"})
public class TrainStepBenchmark {

    /** t2v-14B, t2v-1.3B or tiny. */
    @Param({"t2v-14B", "t2v-1.3B"})
    public String task;

    /** Pixel WIDTHxHEIGHTxFRAMES: multiples of 16, 4n+1 frames. */
    @Param({"768x768x1", "768x416x21", "384x208x45", "832x480x81"})
    public String shape;

    /** Blocks whose Linear weights stream from pinned host memory (--blocks_to_swap). */
    @Param({"0", "10"})
    public int swap;

    /** fp8_scaled, fp8_base or bf16 block weights. */
    @Param({"fp8_scaled", "bf16"})
    public String weights;

    @Param("32")
    public int rank;

    @Param("cuda")
    public String backend;

    private Backend device;
    private BenchRun run;
    private long latentFrames, tokens;
    private boolean isMeasuring;
    private final List<BenchRun.StepTime> measured = new ArrayList<>();

    @Setup(Level.Trial)
    public void setUp() {
        String[] whf = shape.split("x");
        if (whf.length != 3) throw new IllegalArgumentException("TrainStepBenchmark: shape " + shape + " is not WxHxFRAMES, e.g. 384x208x45");
        int width = Integer.parseInt(whf[0]), height = Integer.parseInt(whf[1]), frames = Integer.parseInt(whf[2]);
        if (width % 16 != 0 || height % 16 != 0 || (frames - 1) % 4 != 0) {
            throw new IllegalArgumentException("TrainStepBenchmark: shape " + shape + ": width and height must be multiples"
                    + " of 16 and frames 4n+1");
        }
        Quantization q = switch (weights) {
            case "fp8_scaled" -> Quantization.FP8_SCALED;
            case "fp8_base" -> Quantization.FP8_BASE;
            case "bf16" -> Quantization.NONE;
            default -> throw new IllegalArgumentException("TrainStepBenchmark: weights " + weights
                    + " is not known; supported: fp8_scaled, fp8_base, bf16");
        };
        latentFrames = (frames - 1) / 4 + 1;
        tokens = latentFrames * (height / 16) * (width / 16);
        device = Backends.create(backend);
        try {
            run = BenchRun.open(device, new BenchRun.Settings(BenchRun.taskConfig(task), q, rank, rank, true,
                    CheckpointAttention.AUTO, "adamw8bit", swap, 42, WanDitActivations.Offload.NONE, 0));
            run.shape(1, (int) latentFrames, height / 8, width / 8, BenchRun.DEFAULT_TEXT_ROWS);
        } catch (RuntimeException e) {
            appendRow(String.join("\t", task, shape, Long.toString(tokens), weights, Integer.toString(swap),
                    "failed: " + e.getMessage().replace('\t', ' ').replace('\n', ' ')));
            throw e;
        }
    }

    @Setup(Level.Iteration)
    public void iteration(IterationParams params) { isMeasuring = params.getType() == IterationType.MEASUREMENT; }

    /** One training step; returns its loss so the work cannot be elided. */
    @Benchmark
    public double step() {
        BenchRun.StepTime t = run.steps(1).getFirst();
        if (isMeasuring) measured.add(t);
        return t.loss();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        try {
            if (System.getenv("WANLORA_TRAIN_STEP_TABLE") != null && !measured.isEmpty()) appendRow(row());
        } finally {
            run.close();
            device.close();
        }
    }

    /**
     * task, shape, tokens, weights, swap, checkpoint_attention, backward weights kept, steps, median, min, max s/it,
     * peak and plan GiB, GEMM TFLOP per step, rate TFLOP/s, floor s, % of floor, phase ms (data, forward, backward,
     * update, outside), device. Peak and the profiled step come after the measured steps.
     */
    private String row() {
        double[] s = measured.stream().mapToDouble(BenchRun.StepTime::seconds).sorted().toArray();
        double median = s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
        boolean onGpu = device instanceof CudaBackend;
        double peak = onGpu ? DeviceBuffer.peakLiveBytes() / (double) (1L << 30) : Double.NaN;
        double planGiB = run.plan().totalBytes() / (double) (1L << 30);
        Map<String, Double> phases = BenchRun.phaseMillis(run.profiledStep());
        double flops = BenchRun.frozenGemmFlops(run.settings().config(), 1, tokens, true);
        double rate = run.gemmTflops(tokens);
        double floor = flops / (rate * 1e12);
        String card = device instanceof CudaBackend cuda ? cuda.context().deviceName() : "cpu";
        return String.join("\t", task, shape, Long.toString(tokens), weights, Integer.toString(swap),
                run.savesAttentionOutputs() ? "on" : "off", run.keepsBackwardWeights() ? "yes" : "no",
                Integer.toString(s.length), f(median), f(s[0]), f(s[s.length - 1]), f(peak), f(planGiB), f(flops / 1e12),
                f(rate), f(floor), f(100 * floor / median), f(phases.get("data")), f(phases.get("forward")),
                f(phases.get("backward")), f(phases.get("update")), f(phases.get("outside")), card);
    }

    private static String f(double v) { return String.format(Locale.ROOT, "%.4f", v); }

    private static void appendRow(String row) {
        String file = System.getenv("WANLORA_TRAIN_STEP_TABLE");
        if (file == null) return;
        try {
            Files.writeString(Path.of(file), row + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        } catch (IOException e) {
            throw new IllegalStateException("TrainStepBenchmark: cannot append to $WANLORA_TRAIN_STEP_TABLE " + file + ": " + e, e);
        }
    }
}
