package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.AliasChecks;
import dev.wanlora.engine.backend.CheckedBackend;
import dev.wanlora.engine.backend.HostTimeline;
import dev.wanlora.engine.backend.Backend;
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
import dev.wanlora.engine.numeric.Fp8BlockQuantizer;
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
 * nothing: each tensor owns its storage. Argument checks run in {@link CheckedBackend}; the {@code run<Op>} hooks
 * here get checked CpuTensors and call the op's reference in its family class (CpuNorm, CpuAttention, …).
 */
public final class CpuBackend extends CheckedBackend<CpuTensor> {

    public CpuBackend() {
        super(new AliasChecks<>("cpu", CpuTensor::overlaps, CpuTensor::isSameRange, (name, t) -> t.toString()));
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

    // ---------------------------------------------------------------- GEMM

    @Override
    protected void runGemm(CpuTensor c, CpuTensor a, boolean transA, CpuTensor b, boolean transB, float alpha,
                           float beta, CpuTensor bias, GemmDims dims) {
        CpuGemm.gemm(c, a, transA, b, transB, alpha, beta, bias, dims);
    }

    @Override
    protected void runDequantizeFp8(CpuTensor out, CpuTensor wq, CpuTensor scale, MatrixDims dims) {
        CpuGemm.dequantizeFp8(out, wq, scale, dims);
    }

    /** The reference: {@link Fp8BlockQuantizer} on the weight's (exact) values, one call per tensor. */
    @Override
    protected void runQuantizeFp8(CpuTensor cc, CpuTensor cs, CpuTensor cw, MatrixDims dims) {
        Fp8BlockQuantizer.Result q = Fp8BlockQuantizer.quantize(toFloats(cw), cw.shape(), cw.dtype());
        byte[] codeBytes = q.codes();
        for (int i = 0; i < codeBytes.length; i++) cc.store(i, Fp8.e4m3ToFloat(codeBytes[i]));
        float[] scales = q.scales();
        for (int i = 0; i < scales.length; i++) cs.store(i, scales[i]);
    }

    // ---------------------------------------------------------------- norms

    @Override
    protected void runLayerNorm(CpuTensor out, CpuTensor mean, CpuTensor rstd, CpuTensor x, CpuTensor weight,
                                CpuTensor bias, float eps, MatrixDims dims) {
        CpuNorm.layerNorm(out, mean, rstd, x, weight, bias, eps, dims);
    }

    @Override
    protected void runLayerNormBackward(CpuTensor dx, CpuTensor dWeight, CpuTensor dBias, CpuTensor dOut, CpuTensor x,
                                        CpuTensor weight, CpuTensor mean, CpuTensor rstd, boolean accumulate,
                                        MatrixDims dims) {
        CpuNorm.layerNormBackward(dx, dWeight, dBias, dOut, x, weight, mean, rstd, accumulate, dims);
    }

    @Override
    protected void runRmsNorm(CpuTensor out, CpuTensor rstd, CpuTensor x, CpuTensor weight, float eps, MatrixDims dims) {
        CpuNorm.rmsNorm(out, rstd, x, weight, eps, dims);
    }

    @Override
    protected void runRmsNormBackward(CpuTensor dx, CpuTensor dWeight, CpuTensor dOut, CpuTensor x, CpuTensor weight,
                                      CpuTensor rstd, MatrixDims dims) {
        CpuNorm.rmsNormBackward(dx, dWeight, dOut, x, weight, rstd, dims);
    }

    // ---------------------------------------------------------------- adaLN modulation

    @Override
    protected void runModulate(CpuTensor out, CpuTensor x, CpuTensor mod, int shiftIndex, int scaleIndex,
                               TokenDims dims) {
        CpuModulation.modulate(out, x, mod, shiftIndex, scaleIndex, dims);
    }

    @Override
    protected void runModulateBackward(CpuTensor dx, CpuTensor dOut, CpuTensor mod, int scaleIndex, TokenDims dims) {
        CpuModulation.modulateBackward(dx, dOut, mod, scaleIndex, dims);
    }

    @Override
    protected void runGatedResidual(CpuTensor x, CpuTensor y, CpuTensor mod, int gateIndex, TokenDims dims) {
        CpuModulation.gatedResidual(x, y, mod, gateIndex, dims);
    }

    @Override
    protected void runGatedResidualBackward(CpuTensor dy, CpuTensor dx, CpuTensor mod, int gateIndex, TokenDims dims) {
        CpuModulation.gatedResidualBackward(dy, dx, mod, gateIndex, dims);
    }

    // ---------------------------------------------------------------- RoPE and attention

    @Override
    protected void runRope(CpuTensor out, CpuTensor x, CpuTensor cos, CpuTensor sin, AttentionDims dims) {
        CpuAttention.rope(out, x, cos, sin, false, dims);
    }

    @Override
    protected void runRopeBackward(CpuTensor dx, CpuTensor dOut, CpuTensor cos, CpuTensor sin, AttentionDims dims) {
        CpuAttention.rope(dx, dOut, cos, sin, true, dims);
    }

    @Override
    protected void runAttention(CpuTensor out, CpuTensor lse, CpuTensor q, CpuTensor k, CpuTensor v,
                                AttentionDims dims) {
        CpuAttention.attention(out, lse, q, k, v, dims);
    }

    @Override
    protected void runAttentionBackward(CpuTensor dq, CpuTensor dk, CpuTensor dv, CpuTensor dOut, CpuTensor q,
                                        CpuTensor k, CpuTensor v, CpuTensor out, CpuTensor lse, AttentionDims dims) {
        CpuAttention.attentionBackward(dq, dk, dv, dOut, q, k, v, lse, dims);
    }

    // ---------------------------------------------------------------- activations and elementwise

    @Override
    protected void runGeluTanh(CpuTensor out, CpuTensor x) { CpuElementwise.geluTanh(out, x); }

    @Override
    protected void runGeluTanhBackward(CpuTensor dx, CpuTensor dOut, CpuTensor x) {
        CpuElementwise.geluTanhBackward(dx, dOut, x);
    }

    @Override
    protected void runSilu(CpuTensor out, CpuTensor x) { CpuElementwise.silu(out, x); }

    @Override
    protected void runAdd(CpuTensor out, CpuTensor a, CpuTensor b) { CpuElementwise.add(out, a, b); }

    @Override
    protected void runAddRowVector(CpuTensor out, CpuTensor x, CpuTensor v, MatrixDims dims) {
        CpuElementwise.addRowVector(out, x, v, dims);
    }

    @Override
    protected void runScale(CpuTensor out, CpuTensor x, float alpha) { CpuElementwise.scale(out, x, alpha); }

    // ---------------------------------------------------------------- layout and embeddings

    @Override
    protected void runPatchify(CpuTensor out, CpuTensor latents, PatchDims dims) {
        CpuLayout.patchify(out, latents, dims);
    }

    @Override
    protected void runUnpatchify(CpuTensor out, CpuTensor tokens, PatchDims dims) {
        CpuLayout.unpatchify(out, tokens, true, dims);
    }

    @Override
    protected void runUnpatchifyBackward(CpuTensor dTokens, CpuTensor dOut, PatchDims dims) {
        CpuLayout.unpatchify(dOut, dTokens, false, dims);
    }

    @Override
    protected void runSinusoidalEmbedding(CpuTensor out, CpuTensor timesteps, MatrixDims dims) {
        CpuLayout.sinusoidalEmbedding(out, timesteps, dims);
    }

    // ---------------------------------------------------------------- text encoder (umT5)

    @Override
    protected void runEmbedding(CpuTensor out, CpuTensor table, CpuTensor ids, MatrixDims dims) {
        CpuEmbedding.embedding(out, table, ids, dims);
    }

    @Override
    protected void runRelativePositionBias(CpuTensor out, CpuTensor table, CpuTensor buckets, AttentionDims dims) {
        CpuEmbedding.relativePositionBias(out, table, buckets, dims);
    }

    @Override
    protected void runAttentionWithBias(CpuTensor out, CpuTensor q, CpuTensor k, CpuTensor v, CpuTensor bias,
                                        CpuTensor keyMask, AttentionDims dims) {
        CpuAttention.attentionWithBias(out, q, k, v, bias, keyMask, dims);
    }

    @Override
    protected void runGatedGelu(CpuTensor out, CpuTensor gate, CpuTensor x) { CpuElementwise.gatedGelu(out, gate, x); }

    // ---------------------------------------------------------------- video convolution (the Wan VAE)

    @Override
    protected void runConv3d(CpuTensor out, CpuTensor cache, CpuTensor x, CpuTensor weight, CpuTensor bias,
                             ConvDims dims) {
        CpuVideo.conv3d(out, cache, x, weight, bias, dims);
    }

    @Override
    protected void runUpsampleNearest2x(CpuTensor out, CpuTensor x, ConvDims dims) {
        CpuVideo.upsampleNearest2x(out, x, dims);
    }

    @Override
    protected void runSoftmax(CpuTensor out, CpuTensor x, float scale, MatrixDims dims) {
        CpuVideo.softmax(out, x, scale, dims);
    }

    // ---------------------------------------------------------------- flow matching and loss

    @Override
    protected void runGaussianNoise(CpuTensor out, long seed, long offset) { CpuFlow.gaussianNoise(out, seed, offset); }

    @Override
    protected void runFlowMatchingInput(CpuTensor xt, CpuTensor target, CpuTensor x0, CpuTensor noise, CpuTensor t,
                                        MatrixDims dims) {
        CpuFlow.flowMatchingInput(xt, target, x0, noise, t, dims);
    }

    @Override
    protected void runMseLoss(CpuTensor loss, CpuTensor dPred, CpuTensor pred, CpuTensor target, float gradScale,
                              long n) {
        CpuFlow.mseLoss(loss, dPred, pred, target, gradScale, n);
    }

    // ---------------------------------------------------------------- optimizer

    @Override
    protected void runSumOfSquares(CpuTensor normSquared, CpuTensor g) { CpuOptim.sumOfSquares(normSquared, g); }

    @Override
    protected void runAdamw(CpuTensor param, CpuTensor grad, CpuTensor m, CpuTensor v, CpuTensor gradScale,
                            AdamWStep hyper) {
        CpuOptim.adamw(param, grad, m, v, gradScale, hyper);
    }

    @Override
    protected void runAdamw8bit(CpuTensor param, CpuTensor grad, CpuTensor mCodes, CpuTensor mAbsMax, CpuTensor vCodes,
                                CpuTensor vAbsMax, CpuTensor gradScale, AdamWStep hyper) {
        CpuAdamW8bit.step(param, grad, mCodes, mAbsMax, vCodes, vAbsMax, gradScale, hyper);
    }

    @Override
    protected void runProdigyAccumulate(CpuTensor param, CpuTensor grad, CpuTensor p0, CpuTensor m, CpuTensor v,
                                        CpuTensor s, CpuTensor gradScale, CpuTensor state, ProdigyStep hyper) {
        CpuProdigy.accumulate(param, grad, p0, m, v, s, gradScale, state, hyper);
    }

    @Override
    protected void runProdigyAdapt(CpuTensor state, ProdigyStep hyper) { CpuProdigy.adapt(state, hyper); }

    @Override
    protected void runProdigyUpdate(CpuTensor param, CpuTensor grad, CpuTensor m, CpuTensor v, CpuTensor gradScale,
                                    CpuTensor state, ProdigyStep hyper) {
        CpuProdigy.update(param, grad, m, v, gradScale, state, hyper);
    }

    @Override
    protected void runAdafactor(CpuTensor param, CpuTensor grad, CpuTensor m, CpuTensor row, CpuTensor col, CpuTensor v,
                                CpuTensor gradScale, AdafactorStep hyper) {
        CpuAdafactor.step(param, grad, m, row, col, v, gradScale, hyper);
    }

    @Override
    protected void runClipCoefficient(CpuTensor clip, CpuTensor normSquared, float maxNorm) {
        CpuOptim.clipCoefficient(clip, normSquared, maxNorm);
    }

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
