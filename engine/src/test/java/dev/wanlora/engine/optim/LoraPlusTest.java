package dev.wanlora.engine.optim;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * LoRA+ (a parameter's learningRateScale): musubi puts the lora_up parameters in a second group with lr × ratio, so a
 * scaled parameter must move exactly as the same optimizer at the scaled learning rate moves it, and an unscaled one
 * as before, with or without the flat (contiguous) path.
 */
class LoraPlusTest {
    private final CpuBackend cpu = new CpuBackend();

    private float[] run(String type, List<String> args, float lr, float scale, boolean flat) {
        var q = new OptimizerProblem(cpu, 4, Shape.of(4, 40), Shape.of(40, 4));
        var params = List.of(q.params.get(0), new TrainableParameter("up", q.params.get(1).value(), q.params.get(1).grad(), scale));
        Tensor flatValue = cpu.allocate(DType.F32, Shape.of(320)), flatGrad = cpu.allocate(DType.F32, Shape.of(320));
        try (var opt = Optimizer.create(cpu, OptimizerConfig.fromFlags(type, args), params,
                flat ? new TrainableParameter("flat", flatValue, flatGrad) : null)) {
            Tensor one = cpu.fromFloats(DType.F32, Shape.of(1), new float[] {1});
            for (int t = 1; t <= 5; t++) {
                q.gradient();
                opt.step(t, lr, one);
            }
        }
        return q.values();
    }

    @Test
    void scaledParametersTrainAtTheScaledRate() {
        for (String type : List.of("AdamW", "AdamW8bit", "adafactor")) {
            List<String> args = switch (type) {
                case "adafactor" -> List.of("relative_step=False");
                case "AdamW8bit" -> List.of("min_8bit_size=16");
                default -> List.of();
            };
            float[] plus = run(type, args, 1e-3f, 4f, true);
            float[] down = run(type, args, 1e-3f, 1f, false), up = run(type, args, 4e-3f, 1f, false);
            float[] expected = new float[320];
            System.arraycopy(down, 0, expected, 0, 160);
            System.arraycopy(up, 160, expected, 160, 160);
            assertArrayEquals(expected, plus, 0f, type);
        }
    }

    @Test
    void prodigyRefusesTwoLearningRates() {
        var e = assertThrows(IllegalArgumentException.class, () -> run("prodigy", List.of(), 1f, 4f, false));
        assertTrue(e.getMessage().startsWith("--network_args loraplus_lr_ratio: Prodigy takes one learning rate"), e.getMessage());
    }
}
