package dev.wanlora.models.sampling;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.golden.GoldenVerifier.Comparison;
import dev.wanlora.models.golden.GoldenVerifier.Mode;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;

/**
 * Runs our solvers and the CFG loop on a folder in the sampling golden format
 * ({@code testdata/golden/sampling-tiny/README.md}): {@code unipc.safetensors} (every run {@code s{N}_fs{shift}}: the
 * schedules and every step of UniPC and Euler on recorded model outputs) and {@code loop.safetensors} (the whole
 * CFG loop with a DiT: {@code dit.safetensors} in the folder when present, else {@code ../wan-tiny/model.safetensors}).
 * The loop's steps, shift and CFG come from the file's metadata; its shapes from the tensors.
 */
public final class SamplingGoldenVerifier {

    /** The files this verifier reads; a folder with any of them is a sampling golden folder. */
    public static final List<String> FILES = List.of("unipc.safetensors", "loop.safetensors");

    /**
     * Solver alone, float64: a numpy float64 solver written from the spec lands at ≤ 2.5e-7 of the float32 golden
     * (README "Measured spreads"): the golden's own float32 rounding. 4× that.
     */
    static final double SOLVER_FLOAT64 = 1e-6;
    /** Solver alone, float32 path (torch's op order): the bound; it also covers linalg.solve's LU vs our 2×2 formula. */
    static final double SOLVER_FLOAT32 = 1e-5;
    /**
     * float32 loop (CPU) vs the float32 golden, per step.latent and final: a float64 replay differs from the golden by
     * 1.0e-7 growing to 7.4e-7 over 8 steps (README); our float32 DiT differs from torch's by summation order only
     * (≤ 1e-5 per forward in the DiT's own golden test, typically ~3e-7). 5e-6 = 7× the float64 spread, README's bound.
     */
    static final double LOOP_FP32_LATENT = 5e-6;
    /**
     * float32 loop, the DiT outputs and the CFG-combined v: one forward's bound of the DiT golden (1e-5, GoldenVerifier)
     * on its inputs; v = uncond + 5·(cond − uncond) amplifies the difference of two nearly equal outputs (the float64
     * replay measured v at 1.9e-6 with single forwards at 3.9e-7, ≈ 5×): 5 × 1e-5.
     */
    static final double LOOP_FP32_PRED = 1e-5;
    static final double LOOP_FP32_V = 5e-5;
    /**
     * bf16 DiT (BF16_MUSUBI) vs the float32 golden. One bf16 forward is ≈ 5.6e-3 from float32 (wan-tiny README); over
     * this loop the drift was measured by running musubi's bf16 roundings on the CPU backend
     * ({@code SamplingGoldenTest.bf16PathOnTheCpuHoldsTheBf16Bounds}): preds ≤ 1.14e-2 (their inputs drift too), the
     * CFG-combined v ≤ 2.9e-2 (CFG 5 amplifies cond − uncond), latents growing 1.5e-3 → 1.2e-2. A GPU does the same
     * roundings in another summation order, which changes these by a fraction of themselves: bounds ≈ 2× measured.
     */
    static final double LOOP_BF16_LATENT = 2.5e-2;
    static final double LOOP_BF16_PRED = 2.5e-2;
    static final double LOOP_BF16_V = 6e-2;

    private final Backend backend;
    private final Path dir;

    public SamplingGoldenVerifier(Backend backend, Path dir) {
        this.backend = backend;
        this.dir = dir;
    }

    /** Whether {@code dir} holds any sampling golden file. */
    public static boolean isSamplingFolder(Path dir) {
        return FILES.stream().anyMatch(f -> Files.isRegularFile(dir.resolve(f)));
    }

    /** The DiT the loop uses: {@code dit.safetensors} in the folder, else {@code ../wan-tiny/model.safetensors}. */
    public Path loopDit() {
        Path own = dir.resolve("dit.safetensors");
        return Files.isRegularFile(own) ? own : dir.resolveSibling("wan-tiny").resolve("model.safetensors");
    }

    /** Runs every comparison the folder's files allow, handing each line to {@code out} as soon as it is known. */
    public List<Comparison> run(Mode mode, Consumer<Comparison> out) {
        List<Comparison> all = new ArrayList<>();
        Consumer<Comparison> sink = c -> { all.add(c); out.accept(c); };
        Path unipc = dir.resolve("unipc.safetensors");
        if (Files.isRegularFile(unipc)) {
            for (SolverPrecision p : SolverPrecision.values()) compareSolvers(unipc, p, sink);
        }
        Path loop = dir.resolve("loop.safetensors");
        if (Files.isRegularFile(loop)) compareLoop(loop, mode, sink);
        return all;
    }

