package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.AliasChecks;
import dev.wanlora.engine.backend.CheckedBackend;
import dev.wanlora.engine.backend.HostTimeline;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.backend.OpChecks;
import dev.wanlora.engine.backend.Timeline;
import dev.wanlora.engine.io.ByteSource;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Locale;

/**
 * The reference backend (STYLE.md §0.1): every op as obvious scalar Java over float32 storage, reductions in double,
 * outputs rounded to their dtype on store, parallel only over independent rows. It is the oracle the CUDA backend is
 * tested against, so it favours clarity and accuracy over speed.
 *
 * <p><b>Aliasing.</b> Where a contract allows an output to be an input ("out may be x"), the two must address the
 * very same elements (the same tensor, or views of the same range); elementwise ops (add, scale, silu, geluTanh and
 * its backward, modulate and its backward, gatedResidualBackward, flowMatchingInput, mseLoss's dPred, copy) allow
 * this too. Any other overlap between an output and an input, or between two outputs, is rejected with an
 * {@link IllegalArgumentException} rather than computing garbage.
 *
 * <p>Accepts tensors of any {@link CpuBackend}; tensors of another backend are rejected. Closing the backend does
 * nothing: each tensor owns its storage. Argument checks run in each op family's {@code Checked} class (see
 * {@link CheckedBackend}), which then calls the op's reference in the family class installed here (CpuNorm,
 * CpuAttention, …) with checked CpuTensors.
 */
public final class CpuBackend extends CheckedBackend<CpuTensor> {

    public CpuBackend() {
        super(new AliasChecks<>("cpu", CpuTensor::overlaps, CpuTensor::isSameRange, (name, t) -> t.toString()));
        install(new CpuGemm(), new CpuNorm(), new CpuModulation(), new CpuAttention(), new CpuElementwise(),
                new CpuLayout(), new CpuVideo(), new CpuFlow(), new CpuOptim());
    }

    @Override
    public String name() { return "cpu"; }

    @Override
    public DeviceFacts device() { return DeviceFacts.cpu(); }

    // ---------------------------------------------------------------- memory

    @Override
    public CpuTensor allocate(DType dtype, Shape shape) {
        return CpuTensor.allocate(this, dtype, shape);
    }

    @Override
    public CpuTensor fromFloats(DType dtype, Shape shape, float[] values) {
        if (values.length != shape.numElements()) {
            throw new IllegalArgumentException("fromFloats: value count does not match the shape; got " + values.length
                    + " values for " + shape + ", expected " + shape.numElements());
        }
        CpuTensor t = allocate(dtype, shape);
        float[] d = t.data();
        for (int i = 0; i < values.length; i++) d[i] = CpuTensor.round(dtype, values[i]);
        return t;
    }

    @Override
    protected void runWrite(CpuTensor t, float[] values) {
        float[] d = t.data();
        for (int i = 0; i < values.length; i++) d[t.offset() + i] = CpuTensor.round(t.dtype(), values[i]);
    }

    /** Decodes little-endian F32, F16, BF16, F8_E4M3, F8_E5M2 (and U8 codes, for optimizer state) exactly. */
    @Override
    public CpuTensor fromBytes(DType dtype, Shape shape, MemorySegment bytes) {
        long n = shape.numElements();
        long expected = Math.multiplyExact(n, dtype.sizeBytes());
        if (bytes.byteSize() != expected) {
            throw new IllegalArgumentException("fromBytes: byte count does not match the shape; got " + bytes.byteSize()
                    + " bytes for " + shape + " " + dtype.name().toLowerCase(Locale.ROOT) + ", expected " + expected);
        }
        CpuTensor t = allocate(dtype, shape);
        decode(t, bytes);
        return t;
    }

    /** Reads the source into a temporary segment, then decodes it like {@link #fromBytes}. */
    @Override
    protected void runWriteBytes(CpuTensor t, ByteSource bytes) {
        long expected = t.sizeBytes();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(Math.max(1, expected), 16);
            if (expected > 0) bytes.read(0, host.asSlice(0, expected));
            decode(t, host.asSlice(0, expected));
        }
    }

    /** t = the little-endian values in {@code bytes} (t's dtype, t's element count), decoded exactly. */
    private static void decode(CpuTensor t, MemorySegment bytes) {
        float[] d = t.data();
        int base = t.offset();
        DType dtype = t.dtype();
        var f32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        var i16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        int n = Math.toIntExact(t.numElements());
        for (int i = 0; i < n; i++) {
            d[base + i] = switch (dtype) {
                case F32 -> bytes.getAtIndex(f32, i);
                case BF16 -> Bf16.toFloat(bytes.getAtIndex(i16, i));
                case F16 -> Fp16.toFloat(bytes.getAtIndex(i16, i));
                case F8_E4M3 -> Fp8.e4m3ToFloat(bytes.get(ValueLayout.JAVA_BYTE, i));
                case F8_E5M2 -> Fp8.e5m2ToFloat(bytes.get(ValueLayout.JAVA_BYTE, i));
                case U8 -> bytes.get(ValueLayout.JAVA_BYTE, i) & 0xff;
                default -> throw new IllegalStateException("unreachable: allocate rejects " + dtype);
            };
        }
    }

    @Override
    protected float[] runToFloats(CpuTensor c) {
        return Arrays.copyOfRange(c.data(), c.offset(), c.offset() + c.size());
    }

    @Override
    protected void runCopy(CpuTensor d, CpuTensor s) {
        CpuRows.forEachChunk(s.size(), (from, to) -> {
            for (int i = from; i < to; i++) d.store(i, s.get(i));
        });
    }

    @Override
    protected void runFill(CpuTensor c, float value) {
        float v = CpuTensor.round(c.dtype(), value);
        Arrays.fill(c.data(), c.offset(), c.offset() + c.size(), v);
    }

    @Override
    public void synchronize() {}

    @Override
    public Timeline openTimeline() { return new HostTimeline(); }

    /** Tensors own their storage; there is nothing to release here. */
    @Override
    public void close() {}

    // ---------------------------------------------------------------- ownership

    /** t as a CpuTensor (null stays null: optional arguments are checked by OpChecks). */
    @Override
    protected CpuTensor own(String op, String name, Tensor t) {
        if (t == null || t instanceof CpuTensor) return (CpuTensor) t;
        throw new IllegalArgumentException(op + " (cpu): " + name + " belongs to another backend; got "
                + OpChecks.describe(name, t) + " on " + t.backendName() + ", expected a tensor of backend cpu");
    }
}
