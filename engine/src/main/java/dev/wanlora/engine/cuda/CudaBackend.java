package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.AliasChecks;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.CheckedBackend;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.backend.OpChecks;
import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.backend.OpChecks.ConvDims;
import dev.wanlora.engine.backend.OpChecks.GemmDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.backend.OpChecks.PatchDims;
import dev.wanlora.engine.backend.OpChecks.TokenDims;
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
 * kernels and streams (tensors are closed by their owners first). Argument checks run in {@link CheckedBackend};
 * the {@code run<Op>} hooks here get checked CudaTensors of this backend and call the op's launcher (CudaNorm, …).
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
    private final CudaAttentionWithBias attentionWithBias;
    private final CudaNorm norm;
    private final CudaFlow flow;
    private final CudaOptim optim;
    private final CudaVideo video;
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

    // ---------------------------------------------------------------- GEMM

    @Override
    protected void runGemm(CudaTensor c, CudaTensor a, boolean transA, CudaTensor b, boolean transB, float alpha,
                           float beta, CudaTensor bias, GemmDims dims) {
        gemm.gemm(c, a, transA, b, transB, alpha, beta, bias);
    }

    @Override
    protected void runDequantizeFp8(CudaTensor out, CudaTensor wq, CudaTensor scale, MatrixDims dims) {
        elementwise.dequantizeFp8(out, wq, scale);
    }

    @Override
    protected void runQuantizeFp8(CudaTensor codes, CudaTensor scale, CudaTensor w, MatrixDims dims) {
        elementwise.quantizeFp8(codes, scale, w);
    }

    // ---------------------------------------------------------------- norms

    @Override
    protected void runLayerNorm(CudaTensor out, CudaTensor mean, CudaTensor rstd, CudaTensor x, CudaTensor weight,
                                CudaTensor bias, float eps, MatrixDims dims) {
        if (weight != null && bias != null) {
            CudaElementwise.requireSame("layerNorm", "weight", weight.dtype(), "bias", bias.dtype());
        }
        norm.layerNorm(out, mean, rstd, x, weight, bias, eps, dims);
    }

    @Override
    protected void runLayerNormBackward(CudaTensor dx, CudaTensor dWeight, CudaTensor dBias, CudaTensor dOut,
                                        CudaTensor x, CudaTensor weight, CudaTensor mean, CudaTensor rstd,
                                        boolean accumulate, MatrixDims dims) {
        CudaElementwise.requireSame("layerNormBackward", "dOut", dOut.dtype(), "x", x.dtype());
        norm.layerNormBackward(dx, dWeight, dBias, dOut, x, weight, mean, rstd, accumulate, dims);
    }

    @Override
    protected void runRmsNorm(CudaTensor out, CudaTensor rstd, CudaTensor x, CudaTensor weight, float eps,
                              MatrixDims dims) {
        norm.rmsNorm(out, rstd, x, weight, eps, dims);
    }

    /** The fused kernel where {@link CudaNorm#rmsNormSilu} has one (bf16, C % 8 == 0, C ≤ 1024), else the chain. */
    @Override
    protected void runRmsNormSilu(CudaTensor out, CudaTensor rstd, CudaTensor x, CudaTensor weight, float eps,
                                  MatrixDims dims) {
        if (!norm.rmsNormSilu(out, rstd, x, weight, eps, dims)) super.runRmsNormSilu(out, rstd, x, weight, eps, dims);
    }

    @Override
    protected void runRmsNormBackward(CudaTensor dx, CudaTensor dWeight, CudaTensor dOut, CudaTensor x,
                                      CudaTensor weight, CudaTensor rstd, MatrixDims dims) {
        CudaElementwise.requireSame("rmsNormBackward", "dOut", dOut.dtype(), "x", x.dtype());
        norm.rmsNormBackward(dx, dWeight, dOut, x, weight, rstd, dims);
    }

    // ---------------------------------------------------------------- adaLN modulation

    @Override
    protected void runModulate(CudaTensor out, CudaTensor x, CudaTensor mod, int shiftIndex, int scaleIndex,
                               TokenDims dims) {
        elementwise.modulate(out, x, mod, shiftIndex, scaleIndex, dims);
    }

    @Override
    protected void runModulateBackward(CudaTensor dx, CudaTensor dOut, CudaTensor mod, int scaleIndex, TokenDims dims) {
        elementwise.modulateBackward(dx, dOut, mod, scaleIndex, dims);
    }

    @Override
    protected void runGatedResidual(CudaTensor x, CudaTensor y, CudaTensor mod, int gateIndex, TokenDims dims) {
        elementwise.gatedResidual(x, y, mod, gateIndex, dims);
    }

    @Override
    protected void runGatedResidualBackward(CudaTensor dy, CudaTensor dx, CudaTensor mod, int gateIndex,
                                            TokenDims dims) {
        elementwise.gatedResidualBackward(dy, dx, mod, gateIndex, dims);
    }

    // ---------------------------------------------------------------- RoPE and attention

    @Override
    protected void runRope(CudaTensor out, CudaTensor x, CudaTensor cos, CudaTensor sin, AttentionDims dims) {
        elementwise.rope("rope", out, x, cos, sin, false, dims);
    }

    @Override
    protected void runRopeBackward(CudaTensor dx, CudaTensor dOut, CudaTensor cos, CudaTensor sin, AttentionDims dims) {
        elementwise.rope("ropeBackward", dx, dOut, cos, sin, true, dims);
    }

    /**
     * Sizes the attention backward's workspace (delta, B·N·Lq F32) for the largest (batch, heads, queries) a run
     * uses, so that no step allocates; call it from the memory plan (see {@link CudaAttention}).
     */
    public void reserveAttentionWorkspace(long batch, int heads, long queries) {
        attention.reserveBackwardWorkspace(CudaAttention.backwardWorkspaceBytes(batch, heads, queries));
    }

    @Override
    protected void runAttention(CudaTensor out, CudaTensor lse, CudaTensor q, CudaTensor k, CudaTensor v,
                                AttentionDims dims) {
        attention.forward(out, lse, q, k, v, dims.heads());
    }

    @Override
    protected void runAttentionBackward(CudaTensor dq, CudaTensor dk, CudaTensor dv, CudaTensor dOut, CudaTensor q,
                                        CudaTensor k, CudaTensor v, CudaTensor out, CudaTensor lse, AttentionDims dims) {
        attention.backward(dq, dk, dv, dOut, q, k, v, out, lse, dims.heads());
    }

    // ---------------------------------------------------------------- activations and elementwise

    @Override
    protected void runGeluTanh(CudaTensor out, CudaTensor x) { elementwise.geluTanh(out, x); }

    @Override
    protected void runGeluTanhBackward(CudaTensor dx, CudaTensor dOut, CudaTensor x) {
        elementwise.geluTanhBackward(dx, dOut, x);
    }

    @Override
    protected void runSilu(CudaTensor out, CudaTensor x) { elementwise.silu(out, x); }

    @Override
    protected void runAdd(CudaTensor out, CudaTensor a, CudaTensor b) { elementwise.add(out, a, b); }

    @Override
    protected void runAddRowVector(CudaTensor out, CudaTensor x, CudaTensor v, MatrixDims dims) {
        elementwise.addRowVector(out, x, v, dims);
    }

    @Override
    protected void runScale(CudaTensor out, CudaTensor x, float alpha) { elementwise.scale(out, x, alpha); }

    // ---------------------------------------------------------------- layout and embeddings

    @Override
    protected void runPatchify(CudaTensor out, CudaTensor latents, PatchDims dims) {
        elementwise.patchify(out, latents, dims);
    }

    @Override
    protected void runUnpatchify(CudaTensor out, CudaTensor tokens, PatchDims dims) {
        elementwise.unpatchify(out, tokens, dims);
    }

    @Override
    protected void runUnpatchifyBackward(CudaTensor dTokens, CudaTensor dOut, PatchDims dims) {
        elementwise.unpatchifyBackward(dTokens, dOut, dims);
    }

    @Override
    protected void runSinusoidalEmbedding(CudaTensor out, CudaTensor timesteps, MatrixDims dims) {
        elementwise.sinusoidalEmbedding(out, timesteps, dims);
    }

    // ---------------------------------------------------------------- text encoder (umT5)

    @Override
    protected void runEmbedding(CudaTensor out, CudaTensor table, CudaTensor ids, MatrixDims dims) {
        elementwise.embedding(out, table, ids, dims);
    }

    @Override
    protected void runRelativePositionBias(CudaTensor out, CudaTensor table, CudaTensor buckets, AttentionDims dims) {
        elementwise.relativePositionBias(out, table, buckets, dims);
    }

    @Override
    protected void runAttentionWithBias(CudaTensor out, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor bias,
                                        CudaTensor keyMask, AttentionDims dims) {
        attentionWithBias.forward(out, q, k, v, bias, keyMask, dims);
    }

    @Override
    protected void runGatedGelu(CudaTensor out, CudaTensor gate, CudaTensor x) { elementwise.gatedGelu(out, gate, x); }

    // ---------------------------------------------------------------- video convolution (the Wan VAE)

    @Override
    protected void runConv3d(CudaTensor out, CudaTensor cache, CudaTensor x, CudaTensor weight, CudaTensor bias,
                             ConvDims dims) {
        video.conv3d(out, cache, x, weight, bias, dims);
    }

    @Override
    protected void runUpsampleNearest2x(CudaTensor out, CudaTensor x, ConvDims dims) {
        video.upsampleNearest2x(out, x, dims);
    }

    @Override
    protected void runSoftmax(CudaTensor out, CudaTensor x, float scale, MatrixDims dims) {
        video.softmax(out, x, scale, dims);
    }

    // ---------------------------------------------------------------- flow matching and loss

    @Override
    protected void runGaussianNoise(CudaTensor out, long seed, long offset) { flow.gaussianNoise(out, seed, offset); }

    @Override
    protected void runFlowMatchingInput(CudaTensor xt, CudaTensor target, CudaTensor x0, CudaTensor noise, CudaTensor t,
                                        MatrixDims dims) {
        flow.flowMatchingInput(xt, target, x0, noise, t, dims);
    }

    @Override
    protected void runMseLoss(CudaTensor loss, CudaTensor dPred, CudaTensor pred, CudaTensor target, float gradScale,
                              long n) {
        flow.mseLoss(loss, dPred, pred, target, gradScale, n);
    }

    // ---------------------------------------------------------------- optimizer

    @Override
    protected void runSumOfSquares(CudaTensor normSquared, CudaTensor g) { flow.sumOfSquares(normSquared, g); }

    @Override
    protected void runAdamw(CudaTensor param, CudaTensor grad, CudaTensor m, CudaTensor v, CudaTensor gradScale,
                            AdamWStep hyper) {
        optim.adamw(param, grad, m, v, gradScale, hyper);
    }

    @Override
    protected void runAdamw8bit(CudaTensor param, CudaTensor grad, CudaTensor mCodes, CudaTensor mAbsMax,
                                CudaTensor vCodes, CudaTensor vAbsMax, CudaTensor gradScale, AdamWStep hyper) {
        optim.adamw8bit(param, grad, mCodes, mAbsMax, vCodes, vAbsMax, gradScale, hyper);
    }

    @Override
    protected void runProdigyAccumulate(CudaTensor param, CudaTensor grad, CudaTensor p0, CudaTensor m, CudaTensor v,
                                        CudaTensor s, CudaTensor gradScale, CudaTensor state, ProdigyStep hyper) {
        optim.prodigyAccumulate(param, grad, p0, m, v, s, gradScale, state, hyper);
    }

    @Override
    protected void runProdigyAdapt(CudaTensor state, ProdigyStep hyper) { optim.prodigyAdapt(state, hyper); }

    @Override
    protected void runProdigyUpdate(CudaTensor param, CudaTensor grad, CudaTensor m, CudaTensor v, CudaTensor gradScale,
                                    CudaTensor state, ProdigyStep hyper) {
        optim.prodigyUpdate(param, grad, m, v, gradScale, state, hyper);
    }

    @Override
    protected void runAdafactor(CudaTensor param, CudaTensor grad, CudaTensor m, CudaTensor row, CudaTensor col,
                                CudaTensor v, CudaTensor gradScale, AdafactorStep hyper) {
        optim.adafactor(param, grad, m, row, col, v, gradScale, hyper);
    }

    @Override
    protected void runClipCoefficient(CudaTensor clip, CudaTensor normSquared, float maxNorm) {
        optim.clipCoefficient(clip, normSquared, maxNorm);
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
    CudaAttention attentionOps() { return attention; }

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
