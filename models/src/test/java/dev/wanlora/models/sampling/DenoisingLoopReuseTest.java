package dev.wanlora.models.sampling;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.random.CounterRng;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.CrossAttentionContext;
import dev.wanlora.models.wan.WanDit;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The denoising loop's reuse of what is constant over its steps (issue 10: each step's time embedding computed once
 * for cond and uncond; each text's embedding and per-block cross-attention k/v computed once per sample) changes no
 * number: the latents after every step equal, bit for bit, those of the plain loop that calls
 * {@link WanDit#forwardOnly(Tensor, Tensor, List, dev.wanlora.models.wan.BlockAdapters)} twice per step with
 * everything recomputed, on wan-tiny with the golden LoRA (on cross_attn.k and .v too), CFG 5, UniPC, in fp32, in
 * musubi's bf16 path with fp8_scaled weights and one block streamed. {@link DenoisingLoopReuseCudaTest} runs the same
 * on the GPU.
 */
@RequiresGolden("wan-tiny")
class DenoisingLoopReuseTest {

    @Test
    void reuseLeavesEveryLatentBitIdenticalOnTheCpu() {
        try (CpuBackend cpu = new CpuBackend()) {
            assertReuseIsExact(cpu, ComputePrecision.FP32, Quantization.NONE, BlockSwap.NONE);
            assertReuseIsExact(cpu, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED, new BlockSwap(1, 2));
        }
    }

    @Test
    void aCachedContextServesOnlyItsLora() {
        try (CpuBackend cpu = new CpuBackend();
             SafeTensors checkpoint = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"), SafeTensors.DIT_PREFIXES)) {
            WanDitConfig config = WanDitConfig.fromCheckpoint(checkpoint);
            try (WanDitWeights weights = WanDitWeights.load(cpu, checkpoint, config, ComputePrecision.FP32, Quantization.NONE, true);
                 WanDit dit = new WanDit(cpu, config, weights, ComputePrecision.FP32, false);
                 LoraNetwork lora = goldenLora(cpu, config);
                 Tensor context = cpu.allocate(DType.F32, Shape.of(5, config.textDim()));
                 Tensor x = cpu.allocate(DType.F32, Shape.of(1, 16, 1, 4, 4));
                 var time = dit.timeEmbeddings(new float[] {999});
                 CrossAttentionContext base = dit.crossAttentionContext(context, null, true)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> dit.forwardOnly(x, time, 0, base, lora));
                assertEquals("WanDit.forwardOnly: the text context was made for another LoRA; make one per LoRA (its cached"
                        + " cross-attention k and v include the LoRA)", e.getMessage());
                assertEquals(2L * config.numLayers() * 512 * config.dim() * 4, CrossAttentionContext.cacheBytes(config,
                        ComputePrecision.FP32));
            }
        }
    }

    /**
     * The LoRA's bf16 copy is refreshed once per sample's loop (not per forward): a LoRA changed between two samples (as
     * training changes it between sampling phases) is the one the next sample uses, bit for bit as the plain loop
     * (which refreshes the copy at every forward) computes with it, in both CFG modes.
     */
    @Test
    void aLoraChangedBetweenSamplesIsTheOneTheNextSampleUses() {
        try (CpuBackend cpu = new CpuBackend();
             SafeTensors checkpoint = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"), SafeTensors.DIT_PREFIXES)) {
            WanDitConfig config = WanDitConfig.fromCheckpoint(checkpoint);
            ComputePrecision bf16 = ComputePrecision.BF16_MUSUBI;
            try (WanDitWeights weights = WanDitWeights.load(cpu, checkpoint, config, bf16, Quantization.NONE, true);
                 WanDit dit = new WanDit(cpu, config, weights, bf16, false);
                 LoraNetwork lora = goldenLora(cpu, config);
                 Tensor cond = randomContext(cpu, DType.BF16, 7, config.textDim(), 11);
                 Tensor uncond = randomContext(cpu, DType.BF16, 12, config.textDim(), 12)) {
                Shape latent = Shape.of(16, 1, 4, 4);
                float[] noise = new float[Math.toIntExact(latent.numElements())];
                for (int i = 0; i < noise.length; i++) noise[i] = (float) CounterRng.normal(5, i);
                DenoisingLoop.Settings settings = new DenoisingLoop.Settings(2, 3.0, 5.0, FlowSolver.Kind.UNIPC);
                for (DenoisingLoop.CfgMode mode : DenoisingLoop.CfgMode.values()) {
                    DenoisingLoop loop = new DenoisingLoop(cpu, dit, true, mode);
                    float[] before = loop.run(noise, latent, cond, uncond, lora, settings, SolverPrecision.FLOAT32,
                            DenoisingLoop.StepListener.NONE);
                    float[] p = cpu.toFloats(lora.parameters());
                    for (int i = 0; i < p.length; i++) p[i] *= -2;
                    cpu.write(lora.parameters(), p);
                    float[] after = loop.run(noise, latent, cond, uncond, lora, settings, SolverPrecision.FLOAT32,
                            DenoisingLoop.StepListener.NONE);
                    assertArrayEquals(plainLoop(cpu, dit, noise, latent, cond, uncond, lora, settings).getLast(), after, 0f,
                            mode.toString());
                    assertFalse(Arrays.equals(before, after), mode + ": the changed LoRA changes the sample");
                }
            }
        }
    }

    /** The plain loop, the loop without the k/v cache, and with it: every step's latent bit-identical. */
    static void assertReuseIsExact(Backend backend, ComputePrecision precision, Quantization quantization, BlockSwap swap) {
        try (SafeTensors checkpoint = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"), SafeTensors.DIT_PREFIXES)) {
            WanDitConfig config = WanDitConfig.fromCheckpoint(checkpoint);
            DType contextDType = precision == ComputePrecision.FP32 ? DType.F32 : DType.BF16;
            try (WanDitWeights weights = WanDitWeights.load(backend, checkpoint, config, precision, quantization,
                    !backend.device().keepsFp8Quantized(), swap);
                 WanDit dit = new WanDit(backend, config, weights, precision, false);
                 LoraNetwork lora = goldenLora(backend, config);
                 Tensor cond = randomContext(backend, contextDType, 7, config.textDim(), 11);
                 Tensor uncond = randomContext(backend, contextDType, 12, config.textDim(), 12)) {
                Shape latent = Shape.of(16, 3, 8, 12);
                float[] noise = new float[Math.toIntExact(latent.numElements())];
                for (int i = 0; i < noise.length; i++) noise[i] = (float) CounterRng.normal(5, i);
                DenoisingLoop.Settings settings = new DenoisingLoop.Settings(4, 3.0, 5.0, FlowSolver.Kind.UNIPC);
                List<float[]> plain = plainLoop(backend, dit, noise, latent, cond, uncond, lora, settings);
                for (boolean caches : new boolean[] {false, true}) {
                    List<float[]> reused = new ArrayList<>();
                    float[] last = new DenoisingLoop(backend, dit, caches,
                            DenoisingLoop.CfgMode.TWO_BATCH_1).run(noise, latent, cond, uncond, lora, settings,
                            SolverPrecision.FLOAT32, (k, n, c, u, v, next, seconds) -> reused.add(next.clone()));
                    String what = precision + " " + quantization + " swap " + swap.count() + (caches ? " cached" : "");
                    assertEquals(plain.size(), reused.size(), what);
                    for (int k = 0; k < plain.size(); k++) assertArrayEquals(plain.get(k), reused.get(k), 0f, what + " step " + k);
                    assertArrayEquals(plain.getLast(), last, 0f, what);
                    System.out.println("DenoisingLoop reuse [" + backend.name() + ", " + what + "]: " + plain.size()
                            + " steps bit-identical to the plain loop");
                }
            }
        }
    }

    /** Today's loop before the reuse: two forwards per step with everything recomputed; the latent after each step. */
    private static List<float[]> plainLoop(Backend backend, WanDit dit, float[] noise, Shape latent, Tensor cond,
                                           Tensor uncond, LoraNetwork lora, DenoisingLoop.Settings settings) {
        FlowSolver solver = FlowSolver.create(settings.solver(), settings.steps(), settings.shift(), SolverPrecision.FLOAT32);
        List<float[]> latents = new ArrayList<>();
        long[] d = latent.dims();
        float cfg = (float) settings.cfg();
        try (Tensor x = backend.allocate(DType.F32, Shape.of(1, d[0], d[1], d[2], d[3]));
             Tensor t = backend.allocate(DType.F32, Shape.of(1))) {
            float[] sample = noise.clone();
            for (int k = 0; k < solver.steps(); k++) {
                backend.write(x, sample);
                backend.write(t, new float[] {solver.modelTimestep(k)});
                float[] c = backend.toFloats(dit.forwardOnly(x, t, List.of(cond), lora));
                float[] u = backend.toFloats(dit.forwardOnly(x, t, List.of(uncond), lora));
                float[] v = new float[c.length];
                for (int i = 0; i < v.length; i++) v[i] = u[i] + cfg * (c[i] - u[i]);
                sample = solver.step(v, sample);
                latents.add(sample.clone());
            }
        }
        return latents;
    }

    static Tensor randomContext(Backend backend, DType dtype, int rows, int cols, long seed) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) v[i] = (float) CounterRng.normal(seed, i);
        Tensor t = backend.allocate(dtype, Shape.of(rows, cols));
        backend.write(t, v);
        return t;
    }

    /** wan-tiny's golden LoRA (fp32.safetensors): non-zero down and up on every block Linear, cross_attn.k/v included. */
    static LoraNetwork goldenLora(Backend backend, WanDitConfig config) {
        List<LoraModuleWeights> modules = new ArrayList<>();
        try (SafeTensors golden = SafeTensors.open(Golden.dir("wan-tiny").resolve("fp32.safetensors"))) {
            for (String key : golden.keys()) {
                if (!key.startsWith("lora.") || !key.endsWith(".lora_down.weight")) continue;
                String name = key.substring(5, key.length() - ".lora_down.weight".length());
                Shape down = golden.info(key).shape();
                float[] up = golden.floats("lora." + name + ".lora_up.weight");
                modules.add(new LoraModuleWeights(name, (int) down.dim(0), (int) down.dim(1), up.length / (int) down.dim(0),
                        golden.floats("lora." + name + ".alpha")[0], golden.floats(key), up));
            }
        }
        return LoraNetwork.fromWeights(backend, config, modules, "fp32.safetensors");
    }
}
