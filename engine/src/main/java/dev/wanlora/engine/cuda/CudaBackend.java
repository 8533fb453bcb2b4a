package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.Backend;
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
 * kernels and streams (tensors are closed by their owners first).
 */
public final class CudaBackend implements Backend {
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final CudaContext context;
    private final KernelLibrary kernels;
    private final CudaAttention attention;
    private boolean closed;

    private CudaBackend(CudaContext context) {
        this.context = context;
        try {
            this.kernels = KernelLibrary.load(context);
        } catch (RuntimeException e) {
            context.close();
            throw e;
        }
        this.attention = new CudaAttention(context, kernels);
    }

    /** Opens GPU {@code device} (0-based): primary context, streams, every kernel resolved. */
    public static CudaBackend open(int device) { return new CudaBackend(CudaContext.open(device)); }

    public CudaContext context() { return context; }

    public KernelLibrary kernels() { return kernels; }

    @Override
    public String name() { return context.toString(); }

    // ---------------------------------------------------------------- memory

    /** A new tensor in its own device allocation, contents undefined (for buffers that are written before read). */
    public CudaTensor allocateUninitialized(DType dtype, Shape shape) {
        long bytes = Math.multiplyExact(shape.numElements(), dtype.sizeBytes());
        DeviceBuffer buffer = DeviceBuffer.allocate(context, bytes, dtype + shape.toString());
        return new CudaTensor(this, buffer, 0, dtype, shape, true, null, 0);
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
            for (int i = 0; i < values.length; i++) {
                float v = values[i];
                switch (dtype) {
                    case F32 -> host.setAtIndex(FLOAT_LE, i, v);
                    case BF16 -> host.setAtIndex(SHORT_LE, i, Bf16.fromFloat(v));
                    case F16 -> host.setAtIndex(SHORT_LE, i, Fp16.fromFloat(v));
                    case F8_E4M3 -> host.set(ValueLayout.JAVA_BYTE, i, Fp8.e4m3FromFloat(v));
                    case F8_E5M2 -> host.set(ValueLayout.JAVA_BYTE, i, Fp8.e5m2FromFloat(v));
                    default -> throw new UnsupportedOperationException("fromFloats (cuda): dtype " + dtype
                            + " is not a float type; supported: F32, BF16, F16, F8_E4M3, F8_E5M2");
                }
            }
            CudaTensor t = allocateUninitialized(dtype, shape);
            upload(t, host);
            return t;
        }
    }

    @Override
    public CudaTensor fromBytes(DType dtype, Shape shape, MemorySegment bytes) {
        if (!dtype.isFloatingPoint() || dtype == DType.F64) {
            throw new UnsupportedOperationException("fromBytes (cuda): dtype " + dtype
                    + " not stored; supported: F32, BF16, F16, F8_E4M3, F8_E5M2");
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

    /** Synchronous host→device copy of a native segment into t (t.sizeBytes() bytes). */
    private void upload(CudaTensor t, MemorySegment host) {
        context.makeCurrent();
        CudaException.check(cuMemcpyHtoD(t.pointer(), new NativeHandles.HostPointer(host.address()), t.sizeBytes()),
                "cuMemcpyHtoD", "uploading " + t);
    }

    @Override
    public float[] toFloats(Tensor tensor) {
        CudaTensor t = cuda(tensor, "toFloats");
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
        CudaTensor d = cuda(dst, "copy"), s = cuda(src, "copy");
        if (d.numElements() != s.numElements()) {
            throw new IllegalArgumentException("copy: element counts differ; got dst=" + d.shape() + " src=" + s.shape()
                    + ", expected equal element counts");
        }
        if (d.dtype() == s.dtype()) {
            context.makeCurrent();
            CudaException.check(cuMemcpyDtoDAsync(d.pointer(), s.pointer(), d.sizeBytes(), context.computeStream()),
                    "cuMemcpyDtoDAsync", "copy " + s + " -> " + d);
            return;
        }
        throw new UnsupportedOperationException("copy (cuda): dtype conversion not landed yet");
    }

    @Override
    public void fill(Tensor tensor, float value) {
        CudaTensor t = cuda(tensor, "fill");
        context.makeCurrent();
        long n = t.numElements();
        int r = switch (t.dtype()) {
            case F32 -> cuMemsetD32Async(t.pointer(), Float.floatToRawIntBits(value), n, context.computeStream());
            case BF16 -> cuMemsetD16Async(t.pointer(), Bf16.fromFloat(value), n, context.computeStream());
            case F16 -> cuMemsetD16Async(t.pointer(), Fp16.fromFloat(value), n, context.computeStream());
            default -> throw new UnsupportedOperationException("fill (cuda): dtype " + t.dtype()
                    + " not supported; supported: F32, BF16, F16");
        };
        CudaException.check(r, "cuMemsetAsync", "fill " + t);
    }

    @Override
    public void synchronize() { context.synchronize(); }

    // ---------------------------------------------------------------- GEMM

    @Override
    public void gemm(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta, Tensor bias) {
        throw notLanded("gemm");
    }

    @Override
    public void dequantizeFp8(Tensor out, Tensor wq, Tensor scale) { throw notLanded("dequantizeFp8"); }

    // ---------------------------------------------------------------- norms

    @Override
    public void layerNorm(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias, float eps) {
        throw notLanded("layerNorm");
    }

    @Override
    public void layerNormBackward(Tensor dx, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor x, Tensor weight,
                                  Tensor mean, Tensor rstd, boolean accumulate) {
        throw notLanded("layerNormBackward");
    }

    @Override
    public void rmsNorm(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) { throw notLanded("rmsNorm"); }

    @Override
    public void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dOut, Tensor x, Tensor weight, Tensor rstd) {
        throw notLanded("rmsNormBackward");
    }

    // ---------------------------------------------------------------- modulation

    @Override
    public void modulate(Tensor out, Tensor x, Tensor mod, int shiftIndex, int scaleIndex) { throw notLanded("modulate"); }

    @Override
    public void modulateBackward(Tensor dx, Tensor dOut, Tensor mod, int scaleIndex) { throw notLanded("modulateBackward"); }

    @Override
    public void gatedResidual(Tensor x, Tensor y, Tensor mod, int gateIndex) { throw notLanded("gatedResidual"); }

    @Override
    public void gatedResidualBackward(Tensor dy, Tensor dx, Tensor mod, int gateIndex) {
        throw notLanded("gatedResidualBackward");
    }

    // ---------------------------------------------------------------- RoPE and attention

    @Override
    public void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int numHeads) { throw notLanded("rope"); }

    @Override
    public void ropeBackward(Tensor dx, Tensor dOut, Tensor cos, Tensor sin, int numHeads) { throw notLanded("ropeBackward"); }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int numHeads) {
        attention.forward(cuda(out, "attention"), cuda(lse, "attention"), cuda(q, "attention"), cuda(k, "attention"),
                cuda(v, "attention"), numHeads);
    }

    @Override
    public void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out,
                                  Tensor lse, int numHeads) {
        String op = "attentionBackward";
        attention.backward(cuda(dq, op), cuda(dk, op), cuda(dv, op), cuda(dOut, op), cuda(q, op), cuda(k, op), cuda(v, op),
                cuda(out, op), cuda(lse, op), numHeads);
    }

    // ---------------------------------------------------------------- activations and elementwise

    @Override
    public void geluTanh(Tensor out, Tensor x) { throw notLanded("geluTanh"); }

    @Override
    public void geluTanhBackward(Tensor dx, Tensor dOut, Tensor x) { throw notLanded("geluTanhBackward"); }

    @Override
    public void silu(Tensor out, Tensor x) { throw notLanded("silu"); }

    @Override
    public void add(Tensor out, Tensor a, Tensor b) { throw notLanded("add"); }

    @Override
    public void addRowVector(Tensor out, Tensor x, Tensor v) { throw notLanded("addRowVector"); }

    @Override
    public void scale(Tensor out, Tensor x, float alpha) { throw notLanded("scale"); }

    // ---------------------------------------------------------------- layout and embeddings

    @Override
    public void patchify(Tensor out, Tensor latents, int channels, int frames, int height, int width) {
        throw notLanded("patchify");
    }

    @Override
    public void unpatchify(Tensor out, Tensor tokens, int channels, int frames, int height, int width) {
        throw notLanded("unpatchify");
    }

    @Override
    public void unpatchifyBackward(Tensor dTokens, Tensor dOut, int channels, int frames, int height, int width) {
        throw notLanded("unpatchifyBackward");
    }

    @Override
    public void sinusoidalEmbedding(Tensor out, Tensor timesteps) { throw notLanded("sinusoidalEmbedding"); }

    // ---------------------------------------------------------------- flow matching and loss

    @Override
    public void gaussianNoise(Tensor out, long seed, long offset) { throw notLanded("gaussianNoise"); }

    @Override
    public void flowMatchingInput(Tensor xt, Tensor target, Tensor x0, Tensor noise, Tensor t) {
        throw notLanded("flowMatchingInput");
    }

    @Override
    public void mseLoss(Tensor loss, Tensor dPred, Tensor pred, Tensor target, float gradScale) { throw notLanded("mseLoss"); }

    // ---------------------------------------------------------------- optimizer

    @Override
    public void sumOfSquares(Tensor normSquared, Tensor g) { throw notLanded("sumOfSquares"); }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, AdamWStep hyper) {
        throw notLanded("adamw");
    }

    @Override
    public void adamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes, Tensor vAbsMax,
                          Tensor gradScale, AdamWStep hyper) {
        throw notLanded("adamw8bit");
    }

    @Override
    public void clipCoefficient(Tensor clip, Tensor normSquared, float maxNorm) { throw notLanded("clipCoefficient"); }

    // ---------------------------------------------------------------- plumbing

    private static UnsupportedOperationException notLanded(String op) {
        return new UnsupportedOperationException(op + " (cuda): not landed yet");
    }

    /** t as a CudaTensor of this backend, or IllegalArgumentException naming the op. */
    CudaTensor cuda(Tensor t, String op) {
        if (t instanceof CudaTensor c && c.cudaBackend() == this) return c;
        throw new IllegalArgumentException(op + ": tensor is not on this CUDA backend; got "
                + (t == null ? "null" : t.getClass().getSimpleName() + " of " + t.backend().name()) + ", expected a tensor of " + name());
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        attention.close();
        kernels.close();
        context.close();
    }
}
