package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.AliasChecks;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.CheckedBackend;
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

import static jcuda.driver.JCudaDriver.*;

/**
 * {@link Backend} on one NVIDIA GPU: our kernels ({@link KernelLibrary}) and cuBLASLt, all on the context's compute
 * stream, never falling back to the CPU. Open with {@link #open(int)}; closing the backend frees the context's
 * kernels and streams (tensors are closed by their owners first). Argument checks run in each op family's
 * {@code Checked} class (see {@link CheckedBackend}), which then calls the family's launcher installed here (CudaNorm,
 * CudaModulation, …) with checked CudaTensors of this backend.
 */
public final class CudaBackend extends CheckedBackend<CudaTensor> {
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final CudaContext context;
    private final KernelLibrary kernels;
    private final CudaAttention attention;
    private final CudaGemm gemm;
    private final Launcher launcher;
    private final CudaElementwise elementwise;
    private final CudaOptim optim;
    private final UploadStaging staging;
    private boolean closed;

    private CudaBackend(CudaContext context) {
        super(new AliasChecks<>("cuda", CudaBackend::overlaps,
                (a, b) -> a.address() == b.address() && a.sizeBytes() == b.sizeBytes(), OpChecks::describe));
        this.context = context;
        try {
            this.kernels = KernelLibrary.load(context);
            this.launcher = new Launcher(context, kernels);
            this.gemm = new CudaGemm(context, launcher);
        } catch (RuntimeException e) {
            context.close();
            throw e;
        }
        this.attention = new CudaAttention(context, kernels, launcher);
        this.elementwise = new CudaElementwise(launcher);
        CudaFlow flow = new CudaFlow(launcher);
        this.optim = new CudaOptim(launcher, flow);
        this.staging = new UploadStaging(context);
        install(gemm, new CudaNorm(launcher), new CudaModulation(launcher), attention, elementwise, new CudaLayout(launcher),
                new CudaVideo(launcher), flow, optim);
    }

    /** Opens GPU {@code device} (0-based): primary context, streams, every kernel resolved. */
    public static CudaBackend open(int device) { return new CudaBackend(CudaContext.open(device)); }

    public CudaContext context() { return context; }

    @Override
    public String name() { return context.toString(); }

    /** A GPU: storage in each tensor's dtype, fp8 kept quantized, pinned host buffers, the context's memory. */
    @Override
    public DeviceFacts device() {
        return new DeviceFacts(context.deviceName(), false, true, true, context.totalMemoryBytes(), new DeviceFacts.Memory() {
            @Override public long freeBytes() { return context.freeMemoryBytes(); }
            @Override public long liveBytes() { return DeviceBuffer.liveBytes(); }
            @Override public long peakLiveBytes() { return DeviceBuffer.peakLiveBytes(); }
            @Override public void resetPeakLiveBytes() { DeviceBuffer.resetPeakLiveBytes(); }
            @Override public long allocationCount() { return DeviceBuffer.allocationCount(); }
        }, context.computeCapability() >= CudaFp8Gemm.MIN_COMPUTE_CAPABILITY);
    }

    // ---------------------------------------------------------------- memory

    /** A new tensor in its own device allocation, contents undefined (for buffers that are written before read). */
    public CudaTensor allocateUninitialized(DType dtype, Shape shape) {
        long bytes = Math.multiplyExact(shape.numElements(), dtype.sizeBytes());
        DeviceBuffer buffer = DeviceBuffer.allocate(context, bytes, dtype + shape.toString());
        return new CudaTensor(this, buffer, 0, dtype, shape, true, null, 0);
    }

    /** Page-locked host memory for asynchronous copies (see {@link #copyToDeviceAsync}, {@link #copyToHostAsync}). */
    public PinnedHostBuffer allocatePinned(long sizeBytes, String label) {
        return PinnedHostBuffer.allocate(context, sizeBytes, label);
    }

