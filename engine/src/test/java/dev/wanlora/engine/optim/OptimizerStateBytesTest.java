package dev.wanlora.engine.optim;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** {@link Optimizer#stateBytes} against hand values and against the state an optimizer really holds (its saved file). */
class OptimizerStateBytesTest {
    private final CpuBackend cpu = new CpuBackend();

    @Test
    void handValues() {
        // AdamW8bit, n = 5000 ≥ 4096: codes 2·5000 + absmax 2·⌈5000/256⌉·4 = 10000 + 160; n = 100 < 4096: fp32 2·100·4
        assertEquals(10_160, Optimizer.stateBytes(OptimizerConfig.adamw8bit(), 5000));
        assertEquals(800, Optimizer.stateBytes(OptimizerConfig.adamw8bit(), 100));
        assertEquals(40_000, Optimizer.stateBytes(OptimizerConfig.adamw(), 5000));
    }

    @Test
    void equalsTheSavedState(@TempDir Path tmp) {
        long[] sizes = {5000, 100, 8192};
        List<TrainableParameter> params = new ArrayList<>();
        for (int i = 0; i < sizes.length; i++) {
            params.add(new TrainableParameter("p" + i, cpu.allocate(DType.F32, Shape.of(sizes[i])),
                    cpu.allocate(DType.F32, Shape.of(sizes[i]))));
        }
        for (OptimizerConfig config : List.of(OptimizerConfig.adamw(), OptimizerConfig.adamw8bit())) {
            Path file = tmp.resolve(config.kind() + ".safetensors");
            long expected = 0;
            for (long n : sizes) expected += Optimizer.stateBytes(config, n);
            try (Optimizer opt = Optimizer.create(cpu, config, params)) {
                opt.saveState(file);
            }
            try (SafeTensors saved = SafeTensors.open(file)) {
                long held = 0;
                for (String key : saved.keys()) held += saved.info(key).byteLength();
                assertEquals(expected, held, config.kind().toString());
            }
        }
    }
}