    // ---------------------------------------------------------------- solvers

    private void compareSolvers(Path file, SolverPrecision precision, Consumer<Comparison> sink) {
        double bound = precision == SolverPrecision.FLOAT64 ? SOLVER_FLOAT64 : SOLVER_FLOAT32;
        String label = precision == SolverPrecision.FLOAT64 ? "uni64" : "uni32";
        try (SafeTensors g = SafeTensors.open(file)) {
            for (String run : runs(g)) {
                long[] timesteps = longs(g, run + ".timesteps");
                int n = timesteps.length;
                double shift = Double.parseDouble(run.substring(run.indexOf("_fs") + 3).replace('p', '.'));
                UniPcFlowSolver uni = new UniPcFlowSolver(n, shift, precision);
                float[] ourT = new float[n], goldT = new float[n], ourS = new float[n + 1];
                for (int k = 0; k < n; k++) { ourT[k] = uni.timestep(k); goldT[k] = timesteps[k]; }
                for (int k = 0; k <= n; k++) ourS[k] = (float) uni.sigma(k);
                sink.accept(new Comparison(label, run + ".timesteps", ErrorStats.compare(ourT, goldT), 0, Double.NaN, true));
                sink.accept(new Comparison(label, run + ".sigmas", ErrorStats.compare(ourS, g.floats(run + ".sigmas")), 0,
                        Double.NaN, true));
                float[] v = g.floats(run + ".model_output"), prev = g.floats(run + ".prev_sample");
                float[] x = g.floats(run + ".sample0");
                int size = x.length;
                ErrorStats worst = null;
                for (int k = 0; k < n; k++) { // every step from the golden's own sample, so errors do not compound
                    worst = worse(worst, ErrorStats.compare(uni.step(slice(v, k, size), x), slice(prev, k, size)));
                    x = slice(prev, k, size);
                }
                sink.accept(new Comparison(label, run + ".prev_sample (worst of " + n + " steps)", worst, bound,
                        Double.NaN, true));

                EulerFlowSolver euler = new EulerFlowSolver(n, shift, precision);
                float[] eulerPrev = g.floats(run + ".euler.prev_sample");
                x = g.floats(run + ".sample0");
                worst = null;
                for (int k = 0; k < n; k++) {
                    worst = worse(worst, ErrorStats.compare(euler.step(slice(v, k, size), x), slice(eulerPrev, k, size)));
                    x = slice(eulerPrev, k, size);
                }
                sink.accept(new Comparison(label, run + ".euler.prev_sample (worst of " + n + " steps)", worst, bound,
                        Double.NaN, true));
            }
        }
    }

    /** The run names {@code s{N}_fs{shift}} of a unipc file, in key order. */
    private static List<String> runs(SafeTensors g) {
        return g.keys().stream().filter(k -> k.endsWith(".sample0")).map(k -> k.substring(0, k.length() - 8))
                .sorted().toList();
    }

    // ---------------------------------------------------------------- loop

