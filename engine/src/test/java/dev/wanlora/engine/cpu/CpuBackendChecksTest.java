package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.Backend.AdamWStep;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Proxy;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;

/** Checks that are not specific to one op family: ownership, optional arguments, and OpChecks used directly. */
class CpuBackendChecksTest {

    /** A tensor of some other backend, made with a proxy so no real backend is needed. */
    private static Tensor foreign(Shape shape) {
        return (Tensor) Proxy.newProxyInstance(Tensor.class.getClassLoader(), new Class<?>[] {Tensor.class},
                (p, m, a) -> switch (m.getName()) {
                    case "shape" -> shape;
                    case "dtype" -> DType.F32;
                    case "backendName" -> "cuda:0 (test)";
                    case "numElements" -> shape.numElements();
                    default -> throw new UnsupportedOperationException(m.getName());
                });
    }

    @Test
    void rejectsTensorsOfAnotherBackend() {
        assertMessage("scale (cpu): x belongs to another backend; got x=(3) f32 on cuda:0 (test), expected a tensor "
                + "of backend cpu", () -> CPU.scale(zeros(DType.F32, 3), foreign(Shape.of(3)), 2));
    }

    @Test
    void nullRequiredArgumentsAreNamed() {
        assertMessage("rmsNorm: weight is null; got null, expected a tensor",
                () -> CPU.rmsNorm(zeros(DType.F32, 1, 4), zeros(DType.F32, 1), zeros(DType.F32, 1, 4), null, 1e-6f));
    }

    @Test
    void moreShapeAndDtypeMessages() {
        assertMessage("gemm: wrong element count of bias; got bias=(8) f32 (8 elements), expected 7 elements",
                () -> CPU.gemm(zeros(DType.F32, 3, 7), zeros(DType.F32, 3, 4), false, zeros(DType.F32, 7, 4), true, 1, 0,
                        zeros(DType.F32, 8)));
        assertMessage("rope: head dim is odd; got x=(1,2,6) f32 with numHeads=2 (D=3), expected an even D (pairs of "
                + "features are rotated)", () -> CPU.rope(zeros(DType.F32, 1, 2, 6), zeros(DType.F32, 1, 2, 6),
                zeros(DType.F32, 2, 1), zeros(DType.F32, 2, 1), 2));
        assertMessage("modulate: x must have rank 3; got x=(7,40) f32, expected x=(B, L, C)",
                () -> CPU.modulate(zeros(DType.F32, 7, 40), zeros(DType.F32, 7, 40), zeros(DType.F32, 1, 6, 40), 0, 1));
        assertMessage("sinusoidalEmbedding: embedding width is odd; got out=(2,5) f32, expected out=(B, 2·half)",
                () -> CPU.sinusoidalEmbedding(zeros(DType.F32, 2, 5), zeros(DType.F32, 2)));
        assertMessage("attentionBackward: wrong shape of lse; got lse=(1,2,5) f32, expected lse=(1,2,7)",
                () -> CPU.attentionBackward(zeros(DType.F32, 1, 7, 16), zeros(DType.F32, 1, 5, 16),
                        zeros(DType.F32, 1, 5, 16), zeros(DType.F32, 1, 7, 16), zeros(DType.F32, 1, 7, 16),
                        zeros(DType.F32, 1, 5, 16), zeros(DType.F32, 1, 5, 16), zeros(DType.F32, 1, 7, 16),
                        zeros(DType.F32, 1, 2, 5), 2));
        assertMessage("clipCoefficient: unsupported dtype of normSquared; got normSquared=(1) bf16, expected f32",
                () -> CPU.clipCoefficient(zeros(DType.F32, 1), zeros(DType.BF16, 1), 1));
    }

    /** adamw8bit's state sizes follow Backend.ADAMW8BIT_BLOCK_SIZE: ceil(5000/256) = 20 blocks. */
    @Test
    void adamw8bitChecks() {
        var p = zeros(DType.F32, 5000);
        var one = f32(new float[] {1}, 1);
        var hyper = new AdamWStep(1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1);
        CPU.adamw8bit(p, zeros(DType.F32, 5000), zeros(DType.U8, 5000), zeros(DType.F32, 20), zeros(DType.U8, 5000),
                zeros(DType.F32, 20), one, hyper);
        assertMessage("adamw8bit: wrong element count of vAbsMax; got vAbsMax=(19) f32 (19 elements), expected 20 elements",
                () -> CPU.adamw8bit(p, zeros(DType.F32, 5000), zeros(DType.U8, 5000), zeros(DType.F32, 20),
                        zeros(DType.U8, 5000), zeros(DType.F32, 19), one, hyper));
        assertMessage("adamw8bit: unsupported dtype of mCodes; got mCodes=(5000) f32, expected u8",
                () -> CPU.adamw8bit(p, zeros(DType.F32, 5000), zeros(DType.F32, 5000), zeros(DType.F32, 20),
                        zeros(DType.U8, 5000), zeros(DType.F32, 20), one, hyper));
    }
}
