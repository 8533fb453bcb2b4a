package dev.wanlora.benchmarks;

import dev.wanlora.pipeline.train.BenchRun;
import dev.wanlora.pipeline.train.CheckpointAttention;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.Backends;
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

import java.util.concurrent.TimeUnit;

/**
 * Seconds per training step per resolution: one invocation is one full {@code wanlora train} step ({@link BenchRun}:
 * upload, noise, forward, loss, backward, clip, AdamW8bit update) on a random-weight model drawn on the device,
 * measured single-shot from its start until the device has finished it. The same numbers as {@code wanlora bench}.
 *
 * <p>On the GPU bundle: {@code java --enable-native-access=ALL-UNNAMED -cp "lib/*" org.openjdk.jmh.Main
 * TrainStepBenchmark -p task=t2v-14B -p resolution=384x208,832x480 -p frames=45}. With {@code -p backend=cpu} only
 * {@code task=tiny} at a small resolution is sensible.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3)
@Measurement(iterations = 10)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow", "-Xss8m"})
public class TrainStepBenchmark {

    /** t2v-14B, t2v-1.3B or tiny. */
    @Param("t2v-14B")
    public String task;

    /** Pixel WIDTHxHEIGHT, multiples of 16. */
    @Param("384x208")
    public String resolution;

    /** Pixel frames, 4n+1. */
    @Param("45")
    public int frames;

    /** fp8_scaled, fp8_base or bf16 block weights. */
    @Param("fp8_scaled")
    public String weights;

    @Param("32")
    public int rank;

    @Param("cuda")
    public String backend;

    private Backend device;
    private BenchRun run;

    @Setup(Level.Trial)
    public void setUp() {
        String[] wh = resolution.split("x");
        int width = Integer.parseInt(wh[0]), height = Integer.parseInt(wh[1]);
        if (width % 16 != 0 || height % 16 != 0 || (frames - 1) % 4 != 0) {
            throw new IllegalArgumentException("TrainStepBenchmark: resolution " + resolution + " and frames " + frames
                    + " must be multiples of 16 and 4n+1");
        }
        Quantization q = switch (weights) {
            case "fp8_scaled" -> Quantization.FP8_SCALED;
            case "fp8_base" -> Quantization.FP8_BASE;
            case "bf16" -> Quantization.NONE;
            default -> throw new IllegalArgumentException("TrainStepBenchmark: weights " + weights
                    + " is not known; supported: fp8_scaled, fp8_base, bf16");
        };
        device = Backends.create(backend);
        run = BenchRun.open(device, new BenchRun.Settings(BenchRun.taskConfig(task), q, rank, rank, true,
                CheckpointAttention.AUTO, "adamw8bit", 0, 42));
        run.shape(1, (frames - 1) / 4 + 1, height / 8, width / 8, BenchRun.DEFAULT_TEXT_ROWS);
    }

    /** One training step; returns its loss so the work cannot be elided. */
    @Benchmark
    public double step() {
        return run.steps(1).getFirst().loss();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        run.close();
        device.close();
    }
}