    private void compareLoop(Path file, Mode mode, Consumer<Comparison> sink) {
        Path ditFile = loopDit();
        if (!Files.isRegularFile(ditFile)) {
            throw new IllegalArgumentException(file + ": the loop needs a DiT; put it in " + dir.resolve("dit.safetensors")
                    + " or " + ditFile);
        }
        boolean bf16 = mode == Mode.BF16_DEVICE;
        ComputePrecision precision = bf16 ? ComputePrecision.BF16_MUSUBI : ComputePrecision.FP32;
        String label = bf16 ? "loop16" : "loop32";
        try (SafeTensors g = SafeTensors.open(file);
             SafeTensors checkpoint = SafeTensors.open(ditFile, SafeTensors.DIT_PREFIXES)) {
            LoopConfig lc = LoopConfig.of(g);
            WanDitConfig config = WanDitConfig.fromCheckpoint(checkpoint);
            Shape latent = g.info("input.noise").shape();
            try (WanDitWeights weights = WanDitWeights.load(backend, checkpoint, config, precision,
                         WanDitWeights.Quantization.NONE, !bf16);
                 WanDit dit = new WanDit(backend, config, weights, precision, false);
                 Tensor cond = context(g, "input.context_cond", precision);
                 Tensor uncond = context(g, "input.context_uncond", precision)) {
                int size = Math.toIntExact(latent.numElements());
                float[] goldCond = g.floats("step.pred_cond"), goldUncond = g.floats("step.pred_uncond");
                float[] goldV = g.floats("step.noise_pred"), goldLatent = g.floats("step.latent");
                long[] goldT = longs(g, "timesteps");
                UniPcFlowSolver schedule = new UniPcFlowSolver(lc.steps, lc.shift, SolverPrecision.FLOAT32);
                float[] ourT = new float[lc.steps], expT = new float[lc.steps];
                for (int k = 0; k < lc.steps; k++) { ourT[k] = schedule.timestep(k); expT[k] = goldT[k]; }
                sink.accept(new Comparison(label, "timesteps", ErrorStats.compare(ourT, expT), 0, Double.NaN, true));
                ErrorStats[] worst = new ErrorStats[3];
                List<Comparison> latents = new ArrayList<>();
                double latentBound = bf16 ? LOOP_BF16_LATENT : LOOP_FP32_LATENT;
                // the path sampling takes when it fits: k/v cached, CFG as one batch-2 forward
                DenoisingLoop loop = new DenoisingLoop(backend, dit, true, DenoisingLoop.CfgMode.BATCH_2);
                float[] result = loop.run(g.floats("input.noise"), latent, cond, uncond, null,
                        new DenoisingLoop.Settings(lc.steps, lc.shift, lc.cfg, FlowSolver.Kind.UNIPC),
                        SolverPrecision.FLOAT32, (k, n, c, u, v, next, seconds) -> {
                            worst[0] = worse(worst[0], ErrorStats.compare(c, slice(goldCond, k, size)));
                            worst[1] = worse(worst[1], ErrorStats.compare(u, slice(goldUncond, k, size)));
                            worst[2] = worse(worst[2], ErrorStats.compare(v, slice(goldV, k, size)));
                            latents.add(new Comparison(label, "step.latent[" + k + "]",
                                    ErrorStats.compare(next, slice(goldLatent, k, size)), latentBound, Double.NaN, true));
                        });
                sink.accept(new Comparison(label, "step.pred_cond (worst of " + lc.steps + ")", worst[0],
                        bf16 ? LOOP_BF16_PRED : LOOP_FP32_PRED, Double.NaN, true));
                sink.accept(new Comparison(label, "step.pred_uncond (worst of " + lc.steps + ")", worst[1],
                        bf16 ? LOOP_BF16_PRED : LOOP_FP32_PRED, Double.NaN, true));
                sink.accept(new Comparison(label, "step.noise_pred (worst of " + lc.steps + ")", worst[2],
                        bf16 ? LOOP_BF16_V : LOOP_FP32_V, Double.NaN, true));
                latents.forEach(sink);
                sink.accept(new Comparison(label, "final", ErrorStats.compare(result, g.floats("final")), latentBound,
                        Double.NaN, true));
            }
        }
    }

    /** steps, shift and cfg of loop.safetensors's {@code config} metadata. */
    private record LoopConfig(int steps, double shift, double cfg) {
        static LoopConfig of(SafeTensors g) {
            String json = g.metadata().get("config");
            if (json == null) throw new IllegalArgumentException(g.path() + ": no config in __metadata__");
            try {
                JsonNode c = new ObjectMapper().readTree(json);
                for (String key : List.of("steps", "shift", "cfg")) {
                    if (!c.path(key).isNumber()) {
                        throw new IllegalArgumentException(g.path() + ": __metadata__ config has no number \"" + key + "\"");
                    }
                }
                return new LoopConfig(c.get("steps").asInt(), c.get("shift").asDouble(), c.get("cfg").asDouble());
            } catch (JsonProcessingException e) {
                throw new IllegalArgumentException(g.path() + ": __metadata__ config is not JSON: " + e.getOriginalMessage());
            }
        }
    }

    /** A context on the backend in the DiT's activation dtype (musubi keeps the T5 outputs in bf16). */
    private Tensor context(SafeTensors g, String key, ComputePrecision precision) {
        DType dtype = precision.activationDType();
        return backend.fromFloats(dtype, g.info(key).shape(), g.floats(key));
    }

    private static ErrorStats worse(ErrorStats a, ErrorStats b) {
        if (a == null) return b;
        if (b.nonFinite() > 0 && a.nonFinite() == 0) return b;
        return b.relL2() > a.relL2() ? b : a;
    }

    static long[] longs(SafeTensors g, String key) {
        return g.data(key).toArray(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN));
    }

    static float[] slice(float[] stacked, int k, int size) {
        return Arrays.copyOfRange(stacked, k * size, (k + 1) * size);
    }
}
