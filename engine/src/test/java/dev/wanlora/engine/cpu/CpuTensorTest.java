package dev.wanlora.engine.cpu;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static dev.wanlora.engine.cpu.CpuTesting.CPU;
import static dev.wanlora.engine.cpu.CpuTesting.assertMessage;
import static dev.wanlora.engine.cpu.CpuTesting.f32;
import static dev.wanlora.engine.cpu.CpuTesting.tensor;
import static dev.wanlora.engine.cpu.CpuTesting.values;
import static dev.wanlora.engine.cpu.CpuTesting.zeros;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** CpuTensor storage, views, lifecycle, and the memory ops of CpuBackend. */
class CpuTensorTest {

    @Test
    void fromBytesDecodesSafetensorsLittleEndianLayouts() {
        // 1.5 and −2 in each format: F32 0x3FC00000 / 0xC0000000, BF16 0x3FC0 / 0xC000, F16 0x3E00 / 0xC000,
        // E4M3 (bias 7) 0 0111 100 = 0x3C / 1 1000 000 = 0xC0, E5M2 (bias 15) 0 01111 10 = 0x3E / 1 10000 00 = 0xC0.
        byte[][] bytes = {
                {0x00, 0x00, (byte) 0xC0, 0x3F, 0x00, 0x00, 0x00, (byte) 0xC0},
                {(byte) 0xC0, 0x3F, 0x00, (byte) 0xC0},
                {0x00, 0x3E, 0x00, (byte) 0xC0},
                {0x3C, (byte) 0xC0},
                {0x3E, (byte) 0xC0},
        };
        DType[] types = {DType.F32, DType.BF16, DType.F16, DType.F8_E4M3, DType.F8_E5M2};
        for (int i = 0; i < types.length; i++) {
            var t = CPU.fromBytes(types[i], Shape.of(2), MemorySegment.ofArray(bytes[i]));
            assertArrayEquals(new float[] {1.5f, -2}, values(t), 0f, types[i].name());
        }
        var codes = CPU.fromBytes(DType.U8, Shape.of(2), MemorySegment.ofArray(new byte[] {(byte) 200, 7}));
        assertArrayEquals(new float[] {200, 7}, values(codes), 0f);
        assertMessage("fromBytes: byte count does not match the shape; got 3 bytes for (2) bf16, expected 4",
                () -> CPU.fromBytes(DType.BF16, Shape.of(2), MemorySegment.ofArray(new byte[3])));
    }

    @Test
    void storesRoundToTheDtype() {
        // bf16 keeps 8 significant bits: 1 + 2⁻⁸ is a tie → even (1); 1 + 3·2⁻⁸ is a tie → even (1 + 2⁻⁶);
        // 1 + 2⁻⁸ + 2⁻¹⁰ rounds up to 1 + 2⁻⁷.
        float[] in = {1 + 0x1p-8f, 1 + 3 * 0x1p-8f, 1 + 0x1p-8f + 0x1p-10f};
        float[] bf16 = {1, 1 + 0x1p-6f, 1 + 0x1p-7f};
        assertArrayEquals(bf16, values(tensor(DType.BF16, in, 3)), 0f);
        var dst = zeros(DType.BF16, 3);
        CPU.copy(dst, f32(in, 3));
        assertArrayEquals(bf16, values(dst), 0f);
        CPU.fill(dst, 1 + 0x1p-8f + 0x1p-10f);
        assertArrayEquals(new float[] {bf16[2], bf16[2], bf16[2]}, values(dst), 0f);
        // e4m3 has 3 mantissa bits and saturates to NaN beyond the rounding midpoint 464 (torch's cast).
        assertArrayEquals(new float[] {1.125f, 448, Float.NaN}, values(tensor(DType.F8_E4M3, new float[] {1.1f, 450, 500}, 3)), 0f);
        assertMessage("cpu: a u8 tensor holds integer codes; got 1.5, expected an integer in 0..255",
                () -> tensor(DType.U8, new float[] {1.5f}, 1));
    }

    @Test
    void viewsShareStorageAndCheckBounds() {
        var owner = f32(new float[] {0, 1, 2, 3, 4, 5}, 2, 3);
        var row1 = owner.slice(1);
        assertArrayEquals(new float[] {3, 4, 5}, values(row1), 0f);
        CPU.fill(row1.view(1, Shape.of(2)), 9);
        assertArrayEquals(new float[] {0, 1, 2, 3, 9, 9}, values(owner), 0f);
        var e = assertThrows(IndexOutOfBoundsException.class, () -> owner.view(4, Shape.of(3)));
        assertEquals("view: range outside the tensor; got offset 4 and (3) (3 elements), expected offset + elements "
                + "<= 6 of (2,3)", e.getMessage());
        assertThrows(IndexOutOfBoundsException.class, () -> owner.view(-1, Shape.of(1)));
        assertEquals(Shape.of(3, 2), owner.reshape(Shape.of(3, 2)).shape());
    }

    @Test
    void closingTheOwnerInvalidatesItsViews() {
        var owner = zeros(DType.F32, 4);
        var view = owner.view(2, Shape.of(2));
        view.close(); // a view owns nothing
        CPU.fill(owner, 1);
        owner.close();
        owner.close(); // idempotent
        var e = assertThrows(IllegalStateException.class, () -> CPU.toFloats(view));
        assertEquals("cpu: tensor (2) f32 used after its owner was closed", e.getMessage());
        assertThrows(IllegalStateException.class, () -> CPU.fill(owner, 0));
        assertThrows(IllegalStateException.class, () -> owner.view(0, Shape.of(1)));
    }

    @Test
    void rejectsWhatTheCpuCannotHold() {
        assertMessage("allocate (cpu): tensor too large for the CPU backend's float[] storage; got (2,1073741824) = "
                + "2147483648 elements, expected at most 2147483639 elements. hint: the CPU reference is for small "
                + "shapes; use the CUDA backend", () -> CPU.allocate(DType.BF16, Shape.of(2, 1L << 30)));
        var e = assertThrows(UnsupportedOperationException.class, () -> CPU.allocate(DType.I32, Shape.of(1)));
        assertEquals("cpu: no storage for dtype i32; supported: f32, bf16, f16, f8_e4m3, f8_e5m2, u8", e.getMessage());
        assertMessage("copy: element counts differ; got dst=(3) f32 and src=(4) f32, expected equal element counts",
                () -> CPU.copy(zeros(DType.F32, 3), zeros(DType.F32, 4)));
    }
}