    /**
     * Queues dst ← the {@code dst.sizeBytes()} bytes of {@code src} starting at {@code srcByteOffset}, on the copy stream
     * (block streaming: pinned weights into a device slot while the compute stream works). Order it against compute
     * with {@link CudaEvent}s: record on the copy stream after, wait on the compute stream before use.
     */
    public void copyToDeviceAsync(CudaTensor dst, PinnedHostBuffer src, long srcByteOffset) {
        requireRange("copyToDeviceAsync", src, srcByteOffset, dst.sizeBytes());
        context.makeCurrent();
        CudaException.check(cuMemcpyHtoDAsync(dst.pointer(), src.pointer(srcByteOffset), dst.sizeBytes(), context.copyStream()),
                "cuMemcpyHtoDAsync", "pinned -> " + dst);
    }

    /**
     * Queues dst[dstByteOffset ..] ← src on the compute stream, after every op queued before it (the once-per-step
     * loss read-back); record a {@link CudaEvent} on the compute stream and synchronize it before reading dst.
     */
    public void copyToHostAsync(PinnedHostBuffer dst, long dstByteOffset, CudaTensor src) {
        requireRange("copyToHostAsync", dst, dstByteOffset, src.sizeBytes());
        context.makeCurrent();
        CudaException.check(cuMemcpyDtoHAsync(dst.pointer(dstByteOffset), src.pointer(), src.sizeBytes(), context.computeStream()),
                "cuMemcpyDtoHAsync", src + " -> pinned");
    }

    private static void requireRange(String op, PinnedHostBuffer host, long offset, long bytes) {
        if (offset < 0 || offset + bytes > host.sizeBytes()) {
            throw new IndexOutOfBoundsException(op + ": bytes [" + offset + ", " + (offset + bytes) + ") outside the pinned buffer of "
                    + host.sizeBytes() + " bytes");
        }
    }

    /** A bump arena of {@code capacityBytes} for per-step scratch. */
    public DeviceArena newArena(long capacityBytes, String label) {
        return new DeviceArena(this, DeviceBuffer.allocate(context, capacityBytes, label));
    }

    @Override
    public CudaTensor allocate(DType dtype, Shape shape) {
        CudaTensor t = allocateUninitialized(dtype, shape);
        CudaException.check(cuMemsetD8Async(t.pointer(), (byte) 0, t.sizeBytes(), context.computeStream()), "cuMemsetD8Async");
        return t;
    }

    @Override
    public CudaTensor fromFloats(DType dtype, Shape shape, float[] values) {
        if (values.length != shape.numElements()) {
            throw new IllegalArgumentException("fromFloats: value count does not match the shape; got " + values.length
                    + " values, expected " + shape.numElements() + " for " + shape);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(Math.multiplyExact((long) values.length, dtype.sizeBytes()), 16);
            encode("fromFloats", host, dtype, values);
            CudaTensor t = allocateUninitialized(dtype, shape);
            upload(t, host);
            return t;
        }
    }

    /** Through the pinned {@link UploadStaging} ring: no allocation, no wait for the GPU (see the contract). */
    @Override
    protected void runWrite(CudaTensor t, float[] values) {
        staging.upload(t.pointer(), t.sizeBytes(), host -> encode("write", host, t.dtype(), values));
    }

    /** Through the pinned {@link UploadStaging} ring in large pieces read on several threads (see the contract). */
    @Override
    protected void runWriteBytes(CudaTensor t, ByteSource bytes) {
        staging.uploadFrom(t.pointer(), bytes);
    }

    /** values rounded to dtype, little-endian, into host (values.length elements). */
    private static void encode(String op, MemorySegment host, DType dtype, float[] values) {
        for (int i = 0; i < values.length; i++) {
            float v = values[i];
            switch (dtype) {
                case F32 -> host.setAtIndex(FLOAT_LE, i, v);
                case BF16 -> host.setAtIndex(SHORT_LE, i, Bf16.fromFloat(v));
                case F16 -> host.setAtIndex(SHORT_LE, i, Fp16.fromFloat(v));
                case F8_E4M3 -> host.set(ValueLayout.JAVA_BYTE, i, Fp8.e4m3FromFloat(v));
                case F8_E5M2 -> host.set(ValueLayout.JAVA_BYTE, i, Fp8.e5m2FromFloat(v));
                case U8 -> {
                    if (!(v >= 0 && v <= 255 && v == Math.rint(v))) {
                        throw new IllegalArgumentException(op + " (cuda): a u8 tensor holds integer codes; got "
                                + v + " at index " + i + ", expected an integer in 0..255");
                    }
                    host.set(ValueLayout.JAVA_BYTE, i, (byte) v);
                }
                default -> throw new UnsupportedOperationException(op + " (cuda): dtype " + dtype
                        + " not stored; supported: F32, BF16, F16, F8_E4M3, F8_E5M2, U8");
            }
        }
    }

