package dev.wanlora.engine.optim;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

class GradClipTest {
    private final CpuBackend cpu = new CpuBackend();

    @Test
    void clipsToTheGlobalNorm() {
        // ‖(3, 4, 0, 12)‖ = 13 over two tensors
        var a = cpu.fromFloats(DType.F32, Shape.of(2), new float[] {3, 4});
        var b = cpu.fromFloats(DType.F32, Shape.of(2), new float[] {0, 12});
        try (var clip = new GradClip(cpu, 1.0f)) {
            float c = cpu.toFloats(clip.coefficient(List.of(a, b)))[0];
            assertEquals(169f, cpu.toFloats(clip.normSquared())[0], 0f);
            assertEquals((float) (1.0 / (13 + 1e-6)), c, 0f);
            // a second call starts from zero again
            assertEquals(169f, cpu.toFloats(clip.normSquared())[0], 0f);
            clip.coefficient(List.of(a));
            assertEquals(25f, cpu.toFloats(clip.normSquared())[0], 0f);
        }
        try (var loose = new GradClip(cpu, 100f); var off = new GradClip(cpu, 0f)) {
            assertEquals(1f, cpu.toFloats(loose.coefficient(List.of(a, b)))[0], 0f);
            assertEquals(1f, cpu.toFloats(off.coefficient(List.of(a, b)))[0], 0f);
        }
    }
}
