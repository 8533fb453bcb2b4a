package dev.wanlora.models.golden;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.lora.LoraModule;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitActivations;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.Quantization;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Runs our DiT on a folder in the golden format of {@code testdata/golden/README.md} ({@code model.safetensors} plus
 * any of {@code fp32}, {@code bf16}, {@code fp8}, {@code train}.safetensors) and compares every reference tensor.
 * The configuration comes from the checkpoint's shapes, the batch and text lengths from the inputs, the LoRA rank
 * from the LoRA tensors, so any batch size, block count or text length works.
 *
 * <p>Two modes. {@link Mode#FP32_REFERENCE} (the CPU backend) runs float32 math and holds it to the float32 goldens
 * at relL2 ≤ 1e-5, checks the fp8 quantizer byte for byte, runs the 6-step AdamW golden, and also reports musubi's
 * bf16 path against {@code bf16.safetensors}. {@link Mode#BF16_DEVICE} (a GPU backend) runs {@link
 * ComputePrecision#BF16_MUSUBI} and holds it to the float32 goldens within bf16's own error.
 */
public final class GoldenVerifier {

    public enum Mode { FP32_REFERENCE, BF16_DEVICE }

    /**
     * One compared tensor. relL2Bound and cosineBound are the pass conditions (NaN: not judged on that metric);
     * {@code isJudged} false means reported only.
     */
    public record Comparison(String file, String key, ErrorStats stats, double relL2Bound, double cosineBound,
                             boolean isJudged) {
        public boolean passed() {
            if (!isJudged) return true;
            if (stats.nonFinite() > 0) return false;
            boolean relOk = Double.isNaN(relL2Bound) || stats.relL2() <= relL2Bound;
            boolean cosOk = Double.isNaN(cosineBound) || stats.cosine() >= cosineBound;
            return relOk && cosOk;
        }

        /** "fp32 output.pred  relL2=2.6e-07 maxAbs=1.1e-06 cos=1.0000000  bound relL2≤1.0e-05 (3%)  OK". */
        public String describe() {
            StringBuilder bound = new StringBuilder();
            if (relL2Bound == 0) {
                bound.append("exact");
            } else if (!Double.isNaN(relL2Bound)) {
                bound.append(String.format(Locale.ROOT, "relL2≤%.1e (%.0f%%)", relL2Bound,
                        100 * stats.relL2() / relL2Bound));
            }
            if (!Double.isNaN(cosineBound)) {
                if (!bound.isEmpty()) bound.append(' ');
                bound.append(String.format(Locale.ROOT, "cos≥%.4f", cosineBound));
            }
            return String.format(Locale.ROOT, "%-6s %-62s relL2=%.2e maxAbs=%.2e cos=%.7f  %s  %s", file, key,
                    stats.relL2(), stats.maxAbs(), stats.cosine(), bound.isEmpty() ? "(reported)" : "bound " + bound,
                    !isJudged ? "INFO" : stats.nonFinite() > 0 ? "FAIL (" + stats.nonFinite() + " non-finite)"
                            : passed() ? "OK" : "FAIL");
        }
    }

    /**
     * float32 CPU math vs the float32 goldens: both sides run the same float32 operations and differ only in
     * summation order. The longest reduction is the text embedding's K = 4096 dot product; its rounding error is
     * ≈ √4096·2⁻²⁴ ≈ 4e-6 relative at worst-case alignment, ~1e-7 typically (an independent numpy implementation of
     * the spec lands at 3e-7 forward, 9e-7 gradients, 2e-6 after 6 AdamW steps). 1e-5 leaves ≥ 10× headroom.
     */
    static final double FP32_REL_L2 = 1e-5;
    /**
     * The lora_up gradients of cross-attention k and v sum over all K = 512 context rows, most of them identical
     * zero-padding rows whose contributions nearly cancel (softmax-gradient rows sum to zero), which amplifies float32
     * rounding. Measured on wan-tiny against a float64 central-difference oracle of the spec's forward: the golden
     * itself is off by 9.8e-6 (block 1 k) and 9.1e-6 (block 0 v), while our CPU result differs from the golden by the
     * same 9.8e-6 / 9.1e-6 (i.e. it sits on the float64 value). 3e-5 = 3× the golden's own error.
     */
    static final double CROSS_CONTEXT_UP_REL_L2 = 3e-5;
    /**
     * The 6-step run (golden/README.md): AdamW normalises each update by √v, so float32 noise in a gradient becomes
     * relative noise in the update; losses and grad norms within 1e-4 relative, final LoRA relL2 ≤ 1e-4.
     */
    static final double TRAIN_REL = 1e-4;
    /**
     * bf16 vs float32: README's bound for a bf16 GPU implementation, ≈ 1.5× the relL2 musubi's own bf16 run has on
     * output.pred (5.6e-3) — two independent bf16 roundings of similar size add in quadrature to ≈ 1.41×.
     */
    static final double BF16_PRED_REL_L2 = 8e-3;
    /** bf16 LoRA gradients vs float32: README's 0.9995 (musubi's own bf16 run reaches ≥ 0.9998). */
    static final double BF16_GRAD_COSINE = 0.9995;

    // golden/README.md, train.safetensors: torch AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
    private static final Backend.AdamWStep TRAIN_ADAMW = new Backend.AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1);
    private static final float TRAIN_DEFAULT_MAX_GRAD_NORM = 0.03f;

    private final Backend backend;
    private final Path dir;
    private final WanDitConfig config;

    /**
     * @throws IllegalArgumentException when {@code dir} has no model.safetensors or it is not a Wan DiT
     */
    public GoldenVerifier(Backend backend, Path dir) {
        this.backend = backend;
        this.dir = dir;
        Path model = dir.resolve("model.safetensors");
        if (!Files.isRegularFile(model)) {
            throw new IllegalArgumentException(dir + ": no model.safetensors; expected a folder in the golden format of"
                    + " testdata/golden/README.md (model.safetensors plus fp32/bf16/fp8/train.safetensors)");
        }
        try (SafeTensors st = SafeTensors.open(model, SafeTensors.DIT_PREFIXES)) {
            this.config = WanDitConfig.fromCheckpoint(st);
        }
    }

    public WanDitConfig config() { return config; }

    /**
     * Runs every comparison the folder's files allow for {@code mode}, handing each line to {@code out} as soon as it
     * is known. Returns all of them.
     */
    public List<Comparison> run(Mode mode, Consumer<Comparison> out) {
        List<Comparison> all = new ArrayList<>();
        Consumer<Comparison> sink = c -> { all.add(c); out.accept(c); };
        Path fp32 = dir.resolve("fp32.safetensors");
        Path bf16 = dir.resolve("bf16.safetensors");
        Path fp8 = dir.resolve("fp8.safetensors");
        Path train = dir.resolve("train.safetensors");
        boolean hasBf16 = Files.isRegularFile(bf16);
        if (mode == Mode.FP32_REFERENCE) {
            if (Files.isRegularFile(fp32)) {
                compareStep(fp32, "fp32", ComputePrecision.FP32, Quantization.NONE, false, Bounds.fp32(), null, sink);
            }
            if (hasBf16 && Files.isRegularFile(fp32)) {
                // musubi's bf16 path on the CPU, judged against float32 with the bound bf16.safetensors earns, and shown
                // against musubi's own bf16 run.
                compareStep(fp32, "bf16", ComputePrecision.BF16_MUSUBI, Quantization.NONE, false, Bounds.bf16(fp32, bf16), bf16,
                        sink);
            }
        } else if (Files.isRegularFile(fp32)) {
            compareStep(fp32, "fp32", ComputePrecision.BF16_MUSUBI, Quantization.NONE, false,
                    hasBf16 ? Bounds.bf16(fp32, bf16) : Bounds.bf16Default(), null, sink);
        }
        if (Files.isRegularFile(fp8)) {
            compareQuantizer(fp8, sink);
            // fp8.safetensors is float32 math on dequantized weights: the same relation to our bf16 path as fp32's.
            compareStep(fp8, "fp8", mode == Mode.FP32_REFERENCE ? ComputePrecision.FP32 : ComputePrecision.BF16_MUSUBI,
                    Quantization.FP8_SCALED, false, mode == Mode.FP32_REFERENCE ? Bounds.fp32()
                            : hasBf16 ? Bounds.bf16(fp32, bf16) : Bounds.bf16Default(), null, sink);
        }
        if (Files.isRegularFile(train)) {
            compareTraining(train, mode == Mode.FP32_REFERENCE ? ComputePrecision.FP32 : ComputePrecision.BF16_MUSUBI, sink);
        }
        return all;
    }

    /**
     * {@code --fp8_compute}'s numerics (issue 11), reported, not judged: the step of {@code fp8.safetensors} with the
     * block Linears' forward GEMMs in per-tensor fp8 ({@code Backend.gemmFp8}) against that golden (musubi's
     * {@code --fp8_scaled} math on dequantized weights), and its outputs against {@code fp32.safetensors} (no fp8 at
     * all). Precision as {@link #run}: float32 activations on the CPU, musubi's bf16 path on a GPU.
     *
     * @throws IllegalArgumentException when the folder has no fp8.safetensors
     */
    public List<Comparison> runFp8Compute(Mode mode, Consumer<Comparison> out) {
        Path fp8 = dir.resolve("fp8.safetensors"), fp32 = dir.resolve("fp32.safetensors");
        if (!Files.isRegularFile(fp8)) {
            throw new IllegalArgumentException(dir + ": no fp8.safetensors, which --fp8_compute is compared with; use a"
                    + " golden folder that has one (testdata/golden/wan-tiny)");
        }
        List<Comparison> all = new ArrayList<>();
        Consumer<Comparison> sink = c -> { all.add(c); out.accept(c); };
        compareStep(fp8, "fp8c", mode == Mode.FP32_REFERENCE ? ComputePrecision.FP32 : ComputePrecision.BF16_MUSUBI,
                Quantization.FP8_SCALED, true, Bounds.REPORTED, Files.isRegularFile(fp32) ? fp32 : null, sink);
        return all;
    }

    // ---------------------------------------------------------------- one forward + backward

    /**
     * One forward + backward with {@code reference}'s inputs and LoRA; every output.* and grad.* of it is judged by
     * {@code bounds} (reported only with {@code fp8Compute}, the opt-in per-tensor fp8 GEMMs). With
     * {@code infoReference}, its output.* are shown too (reported only).
     */
    private void compareStep(Path reference, String label, ComputePrecision precision, Quantization quantization,
                             boolean fp8Compute, Bounds bounds, Path infoReference, Consumer<Comparison> sink) {
        boolean isJudged = !fp8Compute;
        try (SafeTensors golden = SafeTensors.open(reference);
             SafeTensors checkpoint = SafeTensors.open(dir.resolve("model.safetensors"), SafeTensors.DIT_PREFIXES);
             // fp8: the float32 reference dequantizes once at load; the bf16 device path keeps fp8 codes and
             // dequantizes right before each GEMM, as training on a GPU does.
             WanDitWeights weights = WanDitWeights.load(backend, checkpoint, config, precision, quantization,
                     precision == ComputePrecision.FP32, fp8Compute, WanDitWeights.BlockSwap.NONE, bytes -> {});
             WanDit dit = new WanDit(backend, config, weights, precision, true);
             Inputs in = Inputs.read(backend, golden, "input.");
             LoraNetwork lora = loraFrom(golden, "lora.", reference);
             Tensor loss = backend.allocate(DType.F32, Shape.of(1))) {
            lossAndBackward(dit, in, lora, loss);
            Map<String, Tensor> outputs = outputs(dit.lastActivations(), loss);
            for (String key : golden.keys()) {
                Tensor ours = outputs.get(key);
                if (ours != null) {
                    sink.accept(compare(label, key, ours, golden.floats(key), bounds.outputRelL2(key), Double.NaN, isJudged));
                }
            }
            for (LoraModule m : lora.modules()) {
                for (boolean isDown : new boolean[] {true, false}) {
                    String key = "grad." + m.name() + (isDown ? ".lora_down.weight" : ".lora_up.weight");
                    if (!golden.contains(key)) continue;
                    sink.accept(compare(label, key, isDown ? m.dDown() : m.dUp(), golden.floats(key),
                            bounds.gradientRelL2(key), bounds.gradientCosine(), isJudged));
                }
            }
            if (infoReference != null) {
                String infoLabel = label + "~torch";
                try (SafeTensors info = SafeTensors.open(infoReference)) {
                    for (String key : info.keys()) {
                        Tensor ours = outputs.get(key);
                        if (ours != null) {
                            sink.accept(compare(infoLabel, key, ours, info.floats(key), Double.NaN, Double.NaN, false));
                        }
                    }
                }
            }
        }
    }

    /**
     * musubi's training step on the golden's inputs: loss = mean((pred − target)²) into {@code loss} (1) F32, its
     * gradient seeded into the DiT's prediction gradient, then the backward (LoRA gradients +=): the ops, in order, of
     * pipeline's FlowMatchingObjective, which the golden pins from this side (models cannot import the pipeline).
     */
    private void lossAndBackward(WanDit dit, Inputs in, LoraNetwork lora, Tensor loss) {
        Tensor pred = dit.trainingForward(in.xt, in.timesteps, in.contexts, lora);
        backend.mseLoss(loss, dit.predictionGradient(), pred, in.target, 1f);
        dit.backward(lora);
    }

    /** Our tensors under the golden's output.* names. */
    private Map<String, Tensor> outputs(WanDitActivations a, Tensor loss) {
        Map<String, Tensor> outputs = new HashMap<>();
        outputs.put("output.e", a.e);
        outputs.put("output.e0", a.e0);
        outputs.put("output.context_emb", a.context);
        for (int i = 0; i < config.numLayers(); i++) outputs.put("output.block." + i, a.blockInputs[i + 1]);
        outputs.put("output.pred", a.pred);
        outputs.put("output.loss", loss);
        return outputs;
    }

    /**
     * Pass conditions for one run. outputBound gives each output's relL2 bound (NaN: none), gradient bounds apply to
     * every grad.* (cross-attention k/v lora_up ones get {@link #CROSS_CONTEXT_UP_REL_L2} in float32).
     */
    private record Bounds(Map<String, Double> outputBound, double defaultOutputBound, double gradientBound,
                          double gradientCosine) {

        double outputRelL2(String key) { return outputBound.getOrDefault(key, defaultOutputBound); }

        double gradientRelL2(String key) {
            if (Double.isNaN(gradientBound)) return gradientBound;
            boolean readsPaddedContext = key.contains("_cross_attn_k.lora_up") || key.contains("_cross_attn_v.lora_up");
            return readsPaddedContext ? CROSS_CONTEXT_UP_REL_L2 : gradientBound;
        }

        static Bounds fp32() { return new Bounds(Map.of(), FP32_REL_L2, FP32_REL_L2, Double.NaN); }

        /** No bound: every line reported (--fp8_compute's numerics). */
        static final Bounds REPORTED = new Bounds(Map.of(), Double.NaN, Double.NaN, Double.NaN);

        /** README's bounds for a bf16 implementation vs float32 when no bf16.safetensors earns sharper ones. */
        static Bounds bf16Default() { return new Bounds(Map.of(), BF16_PRED_REL_L2, Double.NaN, BF16_GRAD_COSINE); }

        /**
         * STYLE.md §4, "earned, not guessed": each output within 1.5× the relL2 musubi's own bf16 run has against
         * float32 on that tensor, + 1e-3 (two independent bf16 roundings of the same math add in quadrature to ≈
         * 1.41×; the 1e-3 covers tensors where torch's bf16 error is ~0, e.g. the fp32 time embedding). pred is
         * further capped at README's 8e-3. Gradients: cosine ≥ 0.9995 (README; musubi's bf16 run reaches ≥ 0.9998).
         */
        static Bounds bf16(Path fp32, Path bf16) {
            Map<String, Double> bound = new HashMap<>();
            try (SafeTensors f = SafeTensors.open(fp32); SafeTensors b = SafeTensors.open(bf16)) {
                for (String key : f.keys()) {
                    if (!key.startsWith("output.") || !b.contains(key)) continue;
                    double torchError = ErrorStats.compare(b.floats(key), f.floats(key)).relL2();
                    double earned = 1.5 * torchError + 1e-3;
                    bound.put(key, key.equals("output.pred") ? Math.min(earned, BF16_PRED_REL_L2) : earned);
                }
            }
            return new Bounds(bound, BF16_PRED_REL_L2, Double.NaN, BF16_GRAD_COSINE);
        }
    }

    // ---------------------------------------------------------------- fp8 quantizer

    /** Our block-64 quantizer vs musubi's bytes and scales (deterministic: every byte must match). */
    private void compareQuantizer(Path file, Consumer<Comparison> sink) {
        try (SafeTensors golden = SafeTensors.open(file);
             SafeTensors checkpoint = SafeTensors.open(dir.resolve("model.safetensors"), SafeTensors.DIT_PREFIXES);
             WanDitWeights weights = WanDitWeights.load(backend, checkpoint, config, ComputePrecision.FP32,
                     Quantization.FP8_SCALED, false)) {
            for (WanDitWeights.Block block : weights.blocks()) {
                for (BlockLinear layer : BlockLinear.values()) {
                    WanDitWeights.Linear lin = block.linear(layer);
                    String codes = "fp8." + lin.key();
                    String scales = "fp8scale." + lin.key().replaceFirst("\\.weight$", ".scale_weight");
                    if (golden.contains(codes)) {
                        sink.accept(compare("fp8", codes, lin.quantized(), golden.floats(codes), 0, Double.NaN, true));
                    }
                    if (golden.contains(scales)) {
                        sink.accept(compare("fp8", scales, lin.scale(), golden.floats(scales), 0, Double.NaN, true));
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- the 6-step training golden

    private void compareTraining(Path file, ComputePrecision precision, Consumer<Comparison> sink) {
        boolean isFp32 = precision == ComputePrecision.FP32;
        // float32: README's 1e-4 relative on losses and grad norms. bf16: STYLE.md §4's tiny-config loss curve
        // |Δ| ≤ 2e-2 per step (compounding bf16 drift), and the grad norm within 2e-2 relative (bf16 LoRA gradients
        // differ from float32 by relL2 ≈ 1e-2, see the fp32 lines).
        double gradNormBound = isFp32 ? TRAIN_REL : 2e-2;
        try (SafeTensors golden = SafeTensors.open(file);
             SafeTensors checkpoint = SafeTensors.open(dir.resolve("model.safetensors"), SafeTensors.DIT_PREFIXES);
             WanDitWeights weights = WanDitWeights.load(backend, checkpoint, config, precision, Quantization.NONE, true);
             WanDit dit = new WanDit(backend, config, weights, precision, true);
             LoraNetwork lora = loraFrom(golden, "init.", file);
             Tensor lossOut = backend.allocate(DType.F32, Shape.of(1));
             Tensor normSquared = backend.allocate(DType.F32, Shape.of(1));
             Tensor clip = backend.allocate(DType.F32, Shape.of(1))) {
            List<Tensor[]> moments = new ArrayList<>();
            for (LoraModule m : lora.modules()) {
                moments.add(new Tensor[] {backend.allocate(DType.F32, m.down().shape()),
                        backend.allocate(DType.F32, m.down().shape()), backend.allocate(DType.F32, m.up().shape()),
                        backend.allocate(DType.F32, m.up().shape())});
            }
            try {
                float maxGradNorm = maxGradNorm();
                float[] goldenLosses = golden.contains("loss") ? golden.floats("loss") : null;
                for (int step = 0; golden.contains("step" + step + ".x0"); step++) {
                    float loss;
                    float gradNorm;
                    try (Inputs in = Inputs.read(backend, golden, "step" + step + ".")) {
                        lora.zeroGrad();
                        lossAndBackward(dit, in, lora, lossOut);
                        loss = backend.toFloats(lossOut)[0];
                    }
                    backend.fill(normSquared, 0);
                    for (LoraModule m : lora.modules()) {
                        backend.sumOfSquares(normSquared, m.dDown());
                        backend.sumOfSquares(normSquared, m.dUp());
                    }
                    gradNorm = (float) Math.sqrt(backend.toFloats(normSquared)[0]);
                    backend.clipCoefficient(clip, normSquared, maxGradNorm);
                    Backend.AdamWStep hyper = new Backend.AdamWStep(TRAIN_ADAMW.learningRate(), TRAIN_ADAMW.beta1(),
                            TRAIN_ADAMW.beta2(), TRAIN_ADAMW.eps(), TRAIN_ADAMW.weightDecay(), step + 1);
                    for (int k = 0; k < lora.modules().size(); k++) {
                        LoraModule m = lora.modules().get(k);
                        Tensor[] mv = moments.get(k);
                        backend.adamw(m.down(), m.dDown(), mv[0], mv[1], clip, hyper);
                        backend.adamw(m.up(), m.dUp(), mv[2], mv[3], clip, hyper);
                    }
                    if (goldenLosses != null) {
                        double lossBound = isFp32 ? TRAIN_REL : 2e-2 / Math.abs(goldenLosses[step]);
                        sink.accept(scalar("train", "loss[" + step + "]", loss, goldenLosses[step], lossBound));
                    }
                    String normKey = "step" + step + ".grad_norm";
                    if (golden.contains(normKey)) {
                        sink.accept(scalar("train", normKey, gradNorm, golden.floats(normKey)[0], gradNormBound));
                    }
                }
                for (LoraModule m : lora.modules()) {
                    for (boolean isDown : new boolean[] {true, false}) {
                        String key = "final." + m.name() + (isDown ? ".lora_down.weight" : ".lora_up.weight");
                        if (!golden.contains(key)) continue;
                        // In bf16 the final LoRA is reported only: 6 sign-normalised AdamW steps amplify bf16 gradient
                        // noise in small components (the CPU's bf16 path lands at relL2 ≤ 5e-2, cosine ≥ 0.998); the
                        // loss curve is the judged quantity.
                        sink.accept(compare("train", key, isDown ? m.down() : m.up(), golden.floats(key),
                                isFp32 ? TRAIN_REL : Double.NaN, Double.NaN, isFp32));
                    }
                }
            } finally {
                moments.forEach(ts -> { for (Tensor t : ts) t.close(); });
            }
        }
    }

    /** max_grad_norm from MANIFEST.json when present (the README's 0.03 otherwise). */
    private float maxGradNorm() {
        Path manifest = dir.resolve("MANIFEST.json");
        if (!Files.isRegularFile(manifest)) return TRAIN_DEFAULT_MAX_GRAD_NORM;
        try {
            var node = new com.fasterxml.jackson.databind.ObjectMapper().readTree(manifest.toFile()).get("max_grad_norm");
            return node == null ? TRAIN_DEFAULT_MAX_GRAD_NORM : node.floatValue();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(manifest + ": cannot read (" + e.getMessage() + ")", e);
        }
    }

    // ---------------------------------------------------------------- inputs and helpers

    /** x_t, target (B, Cin, F, H, W) F32, timesteps (B) F32, contexts (L_i, Ct) F32 of one golden step. */
    private record Inputs(Tensor xt, Tensor target, Tensor timesteps, List<Tensor> contexts, List<Tensor> owned)
            implements AutoCloseable {
        static Inputs read(Backend backend, SafeTensors golden, String prefix) {
            List<Tensor> owned = new ArrayList<>();
            Tensor x0 = load(backend, golden, prefix + "x0", owned);
            Tensor noise = load(backend, golden, prefix + "noise", owned);
            Tensor t = load(backend, golden, prefix + "t", owned);
            Tensor timesteps = load(backend, golden, prefix + "timestep", owned);
            if (t.shape().rank() == 0) t = t.reshape(Shape.of(1));
            if (timesteps.shape().rank() == 0) timesteps = timesteps.reshape(Shape.of(1));
            List<Tensor> contexts = new ArrayList<>();
            for (int b = 0; golden.contains(prefix + "context." + b); b++) {
                contexts.add(load(backend, golden, prefix + "context." + b, owned));
            }
            Tensor xt = backend.allocate(DType.F32, x0.shape());
            Tensor target = backend.allocate(DType.F32, x0.shape());
            owned.add(xt);
            owned.add(target);
            // spec §4.2-4.3: x_t = (1 − t)·x0 + t·noise, target = noise − x0.
            backend.flowMatchingInput(xt, target, x0, noise, t);
            return new Inputs(xt, target, timesteps, contexts, owned);
        }

        @Override
        public void close() { owned.forEach(Tensor::close); }
    }

    private static Tensor load(Backend backend, SafeTensors golden, String key, List<Tensor> owned) {
        Tensor t = backend.fromFloats(DType.F32, golden.info(key).shape(), golden.floats(key));
        owned.add(t);
        return t;
    }

    /** The LoRA stored under {@code prefix} ("lora.", "init.") in musubi's key format. */
    private LoraNetwork loraFrom(SafeTensors golden, String prefix, Path file) {
        List<LoraModuleWeights> modules = new ArrayList<>();
        for (String key : golden.keys()) {
            if (!key.startsWith(prefix) || !key.endsWith(".lora_down.weight")) continue;
            String name = key.substring(prefix.length(), key.length() - ".lora_down.weight".length());
            Shape down = golden.info(key).shape();
            Shape up = golden.info(prefix + name + ".lora_up.weight").shape();
            String alphaKey = prefix + name + ".alpha";
            float alpha = golden.contains(alphaKey) ? golden.floats(alphaKey)[0] : 0;
            modules.add(new LoraModuleWeights(name, (int) down.dim(0), (int) down.dim(1), (int) up.dim(0), alpha,
                    golden.floats(key), golden.floats(prefix + name + ".lora_up.weight")));
        }
        return LoraNetwork.fromWeights(backend, config, modules, file.getFileName() + " (" + prefix + "*)");
    }

    private Comparison compare(String file, String key, Tensor ours, float[] expected, double relL2Bound,
                               double cosineBound, boolean isJudged) {
        return new Comparison(file, key, ErrorStats.compare(backend.toFloats(ours), expected), relL2Bound, cosineBound,
                isJudged);
    }

    private static Comparison scalar(String file, String key, float ours, float expected, double relBound) {
        return new Comparison(file, key, ErrorStats.compare(new float[] {ours}, new float[] {expected}), relBound,
                Double.NaN, true);
    }
}