    @Override
    public CudaTensor fromBytes(DType dtype, Shape shape, MemorySegment bytes) {
        if ((!dtype.isFloatingPoint() && dtype != DType.U8) || dtype == DType.F64) {
            throw new UnsupportedOperationException("fromBytes (cuda): dtype " + dtype
                    + " not stored; supported: F32, BF16, F16, F8_E4M3, F8_E5M2, U8 (optimizer codes)");
        }
        long size = Math.multiplyExact(shape.numElements(), dtype.sizeBytes());
        if (bytes.byteSize() != size) {
            throw new IllegalArgumentException("fromBytes: byte count does not match " + dtype + shape + "; got "
                    + bytes.byteSize() + " bytes, expected " + size);
        }
        CudaTensor t = allocateUninitialized(dtype, shape);
        if (bytes.isNative()) {
            upload(t, bytes);
        } else {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment host = arena.allocate(size, 16);
                host.copyFrom(bytes);
                upload(t, host);
            }
        }
        return t;
    }

    /**
     * Host→device copy of a native segment into t (t.sizeBytes() bytes), complete when this returns.
     * Why not plain cuMemcpyHtoD: from pageable memory it may return once the bytes are staged, before the DMA lands,
     * and it runs on the legacy stream, which our non-blocking compute stream does not wait for — a kernel queued next
     * could read stale memory. Queuing the copy on the compute stream orders it before every later op; the
     * synchronize makes it safe for the caller to free or reuse the host segment.
     */
    private void upload(CudaTensor t, MemorySegment host) {
        context.makeCurrent();
        CudaException.check(cuMemcpyHtoDAsync(t.pointer(), new NativeHandles.HostPointer(host.address()), t.sizeBytes(),
                context.computeStream()), "cuMemcpyHtoDAsync", "uploading " + t);
        CudaException.check(cuStreamSynchronize(context.computeStream()), "cuStreamSynchronize", "after uploading " + t);
    }

    @Override
    protected float[] runToFloats(CudaTensor t) {
        int n = Math.toIntExact(t.numElements());
        float[] out = new float[n];
        context.makeCurrent();
        CudaException.check(cuStreamSynchronize(context.computeStream()), "cuStreamSynchronize", "before toFloats of " + t);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(Math.max(1, t.sizeBytes()), 16);
            CudaException.check(cuMemcpyDtoH(new NativeHandles.HostPointer(host.address()), t.pointer(), t.sizeBytes()),
                    "cuMemcpyDtoH", "reading " + t);
            for (int i = 0; i < n; i++) {
                out[i] = switch (t.dtype()) {
                    case F32 -> host.getAtIndex(FLOAT_LE, i);
                    case BF16 -> Bf16.toFloat(host.getAtIndex(SHORT_LE, i));
                    case F16 -> Fp16.toFloat(host.getAtIndex(SHORT_LE, i));
                    case F8_E4M3 -> Fp8.e4m3ToFloat(host.get(ValueLayout.JAVA_BYTE, i));
                    case F8_E5M2 -> Fp8.e5m2ToFloat(host.get(ValueLayout.JAVA_BYTE, i));
                    case U8 -> host.get(ValueLayout.JAVA_BYTE, i) & 0xff;
                    default -> throw new UnsupportedOperationException("toFloats (cuda): dtype " + t.dtype()
                            + " not supported; supported: F32, BF16, F16, F8_E4M3, F8_E5M2, U8");
                };
            }
        }
        return out;
    }

    @Override
    protected void runCopy(CudaTensor d, CudaTensor s) {
        if (d.dtype() == s.dtype()) {
            if (d.address() == s.address()) return;
            context.makeCurrent();
            CudaException.check(cuMemcpyDtoDAsync(d.pointer(), s.pointer(), d.sizeBytes(), context.computeStream()),
                    "cuMemcpyDtoDAsync", "copy " + s + " -> " + d);
            return;
        }
        if (d.address() == s.address()) {
            throw new IllegalArgumentException("copy (cuda): dst and src are the same memory but differ in dtype; got "
                    + OpChecks.describe("dst", d) + " and " + OpChecks.describe("src", s) + ", expected disjoint storage");
        }
        elementwise.convert(d, s);
    }

    @Override
    protected void runFill(CudaTensor t, float value) {
        context.makeCurrent();
        long n = t.numElements();
        int r = switch (t.dtype()) {
            case F32 -> cuMemsetD32Async(t.pointer(), Float.floatToRawIntBits(value), n, context.computeStream());
            case BF16 -> cuMemsetD16Async(t.pointer(), Bf16.fromFloat(value), n, context.computeStream());
            case F16 -> cuMemsetD16Async(t.pointer(), Fp16.fromFloat(value), n, context.computeStream());
            case F8_E4M3 -> cuMemsetD8Async(t.pointer(), Fp8.e4m3FromFloat(value), n, context.computeStream());
            case F8_E5M2 -> cuMemsetD8Async(t.pointer(), Fp8.e5m2FromFloat(value), n, context.computeStream());
            default -> throw new UnsupportedOperationException("fill (cuda): dtype " + t.dtype()
                    + " not supported; supported: F32, BF16, F16, F8_E4M3, F8_E5M2");
        };
        CudaException.check(r, "cuMemsetAsync", "fill " + t);
    }

    @Override
    public void synchronize() { context.synchronize(); }

    @Override
    public java.util.List<String> gemmReport() {
        var lines = new java.util.ArrayList<String>();
        lines.add(gemmTuning());
        lines.addAll(gemmAlgorithms());
        return lines;
    }

    @Override
    public Timeline openTimeline() { return new CudaTimeline(context); }

    /**
     * Sizes the attention backward's workspace (delta, B·N·Lq F32) for the largest (batch, heads, queries) a run
     * uses, so that no step allocates; call it from the memory plan (see {@link CudaAttention}).
     */
    public void reserveAttentionWorkspace(long batch, int heads, long queries) {
        attention.reserveBackwardWorkspace(CudaAttention.backwardWorkspaceBytes(batch, heads, queries));
    }

    // ---------------------------------------------------------------- plumbing

    /** t as a CudaTensor of this backend (null stays null: optional arguments are checked by OpChecks). */
    @Override
    protected CudaTensor own(String op, String name, Tensor t) {
        if (t == null || (t instanceof CudaTensor c && c.cudaBackend() == this)) return (CudaTensor) t;
        throw new IllegalArgumentException(op + " (cuda): " + name + " belongs to another backend; got "
                + OpChecks.describe(name, t) + " on " + t.backendName() + ", expected a tensor of " + name());
    }

    private static boolean overlaps(CudaTensor a, CudaTensor b) {
        long a0 = a.address(), b0 = b.address();
        return a0 < b0 + b.sizeBytes() && b0 < a0 + a.sizeBytes() && a.sizeBytes() > 0 && b.sizeBytes() > 0;
    }

    /** "cuBLASLt 130100 (/usr/local/cuda/.../libcuBLASLt.so.13)": which library the GEMMs use. */
    public String gemmLibrary() { return gemm.describe(); }

    /** One line naming the attention kernels in use (Hopper or portable; see {@link CudaAttention}). */
    public String attentionPath() { return attention.describe(); }

    /** The attention ops, for tests that force a path ({@link CudaAttention#usePath}). */
    CudaAttention attentionKernels() { return attention; }

    /** How the GEMM algorithms are chosen (timed and cached, or the opt-out), one line. */
    public String gemmTuning() { return gemm.tuningSummary(); }

    /** One line per GEMM shape run so far, largest first: which cuBLASLt algorithm ran, how it was chosen, its calls. */
    public java.util.List<String> gemmAlgorithms() { return gemm.report(); }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        context.synchronize();
        staging.close();
        attention.close();
        optim.close();
        launcher.close();
        gemm.close();
        kernels.close();
        context.close();
    }
}
