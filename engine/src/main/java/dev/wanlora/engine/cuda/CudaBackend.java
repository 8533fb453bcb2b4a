package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.AliasChecks;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.backend.OpChecks;
import dev.wanlora.engine.io.ByteSource;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.optim.AdamW8bit;
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
 * kernels and streams (tensors are closed by their owners first).
 */
public final class CudaBackend implements Backend {
    private static final AliasChecks<CudaTensor> ALIAS = new AliasChecks<>("cuda", CudaBackend::overlaps,
            (a, b) -> a.address() == b.address() && a.sizeBytes() == b.sizeBytes(), OpChecks::describe);
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final CudaContext context;
    private final KernelLibrary kernels;
    private final CudaAttention attention;
    private final CudaGemm gemm;
    private final Launcher launcher;
    private final CudaElementwise elementwise;
    private final CudaAttentionWithBias attentionWithBias;
    private final CudaNorm norm;
    private final CudaFlow flow;
    private final CudaOptim optim;
    private final CudaVideo video;
    private final UploadStaging staging;
    private boolean closed;

    private CudaBackend(CudaContext context) {
        this.context = context;
        try {
            this.kernels = KernelLibrary.load(context);
            this.launcher = new Launcher(context, kernels);
            this.gemm = new CudaGemm(context, launcher);
        } catch (RuntimeException e) {
            context.close();
            throw e;
        }
        this.attention = new CudaAttention(context, kernels);
        this.elementwise = new CudaElementwise(launcher);
        this.attentionWithBias = new CudaAttentionWithBias(launcher);
        this.norm = new CudaNorm(launcher);
        this.flow = new CudaFlow(launcher);
        this.optim = new CudaOptim(launcher);
        this.video = new CudaVideo(launcher);
        this.staging = new UploadStaging(context);
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
        });
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
    public void write(Tensor dst, float[] values) {
        CudaTensor t = cuda("write", "dst", dst);
        if (values.length != t.numElements()) {
            throw new IllegalArgumentException("write: value count does not match the tensor; got " + values.length
                    + " values for " + t.shape() + ", expected " + t.numElements());
        }
        staging.upload(t.pointer(), t.sizeBytes(), host -> encode("write", host, t.dtype(), values));
    }

    /** Through the pinned {@link UploadStaging} ring in large pieces read on several threads (see the contract). */
    @Override
    public void writeBytes(Tensor dst, ByteSource bytes) {
        CudaTensor t = cuda("writeBytes", "dst", dst);
        if (bytes.byteSize() != t.sizeBytes()) {
            throw new IllegalArgumentException("writeBytes: byte count does not match the tensor; got " + bytes.byteSize()
                    + " bytes from " + bytes.describe() + " for " + t.shape() + " " + t.dtype() + ", expected " + t.sizeBytes());
        }
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
    public float[] toFloats(Tensor tensor) {
        CudaTensor t = cuda("toFloats", "t", tensor);
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
    public void copy(Tensor dst, Tensor src) {
        OpChecks.copy(dst, src);
        CudaTensor d = cuda("copy", "dst", dst), s = cuda("copy", "src", src);
        ALIAS.sameOrDisjoint("copy", "dst", d, "src", s);
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
    public void fill(Tensor tensor, float value) {
        CudaTensor t = cuda("fill", "t", tensor);
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

    // ---------------------------------------------------------------- GEMM

    @Override
    public void gemm(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta, Tensor bias) {
        OpChecks.gemm(c, a, transA, b, transB, bias);
        CudaTensor cc = cuda("gemm", "c", c), ca = cuda("gemm", "a", a), cb = cuda("gemm", "b", b);
        CudaTensor cbias = cuda("gemm", "bias", bias);
        ALIAS.disjoint("gemm", "c", cc, "a", ca);
        ALIAS.disjoint("gemm", "c", cc, "b", cb);
        ALIAS.disjoint("gemm", "c", cc, "bias", cbias);
        gemm.gemm(cc, ca, transA, cb, transB, alpha, beta, cbias);
    }

    @Override
    public void dequantizeFp8(Tensor out, Tensor wq, Tensor scale) {
        String op = "dequantizeFp8";
        OpChecks.dequantizeFp8(out, wq, scale);
        CudaTensor co = cuda(op, "out", out), cw = cuda(op, "wq", wq), cs = cuda(op, "scale", scale);
        ALIAS.disjoint(op, "out", co, "wq", cw);
        ALIAS.disjoint(op, "out", co, "scale", cs);
        elementwise.dequantizeFp8(co, cw, cs);
    }

    @Override
    public void quantizeFp8(Tensor codes, Tensor scale, Tensor w) {
        String op = "quantizeFp8";
        OpChecks.quantizeFp8(codes, scale, w);
        CudaTensor cc = cuda(op, "codes", codes), cs = cuda(op, "scale", scale), cw = cuda(op, "w", w);
        ALIAS.disjoint(op, "codes", cc, "w", cw);
        ALIAS.disjoint(op, "scale", cs, "w", cw);
        ALIAS.disjoint(op, "codes", cc, "scale", cs);
        elementwise.quantizeFp8(cc, cs, cw);
    }

    // ---------------------------------------------------------------- norms

    @Override
    public void layerNorm(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias, float eps) {
        String op = "layerNorm";
        var dims = OpChecks.layerNorm(out, mean, rstd, x, weight, bias);
        CudaTensor co = cuda(op, "out", out), cm = cuda(op, "mean", mean), cr = cuda(op, "rstd", rstd);
        CudaTensor cx = cuda(op, "x", x), cw = cuda(op, "weight", weight), cb = cuda(op, "bias", bias);
        if (cw != null && cb != null) CudaElementwise.requireSame(op, "weight", cw.dtype(), "bias", cb.dtype());
        ALIAS.outputs(op, new String[] {"out", "mean", "rstd"}, new CudaTensor[] {co, cm, cr},
                new String[] {"x", "weight", "bias"}, new CudaTensor[] {cx, cw, cb});
        norm.layerNorm(co, cm, cr, cx, cw, cb, eps, dims);
    }

    @Override
    public void layerNormBackward(Tensor dx, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor x, Tensor weight,
                                  Tensor mean, Tensor rstd, boolean accumulate) {
        String op = "layerNormBackward";
        var dims = OpChecks.layerNormBackward(dx, dWeight, dBias, dOut, x, weight, mean, rstd);
        CudaTensor cdx = cuda(op, "dx", dx), cdw = cuda(op, "dWeight", dWeight), cdb = cuda(op, "dBias", dBias);
        CudaTensor cdo = cuda(op, "dOut", dOut), cx = cuda(op, "x", x), cw = cuda(op, "weight", weight);
        CudaTensor cm = cuda(op, "mean", mean), cr = cuda(op, "rstd", rstd);
        CudaElementwise.requireSame(op, "dOut", cdo.dtype(), "x", cx.dtype());
        ALIAS.outputs(op, new String[] {"dx", "dWeight", "dBias"}, new CudaTensor[] {cdx, cdw, cdb},
                new String[] {"dOut", "x", "weight", "mean", "rstd"}, new CudaTensor[] {cdo, cx, cw, cm, cr});
        norm.layerNormBackward(cdx, cdw, cdb, cdo, cx, cw, cm, cr, accumulate, dims);
    }

    @Override
    public void rmsNorm(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
        String op = "rmsNorm";
        var dims = OpChecks.rmsNorm(out, rstd, x, weight);
        CudaTensor co = cuda(op, "out", out), cr = cuda(op, "rstd", rstd);
        CudaTensor cx = cuda(op, "x", x), cw = cuda(op, "weight", weight);
        ALIAS.outputs(op, new String[] {"out", "rstd"}, new CudaTensor[] {co, cr},
                new String[] {"x", "weight"}, new CudaTensor[] {cx, cw});
        norm.rmsNorm(co, cr, cx, cw, eps, dims);
    }

    @Override
    public void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dOut, Tensor x, Tensor weight, Tensor rstd) {
        String op = "rmsNormBackward";
        var dims = OpChecks.rmsNormBackward(dx, dWeight, dOut, x, weight, rstd);
        CudaTensor cdx = cuda(op, "dx", dx), cdw = cuda(op, "dWeight", dWeight);
        CudaTensor cdo = cuda(op, "dOut", dOut), cx = cuda(op, "x", x), cw = cuda(op, "weight", weight);
        CudaTensor cr = cuda(op, "rstd", rstd);
        CudaElementwise.requireSame(op, "dOut", cdo.dtype(), "x", cx.dtype());
        ALIAS.outputs(op, new String[] {"dx", "dWeight"}, new CudaTensor[] {cdx, cdw},
                new String[] {"dOut", "x", "weight", "rstd"}, new CudaTensor[] {cdo, cx, cw, cr});
        norm.rmsNormBackward(cdx, cdw, cdo, cx, cw, cr, dims);
    }

    // ---------------------------------------------------------------- adaLN modulation

    @Override
    public void modulate(Tensor out, Tensor x, Tensor mod, int shiftIndex, int scaleIndex) {
        var dims = OpChecks.modulate(out, x, mod, shiftIndex, scaleIndex);
        CudaTensor co = cuda("modulate", "out", out), cx = cuda("modulate", "x", x), cm = cuda("modulate", "mod", mod);
        ALIAS.sameOrDisjoint("modulate", "out", co, "x", cx);
        ALIAS.disjoint("modulate", "out", co, "mod", cm);
        elementwise.modulate(co, cx, cm, shiftIndex, scaleIndex, dims);
    }

    @Override
    public void modulateBackward(Tensor dx, Tensor dOut, Tensor mod, int scaleIndex) {
        String op = "modulateBackward";
        var dims = OpChecks.modulateBackward(dx, dOut, mod, scaleIndex);
        CudaTensor cdx = cuda(op, "dx", dx), cdo = cuda(op, "dOut", dOut), cm = cuda(op, "mod", mod);
        ALIAS.sameOrDisjoint(op, "dx", cdx, "dOut", cdo);
        ALIAS.disjoint(op, "dx", cdx, "mod", cm);
        elementwise.modulateBackward(cdx, cdo, cm, scaleIndex, dims);
    }

    @Override
    public void gatedResidual(Tensor x, Tensor y, Tensor mod, int gateIndex) {
        String op = "gatedResidual";
        var dims = OpChecks.gatedResidual(op, "x", x, "y", y, mod, gateIndex);
        CudaTensor cx = cuda(op, "x", x), cy = cuda(op, "y", y), cm = gateIndex < 0 ? null : cuda(op, "mod", mod);
        ALIAS.disjoint(op, "x", cx, "y", cy);
        ALIAS.disjoint(op, "x", cx, "mod", cm);
        elementwise.gatedResidual(cx, cy, cm, gateIndex, dims);
    }

    @Override
    public void gatedResidualBackward(Tensor dy, Tensor dx, Tensor mod, int gateIndex) {
        String op = "gatedResidualBackward";
        var dims = OpChecks.gatedResidual(op, "dx", dx, "dy", dy, mod, gateIndex);
        CudaTensor cdy = cuda(op, "dy", dy), cdx = cuda(op, "dx", dx), cm = gateIndex < 0 ? null : cuda(op, "mod", mod);
        ALIAS.sameOrDisjoint(op, "dy", cdy, "dx", cdx);
        ALIAS.disjoint(op, "dy", cdy, "mod", cm);
        elementwise.gatedResidualBackward(cdy, cdx, cm, gateIndex, dims);
    }

    // ---------------------------------------------------------------- RoPE and attention

    @Override
    public void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int numHeads) {
        String op = "rope";
        var dims = OpChecks.rope(op, out, "out", x, "x", cos, sin, numHeads);
        CudaTensor co = cuda(op, "out", out), cx = cuda(op, "x", x), cc = cuda(op, "cos", cos), cs = cuda(op, "sin", sin);
        ALIAS.sameOrDisjoint(op, "out", co, "x", cx);
        ALIAS.disjoint(op, "out", co, "cos", cc);
        ALIAS.disjoint(op, "out", co, "sin", cs);
        elementwise.rope(op, co, cx, cc, cs, false, dims);
    }

    @Override
    public void ropeBackward(Tensor dx, Tensor dOut, Tensor cos, Tensor sin, int numHeads) {
        String op = "ropeBackward";
        var dims = OpChecks.rope(op, dx, "dx", dOut, "dOut", cos, sin, numHeads);
        CudaTensor cdx = cuda(op, "dx", dx), cdo = cuda(op, "dOut", dOut), cc = cuda(op, "cos", cos), cs = cuda(op, "sin", sin);
        ALIAS.sameOrDisjoint(op, "dx", cdx, "dOut", cdo);
        ALIAS.disjoint(op, "dx", cdx, "cos", cc);
        ALIAS.disjoint(op, "dx", cdx, "sin", cs);
        elementwise.rope(op, cdx, cdo, cc, cs, true, dims);
    }

    /**
     * Sizes the attention backward's workspace (delta, B·N·Lq F32) for the largest (batch, heads, queries) a run
     * uses, so that no step allocates; call it from the memory plan (see {@link CudaAttention}).
     */
    public void reserveAttentionWorkspace(long batch, int heads, long queries) {
        attention.reserveBackwardWorkspace(CudaAttention.backwardWorkspaceBytes(batch, heads, queries));
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int numHeads) {
        String op = "attention";
        OpChecks.attention(out, lse, q, k, v, numHeads);
        CudaTensor co = cuda(op, "out", out), cl = cuda(op, "lse", lse);
        CudaTensor cq = cuda(op, "q", q), ck = cuda(op, "k", k), cv = cuda(op, "v", v);
        ALIAS.outputs(op, new String[] {"out", "lse"}, new CudaTensor[] {co, cl},
                new String[] {"q", "k", "v"}, new CudaTensor[] {cq, ck, cv});
        attention.forward(co, cl, cq, ck, cv, numHeads);
    }

    @Override
    public void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out,
                                  Tensor lse, int numHeads) {
        String op = "attentionBackward";
        OpChecks.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, numHeads);
        CudaTensor cdq = cuda(op, "dq", dq), cdk = cuda(op, "dk", dk), cdv = cuda(op, "dv", dv);
        CudaTensor cdo = cuda(op, "dOut", dOut), cq = cuda(op, "q", q), ck = cuda(op, "k", k), cv = cuda(op, "v", v);
        CudaTensor co = cuda(op, "out", out), cl = cuda(op, "lse", lse);
        ALIAS.outputs(op, new String[] {"dq", "dk", "dv"}, new CudaTensor[] {cdq, cdk, cdv},
                new String[] {"dOut", "q", "k", "v", "out", "lse"}, new CudaTensor[] {cdo, cq, ck, cv, co, cl});
        attention.backward(cdq, cdk, cdv, cdo, cq, ck, cv, co, cl, numHeads);
    }

    // ---------------------------------------------------------------- activations and elementwise

    @Override
    public void geluTanh(Tensor out, Tensor x) {
        OpChecks.sameCount("geluTanh", "out", out, "x", x);
        CudaTensor co = cuda("geluTanh", "out", out), cx = cuda("geluTanh", "x", x);
        ALIAS.sameOrDisjoint("geluTanh", "out", co, "x", cx);
        elementwise.geluTanh(co, cx);
    }

    @Override
    public void geluTanhBackward(Tensor dx, Tensor dOut, Tensor x) {
        String op = "geluTanhBackward";
        OpChecks.sameCount(op, "dx", dx, "x", x);
        OpChecks.sameCount(op, "dOut", dOut, "x", x);
        CudaTensor cdx = cuda(op, "dx", dx), cdo = cuda(op, "dOut", dOut), cx = cuda(op, "x", x);
        ALIAS.sameOrDisjoint(op, "dx", cdx, "dOut", cdo);
        ALIAS.sameOrDisjoint(op, "dx", cdx, "x", cx);
        elementwise.geluTanhBackward(cdx, cdo, cx);
    }

    @Override
    public void embedding(Tensor out, Tensor table, Tensor ids) {
        String op = "embedding";
        var dims = OpChecks.embedding(out, table, ids);
        CudaTensor co = cuda(op, "out", out), ct = cuda(op, "table", table), ci = cuda(op, "ids", ids);
        ALIAS.outputs(op, new String[] {"out"}, new CudaTensor[] {co}, new String[] {"table", "ids"}, new CudaTensor[] {ct, ci});
        elementwise.embedding(co, ct, ci, dims);
    }

    @Override
    public void relativePositionBias(Tensor out, Tensor table, Tensor buckets) {
        String op = "relativePositionBias";
        var dims = OpChecks.relativePositionBias(out, table, buckets);
        CudaTensor co = cuda(op, "out", out), ct = cuda(op, "table", table), cb = cuda(op, "buckets", buckets);
        ALIAS.outputs(op, new String[] {"out"}, new CudaTensor[] {co}, new String[] {"table", "buckets"}, new CudaTensor[] {ct, cb});
        elementwise.relativePositionBias(co, ct, cb, dims);
    }

    @Override
    public void attentionWithBias(Tensor out, Tensor q, Tensor k, Tensor v, Tensor bias, Tensor keyMask, int numHeads) {
        String op = "attentionWithBias";
        var dims = OpChecks.attentionWithBias(out, q, k, v, bias, keyMask, numHeads);
        CudaTensor co = cuda(op, "out", out), cq = cuda(op, "q", q), ck = cuda(op, "k", k), cv = cuda(op, "v", v);
        CudaTensor cb = cuda(op, "bias", bias), cm = cuda(op, "keyMask", keyMask);
        ALIAS.outputs(op, new String[] {"out"}, new CudaTensor[] {co}, new String[] {"q", "k", "v", "bias", "keyMask"},
                new CudaTensor[] {cq, ck, cv, cb, cm});
        attentionWithBias.forward(co, cq, ck, cv, cb, cm, dims);
    }

    @Override
    public void gatedGelu(Tensor out, Tensor gate, Tensor x) {
        String op = "gatedGelu";
        OpChecks.sameCount(op, "out", out, "x", x);
        OpChecks.sameCount(op, "out", out, "gate", gate);
        CudaTensor co = cuda(op, "out", out), cg = cuda(op, "gate", gate), cx = cuda(op, "x", x);
        ALIAS.sameOrDisjoint(op, "out", co, "x", cx);
        ALIAS.sameOrDisjoint(op, "out", co, "gate", cg);
        elementwise.gatedGelu(co, cg, cx);
    }

    @Override
    public void silu(Tensor out, Tensor x) {
        OpChecks.sameCount("silu", "out", out, "x", x);
        CudaTensor co = cuda("silu", "out", out), cx = cuda("silu", "x", x);
        ALIAS.sameOrDisjoint("silu", "out", co, "x", cx);
        elementwise.silu(co, cx);
    }

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        OpChecks.sameCount("add", "out", out, "a", a);
        OpChecks.sameCount("add", "out", out, "b", b);
        CudaTensor co = cuda("add", "out", out), ca = cuda("add", "a", a), cb = cuda("add", "b", b);
        ALIAS.sameOrDisjoint("add", "out", co, "a", ca);
        ALIAS.sameOrDisjoint("add", "out", co, "b", cb);
        elementwise.add(co, ca, cb);
    }

    @Override
    public void addRowVector(Tensor out, Tensor x, Tensor v) {
        var dims = OpChecks.addRowVector(out, x, v);
        CudaTensor co = cuda("addRowVector", "out", out), cx = cuda("addRowVector", "x", x), cv = cuda("addRowVector", "v", v);
        ALIAS.sameOrDisjoint("addRowVector", "out", co, "x", cx);
        ALIAS.disjoint("addRowVector", "out", co, "v", cv);
        elementwise.addRowVector(co, cx, cv, dims);
    }

    @Override
    public void scale(Tensor out, Tensor x, float alpha) {
        OpChecks.sameCount("scale", "out", out, "x", x);
        CudaTensor co = cuda("scale", "out", out), cx = cuda("scale", "x", x);
        ALIAS.sameOrDisjoint("scale", "out", co, "x", cx);
        elementwise.scale(co, cx, alpha);
    }

    // ---------------------------------------------------------------- video convolution (the Wan VAE)

    @Override
    public void conv3d(Tensor out, Tensor cache, Tensor x, Tensor weight, Tensor bias, ConvGeometry geometry) {
        String op = "conv3d";
        var dims = OpChecks.conv3d(out, cache, x, weight, bias, geometry);
        CudaTensor co = cuda(op, "out", out), cc = cuda(op, "cache", cache), cx = cuda(op, "x", x);
        CudaTensor cw = cuda(op, "weight", weight), cb = cuda(op, "bias", bias);
        ALIAS.disjoint(op, "out", co, "cache", cc);
        ALIAS.disjoint(op, "out", co, "x", cx);
        ALIAS.disjoint(op, "out", co, "weight", cw);
        ALIAS.disjoint(op, "out", co, "bias", cb);
        video.conv3d(co, cc, cx, cw, cb, dims);
    }

    @Override
    public void upsampleNearest2x(Tensor out, Tensor x) {
        var dims = OpChecks.upsampleNearest2x(out, x);
        CudaTensor co = cuda("upsampleNearest2x", "out", out), cx = cuda("upsampleNearest2x", "x", x);
        ALIAS.disjoint("upsampleNearest2x", "out", co, "x", cx);
        video.upsampleNearest2x(co, cx, dims);
    }

    @Override
    public void softmax(Tensor out, Tensor x, float scale) {
        var dims = OpChecks.softmax(out, x);
        CudaTensor co = cuda("softmax", "out", out), cx = cuda("softmax", "x", x);
        ALIAS.sameOrDisjoint("softmax", "out", co, "x", cx);
        video.softmax(co, cx, scale, dims);
    }

    // ---------------------------------------------------------------- layout and embeddings

    @Override
    public void patchify(Tensor out, Tensor latents, int channels, int frames, int height, int width) {
        var dims = OpChecks.patchify(out, latents, channels, frames, height, width);
        CudaTensor co = cuda("patchify", "out", out), cl = cuda("patchify", "latents", latents);
        ALIAS.disjoint("patchify", "out", co, "latents", cl);
        elementwise.patchify(co, cl, dims);
    }

    @Override
    public void unpatchify(Tensor out, Tensor tokens, int channels, int frames, int height, int width) {
        var dims = OpChecks.unpatchify("unpatchify", out, "out", tokens, "tokens", channels, frames, height, width);
        CudaTensor co = cuda("unpatchify", "out", out), ct = cuda("unpatchify", "tokens", tokens);
        ALIAS.disjoint("unpatchify", "out", co, "tokens", ct);
        elementwise.unpatchify(co, ct, dims);
    }

    @Override
    public void unpatchifyBackward(Tensor dTokens, Tensor dOut, int channels, int frames, int height, int width) {
        String op = "unpatchifyBackward";
        var dims = OpChecks.unpatchify(op, dOut, "dOut", dTokens, "dTokens", channels, frames, height, width);
        CudaTensor ct = cuda(op, "dTokens", dTokens), co = cuda(op, "dOut", dOut);
        ALIAS.disjoint(op, "dTokens", ct, "dOut", co);
        elementwise.unpatchifyBackward(ct, co, dims);
    }

    @Override
    public void sinusoidalEmbedding(Tensor out, Tensor timesteps) {
        var dims = OpChecks.sinusoidalEmbedding(out, timesteps);
        CudaTensor co = cuda("sinusoidalEmbedding", "out", out), ct = cuda("sinusoidalEmbedding", "timesteps", timesteps);
        ALIAS.disjoint("sinusoidalEmbedding", "out", co, "timesteps", ct);
        elementwise.sinusoidalEmbedding(co, ct, dims);
    }

    // ---------------------------------------------------------------- flow matching and loss

    @Override
    public void gaussianNoise(Tensor out, long seed, long offset) {
        OpChecks.gaussianNoise(out);
        flow.gaussianNoise(cuda("gaussianNoise", "out", out), seed, offset);
    }

    @Override
    public void flowMatchingInput(Tensor xt, Tensor target, Tensor x0, Tensor noise, Tensor t) {
        String op = "flowMatchingInput";
        var dims = OpChecks.flowMatchingInput(xt, target, x0, noise, t);
        CudaTensor cxt = cuda(op, "xt", xt), ctg = cuda(op, "target", target);
        CudaTensor cx0 = cuda(op, "x0", x0), cn = cuda(op, "noise", noise), ct = cuda(op, "t", t);
        ALIAS.disjoint(op, "xt", cxt, "target", ctg);
        for (CudaTensor o : new CudaTensor[] {cxt, ctg}) {
            String name = o == cxt ? "xt" : "target";
            ALIAS.sameOrDisjoint(op, name, o, "x0", cx0);
            ALIAS.sameOrDisjoint(op, name, o, "noise", cn);
            ALIAS.disjoint(op, name, o, "t", ct);
        }
        flow.flowMatchingInput(cxt, ctg, cx0, cn, ct, dims);
    }

    @Override
    public void mseLoss(Tensor loss, Tensor dPred, Tensor pred, Tensor target, float gradScale) {
        String op = "mseLoss";
        long n = OpChecks.mseLoss(loss, dPred, pred, target);
        CudaTensor cl = cuda(op, "loss", loss), cd = cuda(op, "dPred", dPred);
        CudaTensor cp = cuda(op, "pred", pred), ct = cuda(op, "target", target);
        ALIAS.disjoint(op, "loss", cl, "dPred", cd);
        ALIAS.disjoint(op, "loss", cl, "pred", cp);
        ALIAS.disjoint(op, "loss", cl, "target", ct);
        ALIAS.sameOrDisjoint(op, "dPred", cd, "pred", cp);
        ALIAS.sameOrDisjoint(op, "dPred", cd, "target", ct);
        flow.mseLoss(cl, cd, cp, ct, gradScale, n);
    }

    // ---------------------------------------------------------------- optimizer

    @Override
    public void sumOfSquares(Tensor normSquared, Tensor g) {
        OpChecks.sumOfSquares(normSquared, g);
        CudaTensor cn = cuda("sumOfSquares", "normSquared", normSquared), cg = cuda("sumOfSquares", "g", g);
        ALIAS.disjoint("sumOfSquares", "normSquared", cn, "g", cg);
        flow.sumOfSquares(cn, cg);
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, AdamWStep hyper) {
        String op = "adamw";
        OpChecks.adamw(param, grad, m, v, gradScale, hyper);
        CudaTensor cp = cuda(op, "param", param), cg = cuda(op, "grad", grad);
        CudaTensor cm = cuda(op, "m", m), cv = cuda(op, "v", v), cs = cuda(op, "gradScale", gradScale);
        ALIAS.outputs(op, new String[] {"param", "m", "v"}, new CudaTensor[] {cp, cm, cv},
                new String[] {"grad", "gradScale"}, new CudaTensor[] {cg, cs});
        optim.adamw(cp, cg, cm, cv, cs, hyper);
    }

    @Override
    public void adamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes, Tensor vAbsMax,
                          Tensor gradScale, AdamWStep hyper) {
        String op = "adamw8bit";
        OpChecks.adamw8bit(param, grad, mCodes, mAbsMax, vCodes, vAbsMax, gradScale, hyper, AdamW8bit.BLOCK_SIZE);
        CudaTensor cp = cuda(op, "param", param), cg = cuda(op, "grad", grad), cs = cuda(op, "gradScale", gradScale);
        CudaTensor cmc = cuda(op, "mCodes", mCodes), cma = cuda(op, "mAbsMax", mAbsMax);
        CudaTensor cvc = cuda(op, "vCodes", vCodes), cva = cuda(op, "vAbsMax", vAbsMax);
        ALIAS.outputs(op, new String[] {"param", "mCodes", "mAbsMax", "vCodes", "vAbsMax"}, new CudaTensor[] {cp, cmc, cma, cvc, cva},
                new String[] {"grad", "gradScale"}, new CudaTensor[] {cg, cs});
        optim.adamw8bit(cp, cg, cmc, cma, cvc, cva, cs, hyper);
    }

    @Override
    public void prodigyAccumulate(Tensor param, Tensor grad, Tensor p0, Tensor m, Tensor v, Tensor s, Tensor gradScale,
                                  Tensor state, ProdigyStep hyper) {
        String op = "prodigyAccumulate";
        OpChecks.prodigy(op, param, grad, p0, m, v, s, gradScale, state, hyper);
        CudaTensor cp = cuda(op, "param", param), cg = cuda(op, "grad", grad), c0 = cuda(op, "p0", p0);
        CudaTensor cm = cuda(op, "m", m), cv = cuda(op, "v", v), cs = cuda(op, "s", s);
        CudaTensor cscale = cuda(op, "gradScale", gradScale), cstate = cuda(op, "state", state);
        ALIAS.outputs(op, new String[] {"p0", "m", "v", "s", "state"}, new CudaTensor[] {c0, cm, cv, cs, cstate},
                new String[] {"param", "grad", "gradScale"}, new CudaTensor[] {cp, cg, cscale});
        optim.prodigyAccumulate(cp, cg, c0, cm, cv, cs, cscale, cstate, hyper);
    }

    @Override
    public void prodigyAdapt(Tensor state, ProdigyStep hyper) {
        OpChecks.prodigy("prodigyAdapt", null, null, null, null, null, null, null, state, hyper);
        optim.prodigyAdapt(cuda("prodigyAdapt", "state", state), hyper);
    }

    @Override
    public void prodigyUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, Tensor state,
                              ProdigyStep hyper) {
        String op = "prodigyUpdate";
        OpChecks.prodigy(op, param, grad, null, m, v, null, gradScale, state, hyper);
        CudaTensor cp = cuda(op, "param", param), cg = cuda(op, "grad", grad), cm = cuda(op, "m", m), cv = cuda(op, "v", v);
        CudaTensor cscale = cuda(op, "gradScale", gradScale), cstate = cuda(op, "state", state);
        ALIAS.outputs(op, new String[] {"param"}, new CudaTensor[] {cp},
                new String[] {"grad", "m", "v", "gradScale", "state"}, new CudaTensor[] {cg, cm, cv, cscale, cstate});
        optim.prodigyUpdate(cp, cg, cm, cv, cscale, cstate, hyper);
    }

    @Override
    public void adafactor(Tensor param, Tensor grad, Tensor m, Tensor row, Tensor col, Tensor v, Tensor gradScale,
                          AdafactorStep hyper) {
        String op = "adafactor";
        OpChecks.adafactor(param, grad, m, row, col, v, gradScale, hyper);
        CudaTensor cp = cuda(op, "param", param), cg = cuda(op, "grad", grad), cm = cuda(op, "m", m);
        CudaTensor cr = cuda(op, "row", row), cc = cuda(op, "col", col), cv = cuda(op, "v", v);
        CudaTensor cscale = cuda(op, "gradScale", gradScale);
        ALIAS.outputs(op, new String[] {"param", "m", "row", "col", "v"}, new CudaTensor[] {cp, cm, cr, cc, cv},
                new String[] {"grad", "gradScale"}, new CudaTensor[] {cg, cscale});
        optim.adafactor(cp, cg, cm, cr, cc, cv, cscale, hyper);
    }

    @Override
    public void clipCoefficient(Tensor clip, Tensor normSquared, float maxNorm) {
        OpChecks.clipCoefficient(clip, normSquared);
        CudaTensor cc = cuda("clipCoefficient", "clip", clip), cn = cuda("clipCoefficient", "normSquared", normSquared);
        ALIAS.sameOrDisjoint("clipCoefficient", "clip", cc, "normSquared", cn);
        optim.clipCoefficient(cc, cn, maxNorm);
    }

    // ---------------------------------------------------------------- plumbing

    /** t as a CudaTensor of this backend (null stays null: optional arguments are checked by OpChecks). */
    private CudaTensor cuda(String op, String name, Tensor t) {
        if (t == null || (t instanceof CudaTensor c && c.cudaBackend() == this)) return (CudaTensor) t;
        throw new IllegalArgumentException(op + " (cuda): " + name + " belongs to another backend; got "
                + OpChecks.describe(name, t) + " on " + t.backend().name() + ", expected a tensor of " + name());
    }

    private static boolean overlaps(CudaTensor a, CudaTensor b) {
        long a0 = a.address(), b0 = b.address();
        return a0 < b0 + b.sizeBytes() && b0 < a0 + a.sizeBytes() && a.sizeBytes() > 0 && b.sizeBytes() > 0;
    }

    /** "cuBLASLt 130100 (/usr/local/cuda/.../libcuBLASLt.so.13)": which library the GEMMs use. */
    public String gemmLibrary() { return gemm.describe(); }

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
