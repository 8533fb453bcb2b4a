package dev.wanlora.engine.backend;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The per-op profile wrapper and Backend.write on the CPU reference (the CUDA side is in CudaUploadTest). */
class ProfilingBackendTest {

    @Test
    void forwardsWithoutRecordingAndRecordsEachOpInOrder() {
        try (CpuBackend cpu = new CpuBackend(); ProfilingBackend p = ProfilingBackend.wrap(cpu)) {
            Tensor a = p.allocate(DType.F32, Shape.of(2, 3));
            Tensor b = p.allocate(DType.F32, Shape.of(3, 2));
            Tensor c = p.allocate(DType.F32, Shape.of(2, 2));
            p.write(a, new float[] {1, 2, 3, 4, 5, 6});
            p.write(b, new float[] {1, 0, 0, 1, 1, 1});
            assertFalse(p.isRecording());
            p.startRecording("model");
            p.gemm(c, a, false, b, false, 1, 0, null);
            p.scale(c, c, 2);
            cpu.fill(b, 0); // sent to the wrapped backend directly: not seen, lands in "(outside)"
            p.phase("update");
            p.add(c, c, c);
            List<ProfilingBackend.OpTime> ops = p.stopRecording();
            // [1 2 3; 4 5 6]·[1 0; 0 1; 1 1] = [4 5; 10 11]; ×2 = [8 10; 20 22]; +itself = [16 20; 40 44]
            assertArrayEquals(new float[] {16, 20, 40, 44}, cpu.toFloats(c));
            assertEquals(List.of("gemm", "scale", "(outside)", "add", "(outside)"),
                    ops.stream().map(ProfilingBackend.OpTime::op).toList());
            assertEquals(List.of("model", "model", "model", "update", "update"),
                    ops.stream().map(ProfilingBackend.OpTime::phase).toList());
            assertEquals("c(2,2)f32 a(2,3)f32 b(3,2)f32", ops.getFirst().operands());
            for (ProfilingBackend.OpTime op : ops) assertTrue(op.millis() >= 0, op.toString());
            assertFalse(p.isRecording());
            assertThrows(IllegalStateException.class, p::stopRecording);
        }
    }

    /** Operands come from Backend's parameter names: equal shapes share an entry, a transposed GEMM input is marked. */
    @Test
    void namesOperandsByParameterAndPassesErrorsThrough() {
        try (CpuBackend cpu = new CpuBackend(); ProfilingBackend p = ProfilingBackend.wrap(cpu)) {
            Tensor a = p.fromFloats(DType.F32, Shape.of(2, 3), new float[] {1, 2, 3, 4, 5, 6});
            Tensor c = p.allocate(DType.BF16, Shape.of(3, 3));
            Tensor mod = p.allocate(DType.F32, Shape.of(1, 6, 3));
            Tensor x = p.allocate(DType.BF16, Shape.of(1, 3, 3));
            p.startRecording("model");
            p.gemm(c, a, true, a, false, 1, 1, null);
            p.modulate(x, x, mod, 0, 1);
            p.clipCoefficient(p.allocate(DType.F32, Shape.of(1)), p.allocate(DType.F32, Shape.of(1)), 1);
            // the backend's own exception, not an InvocationTargetException, with its message unchanged
            var e = assertThrows(IllegalArgumentException.class, () -> p.add(c, a, a));
            assertEquals("add: element counts differ; got out=(3,3) bf16 and a=(2,3) f32, expected equal element counts",
                    e.getMessage());
            List<ProfilingBackend.OpTime> ops = p.stopRecording();
            assertEquals(List.of("gemm", "modulate", "clipCoefficient", "(outside)"),
                    ops.stream().map(ProfilingBackend.OpTime::op).toList());
            assertEquals(List.of("c(3,3)bf16 aᵀ,b(2,3)f32", "out,x(1,3,3)bf16 mod(1,6,3)f32", "clip,normSquared(1)f32", ""),
                    ops.stream().map(ProfilingBackend.OpTime::operands).toList());
            assertSame(cpu, p.inner());
        }
    }

    @Test
    void writeRoundsToTheTensorDtypeInPlace() {
        try (CpuBackend cpu = new CpuBackend()) {
            Tensor t = cpu.allocate(DType.BF16, Shape.of(4));
            Tensor view = t.view(1, Shape.of(2));
            // bf16 keeps 8 significant bits: the neighbours of 1 are 1 and 1 + 2⁻⁷, so 1 + 2⁻⁹ (below the midpoint
            // 1 + 2⁻⁸) rounds to 1.
            cpu.write(view, new float[] {1 + 0x1p-9f, -3f});
            assertArrayEquals(new float[] {0, 1, -3, 0}, cpu.toFloats(t));
            Tensor codes = cpu.allocate(DType.U8, Shape.of(2));
            cpu.write(codes, new float[] {0, 255});
            assertArrayEquals(new float[] {0, 255}, cpu.toFloats(codes));
            assertThrows(IllegalArgumentException.class, () -> cpu.write(codes, new float[] {1}));
            assertThrows(IllegalArgumentException.class, () -> cpu.write(codes, new float[] {1.5f, 0}));
        }
    }
}
