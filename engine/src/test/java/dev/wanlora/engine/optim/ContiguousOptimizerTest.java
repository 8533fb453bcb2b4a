package dev.wanlora.engine.optim;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Optimizer.create with a contiguous parameter (a LoRA's flat buffers): one update op over the concatenation must
 * give exactly, bit for bit, what one op per parameter gives, and write the same state file.
 */
class ContiguousOptimizerTest {
    private final CpuBackend cpu = new CpuBackend();
    @TempDir
    Path tmp;

    /** Parameters of these sizes as views of one flat value and one flat grad buffer, with random values and grads. */
    private record Flat(TrainableParameter contiguous, List<TrainableParameter> params) {}

    private Flat flat(int[] sizes, long seed) {
        int total = 0;
        for (int n : sizes) total += n;
        SplittableRandom rng = new SplittableRandom(seed);
        float[] values = new float[total], grads = new float[total];
        for (int i = 0; i < total; i++) {
            values[i] = (float) rng.nextGaussian();
            // gradients over several decades, so quantization blocks mix large and small moments
            grads[i] = (float) (rng.nextGaussian() * Math.pow(10, -3 * rng.nextDouble()));
        }
        Tensor value = cpu.fromFloats(DType.F32, Shape.of(total), values);
        Tensor grad = cpu.fromFloats(DType.F32, Shape.of(total), grads);
        List<TrainableParameter> params = new ArrayList<>();
        int at = 0;
        for (int k = 0; k < sizes.length; k++) {
            params.add(new TrainableParameter("p" + k, value.view(at, Shape.of(sizes[k])), grad.view(at, Shape.of(sizes[k]))));
            at += sizes[k];
        }
        return new Flat(new TrainableParameter("all", value, grad), params);
    }

    /** Three steps each way; returns the final values and the state file's path. */
    private float[] run(OptimizerConfig config, int[] sizes, boolean isContiguous, String stateName) {
        Flat f = flat(sizes, 11);
        try (Tensor scale = cpu.fromFloats(DType.F32, Shape.of(1), new float[] {0.75f});
             Optimizer opt = Optimizer.create(cpu, config, f.params(), isContiguous ? f.contiguous() : null)) {
            for (int step = 1; step <= 3; step++) opt.step(step, 1e-3f, scale);
            opt.saveState(tmp.resolve(stateName));
            return cpu.toFloats(f.contiguous().value());
        }
    }

    @Test
    void adamw8bitOverTheConcatenationEqualsPerParameterUpdates() {
        OptimizerConfig config = OptimizerConfig.fromFlags("adamw8bit", List.of());
        // whole blocks of 256, each ≥ min_8bit_size 4096: the flat path applies
        int[] sizes = {4096, 8192, 4352};
        assertArrayEquals(run(config, sizes, false, "per.safetensors"), run(config, sizes, true, "flat.safetensors"));
        assertStatesEqual("per.safetensors", "flat.safetensors");
    }

    @Test
    void adamw8bitFallsBackWhenBlocksWouldStraddleParameters() {
        OptimizerConfig config = OptimizerConfig.fromFlags("adamw8bit", List.of());
        // 4100 is not a whole number of blocks and 100 is below min_8bit_size (fp32 state): per-parameter updates
        int[] sizes = {4100, 100, 4096};
        assertArrayEquals(run(config, sizes, false, "per.safetensors"), run(config, sizes, true, "flat.safetensors"));
        assertStatesEqual("per.safetensors", "flat.safetensors");
    }

    @Test
    void adamwOverTheConcatenationEqualsPerParameterUpdates() {
        OptimizerConfig config = OptimizerConfig.fromFlags("adamw", List.of());
        int[] sizes = {7, 300, 1};
        assertArrayEquals(run(config, sizes, false, "per.safetensors"), run(config, sizes, true, "flat.safetensors"));
        assertStatesEqual("per.safetensors", "flat.safetensors");
    }

    @Test
    void aContiguousParameterOfAnotherSizeIsRefused() {
        Flat f = flat(new int[] {256, 256}, 1);
        List<TrainableParameter> first = List.of(f.params().getFirst());
        var e = assertThrows(IllegalArgumentException.class,
                () -> Optimizer.create(cpu, OptimizerConfig.fromFlags("adamw", List.of()), first, f.contiguous()));
        assertTrue(e.getMessage().contains("has 512 elements, expected 256"), e.getMessage());
    }

    private void assertStatesEqual(String a, String b) {
        try (var x = dev.wanlora.engine.io.SafeTensors.open(tmp.resolve(a));
             var y = dev.wanlora.engine.io.SafeTensors.open(tmp.resolve(b))) {
            assertEquals(x.keys(), y.keys());
            for (String key : x.keys()) {
                assertArrayEquals(x.data(key).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                        y.data(key).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), key);
            }
        }
    }
}
