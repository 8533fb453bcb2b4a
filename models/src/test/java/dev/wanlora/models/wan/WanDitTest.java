package dev.wanlora.models.wan;

import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.lora.LoraModule;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Properties of the DiT that need no reference numbers: gradient checkpointing changes nothing, fp8 weights kept
 * quantized give the same numbers as weights dequantized at load, plans are reused. (Numbers vs musubi:
 * {@link WanDitGoldenTest}.)
 */
@RequiresGolden("wan-tiny")
class WanDitTest {

    private static final Backend BACKEND = new CpuBackend();
    private static Path dir;
    private static SafeTensors golden;
    private static SafeTensors checkpoint;
    private static WanDitConfig config;
    private static Tensor xt, target, timesteps;
    private static List<Tensor> contexts;

    @BeforeAll
    static void readGolden() {
        dir = Golden.dir("wan-tiny");
        golden = SafeTensors.open(dir.resolve("fp32.safetensors"));
        checkpoint = SafeTensors.open(dir.resolve("model.safetensors"), SafeTensors.DIT_PREFIXES);
        config = WanDitConfig.fromCheckpoint(checkpoint);
        Tensor x0 = load("input.x0"), noise = load("input.noise");
        xt = BACKEND.allocate(DType.F32, x0.shape());
        target = BACKEND.allocate(DType.F32, x0.shape());
        BACKEND.flowMatchingInput(xt, target, x0, noise, load("input.t"));
        timesteps = load("input.timestep");
        contexts = List.of(load("input.context.0"));
    }

    @AfterAll
    static void close() {
        if (golden != null) golden.close();
        if (checkpoint != null) checkpoint.close();
    }

    private static Tensor load(String key) {
        return BACKEND.fromFloats(DType.F32, golden.info(key).shape(), golden.floats(key));
    }

    private static LoraNetwork goldenLora() {
        List<LoraModuleWeights> modules = new ArrayList<>();
        for (String key : golden.keys()) {
            if (!key.startsWith("lora.") || !key.endsWith(".lora_down.weight")) continue;
            String name = key.substring(5, key.length() - ".lora_down.weight".length());
            Shape down = golden.info(key).shape();
            float[] up = golden.floats("lora." + name + ".lora_up.weight");
            modules.add(new LoraModuleWeights(name, (int) down.dim(0), (int) down.dim(1), up.length / (int) down.dim(0),
                    golden.floats("lora." + name + ".alpha")[0], golden.floats(key), up));
        }
        return LoraNetwork.fromWeights(BACKEND, config, modules, "fp32.safetensors");
    }

    /** Loss, pred and every LoRA gradient of one step, as floats. */
    private static List<float[]> step(ComputePrecision precision, Quantization quantization, boolean dequantizeAtLoad,
                                      boolean checkpointing) {
        try (WanDitWeights weights = WanDitWeights.load(BACKEND, checkpoint, config, precision, quantization,
                dequantizeAtLoad);
             WanDit dit = new WanDit(BACKEND, config, weights, precision, checkpointing);
             LoraNetwork lora = goldenLora()) {
            List<float[]> out = new ArrayList<>();
            out.add(TrainingSteps.lossAndBackward(BACKEND, dit, xt, timesteps, contexts, target, lora, 1f));
            out.add(BACKEND.toFloats(dit.lastActivations().pred));
            for (LoraModule m : lora.modules()) {
                out.add(BACKEND.toFloats(m.dDown()));
                out.add(BACKEND.toFloats(m.dUp()));
            }
            return out;
        }
    }

    private static void assertBitwiseEqual(List<float[]> expected, List<float[]> actual) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) assertArrayEquals(expected.get(i), actual.get(i), 0f, "tensor " + i);
    }

    @Test
    void gradientCheckpointingGivesIdenticalLossAndGradients() {
        assertBitwiseEqual(step(ComputePrecision.FP32, Quantization.NONE, true, false),
                step(ComputePrecision.FP32, Quantization.NONE, true, true));
    }

    @Test
    void fp8WeightsKeptQuantizedEqualWeightsDequantizedAtLoad() {
        // Backend.dequantizeFp8 is the one formula; the per-GEMM path applies it to a scratch buffer right before use.
        assertBitwiseEqual(step(ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, true, true),
                step(ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, false, true));
        assertBitwiseEqual(step(ComputePrecision.FP32, Quantization.FP8_BASE, true, true),
                step(ComputePrecision.FP32, Quantization.FP8_BASE, false, true));
    }

    @Test
    void repeatedShapesReuseThePlanAndGradientsAccumulate() {
        try (WanDitWeights weights = WanDitWeights.load(BACKEND, checkpoint, config, ComputePrecision.FP32,
                Quantization.NONE, true);
             WanDit dit = new WanDit(BACKEND, config, weights, ComputePrecision.FP32, true);
             LoraNetwork lora = goldenLora()) {
            TrainingSteps.lossAndBackward(BACKEND, dit, xt, timesteps, contexts, target, lora, 1f);
            WanDitActivations plan = dit.lastActivations();
            float[] once = BACKEND.toFloats(lora.modules().getFirst().dUp());
            TrainingSteps.lossAndBackward(BACKEND, dit, xt, timesteps, contexts, target, lora, 0.5f);
            assertSame(plan, dit.lastActivations());
            // gradScale 0.5 on the second step: the accumulated gradient is 1.5× the first (+= semantics).
            float[] twice = BACKEND.toFloats(lora.modules().getFirst().dUp());
            for (int i = 0; i < once.length; i++) assertEquals(1.5f * once[i], twice[i], 1e-6f * Math.abs(once[i]) + 1e-12f);
            // A forward alone (sampling) uses its own single-block-state plan and the same prediction.
            float[] pred = BACKEND.toFloats(dit.lastActivations().pred);
            assertArrayEquals(pred, BACKEND.toFloats(dit.forward(xt, timesteps, contexts, lora)), 0f);
            // The forward-only plan (sampling: 2 ping-pong streams, no gradient buffers) runs the same ops: bit-identical.
            assertArrayEquals(pred, BACKEND.toFloats(dit.forwardOnly(xt, timesteps, contexts, lora)), 0f);
            assertNull(dit.lastActivations().dStream);
            assertEquals(2, dit.lastActivations().blockInputs.length);
            // a backward needs its own trainingForward just before it (the forwards since may have overwritten the plan)
            assertThrows(IllegalStateException.class, () -> dit.backward(lora));
            dit.trainingForward(xt, timesteps, contexts, lora);
            dit.forward(xt, timesteps, contexts, lora);
            assertThrows(IllegalStateException.class, dit::predictionGradient);
            assertEquals(Shape.of(1, 16, 3, 8, 12), dit.lastActivations().pred.shape());
        }
    }
}
