package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.AliasChecks;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.backend.OpChecks;
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
 * nothing: each tensor owns its storage.
 */
public final class CpuBackend implements Backend {
    private static final AliasChecks<CpuTensor> ALIAS =
            new AliasChecks<>("cpu", CpuTensor::overlaps, CpuTensor::isSameRange, (name, t) -> t.toString());

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
    public void write(Tensor dst, float[] values) {
        CpuTensor t = cpu("write", "dst", dst);
        if (values.length != t.numElements()) {
            throw new IllegalArgumentException("write: value count does not match the tensor; got " + values.length
                    + " values for " + t.shape() + ", expected " + t.numElements());
        }
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
    public void writeBytes(Tensor dst, ByteSource bytes) {
        CpuTensor t = cpu("writeBytes", "dst", dst);
        long expected = Math.multiplyExact(t.numElements(), t.dtype().sizeBytes());
        if (bytes.byteSize() != expected) {
            throw new IllegalArgumentException("writeBytes: byte count does not match the tensor; got " + bytes.byteSize()
                    + " bytes from " + bytes.describe() + " for " + t.shape() + " " + t.dtype() + ", expected " + expected);
        }
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
    public float[] toFloats(Tensor t) {
        CpuTensor c = cpu("toFloats", "t", t);
        return Arrays.copyOfRange(c.data(), c.offset(), c.offset() + c.size());
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        OpChecks.copy(dst, src);
        CpuTensor d = cpu("copy", "dst", dst), s = cpu("copy", "src", src);
        ALIAS.sameOrDisjoint("copy", "dst", d, "src", s);
        CpuRows.forEachChunk(s.size(), (from, to) -> {
            for (int i = from; i < to; i++) d.store(i, s.get(i));
        });
    }

    @Override
    public void fill(Tensor t, float value) {
        CpuTensor c = cpu("fill", "t", t);
        float v = CpuTensor.round(c.dtype(), value);
        Arrays.fill(c.data(), c.offset(), c.offset() + c.size(), v);
    }

    @Override
    public void synchronize() {}

    // ---------------------------------------------------------------- GEMM

    @Override
    public void gemm(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta,
                     Tensor bias) {
        var dims = OpChecks.gemm(c, a, transA, b, transB, bias);
        CpuTensor cc = cpu("gemm", "c", c);
        CpuTensor ca = cpu("gemm", "a", a), cb = cpu("gemm", "b", b), cbias = cpu("gemm", "bias", bias);
        ALIAS.disjoint("gemm", "c", cc, "a", ca);
        ALIAS.disjoint("gemm", "c", cc, "b", cb);
        ALIAS.disjoint("gemm", "c", cc, "bias", cbias);
        CpuGemm.gemm(cc, ca, transA, cb, transB, alpha, beta, cbias, dims);
    }

    @Override
    public void dequantizeFp8(Tensor out, Tensor wq, Tensor scale) {
        var dims = OpChecks.dequantizeFp8(out, wq, scale);
        CpuTensor co = cpu("dequantizeFp8", "out", out);
        CpuTensor cw = cpu("dequantizeFp8", "wq", wq), cs = cpu("dequantizeFp8", "scale", scale);
        ALIAS.disjoint("dequantizeFp8", "out", co, "wq", cw);
        ALIAS.disjoint("dequantizeFp8", "out", co, "scale", cs);
        CpuGemm.dequantizeFp8(co, cw, cs, dims);
    }

    /** The reference: {@link Fp8BlockQuantizer} on the weight's (exact) values, one call per tensor. */
    @Override
    public void quantizeFp8(Tensor codes, Tensor scale, Tensor w) {
        String op = "quantizeFp8";
        OpChecks.quantizeFp8(codes, scale, w);
        CpuTensor cc = cpu(op, "codes", codes), cs = cpu(op, "scale", scale), cw = cpu(op, "w", w);
        ALIAS.disjoint(op, "codes", cc, "w", cw);
        ALIAS.disjoint(op, "scale", cs, "w", cw);
        ALIAS.disjoint(op, "codes", cc, "scale", cs);
        Fp8BlockQuantizer.Result q = Fp8BlockQuantizer.quantize(toFloats(cw), w.shape(), w.dtype());
        byte[] codeBytes = q.codes();
        for (int i = 0; i < codeBytes.length; i++) cc.store(i, Fp8.e4m3ToFloat(codeBytes[i]));
        float[] scales = q.scales();
        for (int i = 0; i < scales.length; i++) cs.store(i, scales[i]);
    }

    // ---------------------------------------------------------------- norms

    @Override
    public void layerNorm(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias, float eps) {
        String op = "layerNorm";
        var dims = OpChecks.layerNorm(out, mean, rstd, x, weight, bias);
        CpuTensor co = cpu(op, "out", out), cm = cpu(op, "mean", mean), cr = cpu(op, "rstd", rstd);
        CpuTensor cx = cpu(op, "x", x), cw = cpu(op, "weight", weight), cb = cpu(op, "bias", bias);
        ALIAS.outputs(op, new String[] {"out", "mean", "rstd"}, new CpuTensor[] {co, cm, cr},
                new String[] {"x", "weight", "bias"}, new CpuTensor[] {cx, cw, cb});
        CpuNorm.layerNorm(co, cm, cr, cx, cw, cb, eps, dims);
    }

    @Override
    public void layerNormBackward(Tensor dx, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor x, Tensor weight,
                                  Tensor mean, Tensor rstd, boolean accumulate) {
        String op = "layerNormBackward";
        var dims = OpChecks.layerNormBackward(dx, dWeight, dBias, dOut, x, weight, mean, rstd);
        CpuTensor cdx = cpu(op, "dx", dx), cdw = cpu(op, "dWeight", dWeight), cdb = cpu(op, "dBias", dBias);
        CpuTensor cdo = cpu(op, "dOut", dOut), cx = cpu(op, "x", x), cw = cpu(op, "weight", weight);
        CpuTensor cm = cpu(op, "mean", mean), cr = cpu(op, "rstd", rstd);
        ALIAS.outputs(op, new String[] {"dx", "dWeight", "dBias"}, new CpuTensor[] {cdx, cdw, cdb},
                new String[] {"dOut", "x", "weight", "mean", "rstd"}, new CpuTensor[] {cdo, cx, cw, cm, cr});
        CpuNorm.layerNormBackward(cdx, cdw, cdb, cdo, cx, cw, cm, cr, accumulate, dims);
    }

    @Override
    public void rmsNorm(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
        String op = "rmsNorm";
        var dims = OpChecks.rmsNorm(out, rstd, x, weight);
        CpuTensor co = cpu(op, "out", out), cr = cpu(op, "rstd", rstd);
        CpuTensor cx = cpu(op, "x", x), cw = cpu(op, "weight", weight);
        ALIAS.outputs(op, new String[] {"out", "rstd"}, new CpuTensor[] {co, cr},
                new String[] {"x", "weight"}, new CpuTensor[] {cx, cw});
        CpuNorm.rmsNorm(co, cr, cx, cw, eps, dims);
    }

    @Override
    public void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dOut, Tensor x, Tensor weight, Tensor rstd) {
        String op = "rmsNormBackward";
        var dims = OpChecks.rmsNormBackward(dx, dWeight, dOut, x, weight, rstd);
        CpuTensor cdx = cpu(op, "dx", dx), cdw = cpu(op, "dWeight", dWeight);
        CpuTensor cdo = cpu(op, "dOut", dOut), cx = cpu(op, "x", x), cw = cpu(op, "weight", weight);
        CpuTensor cr = cpu(op, "rstd", rstd);
        ALIAS.outputs(op, new String[] {"dx", "dWeight"}, new CpuTensor[] {cdx, cdw},
                new String[] {"dOut", "x", "weight", "rstd"}, new CpuTensor[] {cdo, cx, cw, cr});
        CpuNorm.rmsNormBackward(cdx, cdw, cdo, cx, cw, cr, dims);
    }

    // ---------------------------------------------------------------- adaLN modulation

    @Override
    public void modulate(Tensor out, Tensor x, Tensor mod, int shiftIndex, int scaleIndex) {
        var dims = OpChecks.modulate(out, x, mod, shiftIndex, scaleIndex);
        CpuTensor co = cpu("modulate", "out", out), cx = cpu("modulate", "x", x), cm = cpu("modulate", "mod", mod);
        ALIAS.sameOrDisjoint("modulate", "out", co, "x", cx);
        ALIAS.disjoint("modulate", "out", co, "mod", cm);
        CpuModulation.modulate(co, cx, cm, shiftIndex, scaleIndex, dims);
    }

    @Override
    public void modulateBackward(Tensor dx, Tensor dOut, Tensor mod, int scaleIndex) {
        String op = "modulateBackward";
        var dims = OpChecks.modulateBackward(dx, dOut, mod, scaleIndex);
        CpuTensor cdx = cpu(op, "dx", dx), cdo = cpu(op, "dOut", dOut), cm = cpu(op, "mod", mod);
        ALIAS.sameOrDisjoint(op, "dx", cdx, "dOut", cdo);
        ALIAS.disjoint(op, "dx", cdx, "mod", cm);
        CpuModulation.modulateBackward(cdx, cdo, cm, scaleIndex, dims);
    }

    @Override
    public void gatedResidual(Tensor x, Tensor y, Tensor mod, int gateIndex) {
        String op = "gatedResidual";
        var dims = OpChecks.gatedResidual(op, "x", x, "y", y, mod, gateIndex);
        CpuTensor cx = cpu(op, "x", x), cy = cpu(op, "y", y), cm = gateIndex < 0 ? null : cpu(op, "mod", mod);
        ALIAS.disjoint(op, "x", cx, "y", cy);
        ALIAS.disjoint(op, "x", cx, "mod", cm);
        CpuModulation.gatedResidual(cx, cy, cm, gateIndex, dims);
    }

    @Override
    public void gatedResidualBackward(Tensor dy, Tensor dx, Tensor mod, int gateIndex) {
        String op = "gatedResidualBackward";
        var dims = OpChecks.gatedResidual(op, "dx", dx, "dy", dy, mod, gateIndex);
        CpuTensor cdy = cpu(op, "dy", dy), cdx = cpu(op, "dx", dx);
        CpuTensor cm = gateIndex < 0 ? null : cpu(op, "mod", mod);
        ALIAS.sameOrDisjoint(op, "dy", cdy, "dx", cdx);
        ALIAS.disjoint(op, "dy", cdy, "mod", cm);
        CpuModulation.gatedResidualBackward(cdy, cdx, cm, gateIndex, dims);
    }

    // ---------------------------------------------------------------- RoPE and attention

    @Override
    public void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int numHeads) {
        String op = "rope";
        var dims = OpChecks.rope(op, out, "out", x, "x", cos, sin, numHeads);
        CpuTensor co = cpu(op, "out", out), cx = cpu(op, "x", x);
        CpuTensor cc = cpu(op, "cos", cos), cs = cpu(op, "sin", sin);
        ALIAS.sameOrDisjoint(op, "out", co, "x", cx);
        ALIAS.disjoint(op, "out", co, "cos", cc);
        ALIAS.disjoint(op, "out", co, "sin", cs);
        CpuAttention.rope(co, cx, cc, cs, false, dims);
    }

    @Override
    public void ropeBackward(Tensor dx, Tensor dOut, Tensor cos, Tensor sin, int numHeads) {
        String op = "ropeBackward";
        var dims = OpChecks.rope(op, dx, "dx", dOut, "dOut", cos, sin, numHeads);
        CpuTensor cdx = cpu(op, "dx", dx), cdo = cpu(op, "dOut", dOut);
        CpuTensor cc = cpu(op, "cos", cos), cs = cpu(op, "sin", sin);
        ALIAS.sameOrDisjoint(op, "dx", cdx, "dOut", cdo);
        ALIAS.disjoint(op, "dx", cdx, "cos", cc);
        ALIAS.disjoint(op, "dx", cdx, "sin", cs);
        CpuAttention.rope(cdx, cdo, cc, cs, true, dims);
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int numHeads) {
        String op = "attention";
        var dims = OpChecks.attention(out, lse, q, k, v, numHeads);
        CpuTensor co = cpu(op, "out", out), cl = cpu(op, "lse", lse);
        CpuTensor cq = cpu(op, "q", q), ck = cpu(op, "k", k), cv = cpu(op, "v", v);
        ALIAS.outputs(op, new String[] {"out", "lse"}, new CpuTensor[] {co, cl},
                new String[] {"q", "k", "v"}, new CpuTensor[] {cq, ck, cv});
        CpuAttention.attention(co, cl, cq, ck, cv, dims);
    }

    @Override
    public void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v,
                                  Tensor out, Tensor lse, int numHeads) {
        String op = "attentionBackward";
        var dims = OpChecks.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, numHeads);
        CpuTensor cdq = cpu(op, "dq", dq), cdk = cpu(op, "dk", dk), cdv = cpu(op, "dv", dv);
        CpuTensor cdo = cpu(op, "dOut", dOut), cq = cpu(op, "q", q), ck = cpu(op, "k", k), cv = cpu(op, "v", v);
        CpuTensor co = cpu(op, "out", out), cl = cpu(op, "lse", lse);
        ALIAS.outputs(op, new String[] {"dq", "dk", "dv"}, new CpuTensor[] {cdq, cdk, cdv},
                new String[] {"dOut", "q", "k", "v", "out", "lse"}, new CpuTensor[] {cdo, cq, ck, cv, co, cl});
        CpuAttention.attentionBackward(cdq, cdk, cdv, cdo, cq, ck, cv, cl, dims);
    }

    // ---------------------------------------------------------------- activations and elementwise

    @Override
    public void embedding(Tensor out, Tensor table, Tensor ids) {
        String op = "embedding";
        var dims = OpChecks.embedding(out, table, ids);
        CpuTensor co = cpu(op, "out", out), ct = cpu(op, "table", table), ci = cpu(op, "ids", ids);
        ALIAS.outputs(op, new String[] {"out"}, new CpuTensor[] {co}, new String[] {"table", "ids"}, new CpuTensor[] {ct, ci});
        CpuEmbedding.embedding(co, ct, ci, dims);
    }

    @Override
    public void relativePositionBias(Tensor out, Tensor table, Tensor buckets) {
        String op = "relativePositionBias";
        var dims = OpChecks.relativePositionBias(out, table, buckets);
        CpuTensor co = cpu(op, "out", out), ct = cpu(op, "table", table), cb = cpu(op, "buckets", buckets);
        ALIAS.outputs(op, new String[] {"out"}, new CpuTensor[] {co}, new String[] {"table", "buckets"}, new CpuTensor[] {ct, cb});
        CpuEmbedding.relativePositionBias(co, ct, cb, dims);
    }

    @Override
    public void attentionWithBias(Tensor out, Tensor q, Tensor k, Tensor v, Tensor bias, Tensor keyMask, int numHeads) {
        String op = "attentionWithBias";
        var dims = OpChecks.attentionWithBias(out, q, k, v, bias, keyMask, numHeads);
        CpuTensor co = cpu(op, "out", out), cq = cpu(op, "q", q), ck = cpu(op, "k", k), cv = cpu(op, "v", v);
        CpuTensor cb = cpu(op, "bias", bias), cm = cpu(op, "keyMask", keyMask);
        ALIAS.outputs(op, new String[] {"out"}, new CpuTensor[] {co}, new String[] {"q", "k", "v", "bias", "keyMask"},
                new CpuTensor[] {cq, ck, cv, cb, cm});
        CpuAttention.attentionWithBias(co, cq, ck, cv, cb, cm, dims);
    }

    @Override
    public void gatedGelu(Tensor out, Tensor gate, Tensor x) {
        String op = "gatedGelu";
        OpChecks.sameCount(op, "out", out, "x", x);
        OpChecks.sameCount(op, "out", out, "gate", gate);
        CpuTensor co = cpu(op, "out", out), cg = cpu(op, "gate", gate), cx = cpu(op, "x", x);
        ALIAS.sameOrDisjoint(op, "out", co, "x", cx);
        ALIAS.sameOrDisjoint(op, "out", co, "gate", cg);
        CpuElementwise.gatedGelu(co, cg, cx);
    }

    @Override
    public void geluTanh(Tensor out, Tensor x) {
        OpChecks.sameCount("geluTanh", "out", out, "x", x);
        CpuTensor co = cpu("geluTanh", "out", out), cx = cpu("geluTanh", "x", x);
        ALIAS.sameOrDisjoint("geluTanh", "out", co, "x", cx);
        CpuElementwise.geluTanh(co, cx);
    }

    @Override
    public void geluTanhBackward(Tensor dx, Tensor dOut, Tensor x) {
        String op = "geluTanhBackward";
        OpChecks.sameCount(op, "dx", dx, "x", x);
        OpChecks.sameCount(op, "dOut", dOut, "x", x);
        CpuTensor cdx = cpu(op, "dx", dx), cdo = cpu(op, "dOut", dOut), cx = cpu(op, "x", x);
        ALIAS.sameOrDisjoint(op, "dx", cdx, "dOut", cdo);
        ALIAS.sameOrDisjoint(op, "dx", cdx, "x", cx);
        CpuElementwise.geluTanhBackward(cdx, cdo, cx);
    }

    @Override
    public void silu(Tensor out, Tensor x) {
        OpChecks.sameCount("silu", "out", out, "x", x);
        CpuTensor co = cpu("silu", "out", out), cx = cpu("silu", "x", x);
        ALIAS.sameOrDisjoint("silu", "out", co, "x", cx);
        CpuElementwise.silu(co, cx);
    }

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        OpChecks.sameCount("add", "out", out, "a", a);
        OpChecks.sameCount("add", "out", out, "b", b);
        CpuTensor co = cpu("add", "out", out), ca = cpu("add", "a", a), cb = cpu("add", "b", b);
        ALIAS.sameOrDisjoint("add", "out", co, "a", ca);
        ALIAS.sameOrDisjoint("add", "out", co, "b", cb);
        CpuElementwise.add(co, ca, cb);
    }

    @Override
    public void addRowVector(Tensor out, Tensor x, Tensor v) {
        var dims = OpChecks.addRowVector(out, x, v);
        CpuTensor co = cpu("addRowVector", "out", out), cx = cpu("addRowVector", "x", x);
        CpuTensor cv = cpu("addRowVector", "v", v);
        ALIAS.sameOrDisjoint("addRowVector", "out", co, "x", cx);
        ALIAS.disjoint("addRowVector", "out", co, "v", cv);
        CpuElementwise.addRowVector(co, cx, cv, dims);
    }

    @Override
    public void scale(Tensor out, Tensor x, float alpha) {
        OpChecks.sameCount("scale", "out", out, "x", x);
        CpuTensor co = cpu("scale", "out", out), cx = cpu("scale", "x", x);
        ALIAS.sameOrDisjoint("scale", "out", co, "x", cx);
        CpuElementwise.scale(co, cx, alpha);
    }

    // ---------------------------------------------------------------- layout and embeddings

    @Override
    public void patchify(Tensor out, Tensor latents, int channels, int frames, int height, int width) {
        var dims = OpChecks.patchify(out, latents, channels, frames, height, width);
        CpuTensor co = cpu("patchify", "out", out), cl = cpu("patchify", "latents", latents);
        ALIAS.disjoint("patchify", "out", co, "latents", cl);
        CpuLayout.patchify(co, cl, dims);
    }

    @Override
    public void unpatchify(Tensor out, Tensor tokens, int channels, int frames, int height, int width) {
        var dims = OpChecks.unpatchify("unpatchify", out, "out", tokens, "tokens", channels, frames, height, width);
        CpuTensor co = cpu("unpatchify", "out", out), ct = cpu("unpatchify", "tokens", tokens);
        ALIAS.disjoint("unpatchify", "out", co, "tokens", ct);
        CpuLayout.unpatchify(co, ct, true, dims);
    }

    @Override
    public void unpatchifyBackward(Tensor dTokens, Tensor dOut, int channels, int frames, int height, int width) {
        String op = "unpatchifyBackward";
        var dims = OpChecks.unpatchify(op, dOut, "dOut", dTokens, "dTokens", channels, frames, height, width);
        CpuTensor ct = cpu(op, "dTokens", dTokens), co = cpu(op, "dOut", dOut);
        ALIAS.disjoint(op, "dTokens", ct, "dOut", co);
        CpuLayout.unpatchify(co, ct, false, dims);
    }

    @Override
    public void sinusoidalEmbedding(Tensor out, Tensor timesteps) {
        var dims = OpChecks.sinusoidalEmbedding(out, timesteps);
        CpuTensor co = cpu("sinusoidalEmbedding", "out", out), ct = cpu("sinusoidalEmbedding", "timesteps", timesteps);
        ALIAS.disjoint("sinusoidalEmbedding", "out", co, "timesteps", ct);
        CpuLayout.sinusoidalEmbedding(co, ct, dims);
    }

    // ---------------------------------------------------------------- video convolution (the Wan VAE)

    @Override
    public void conv3d(Tensor out, Tensor cache, Tensor x, Tensor weight, Tensor bias, ConvGeometry geometry) {
        String op = "conv3d";
        var dims = OpChecks.conv3d(out, cache, x, weight, bias, geometry);
        CpuTensor co = cpu(op, "out", out), cc = cpu(op, "cache", cache), cx = cpu(op, "x", x);
        CpuTensor cw = cpu(op, "weight", weight), cb = cpu(op, "bias", bias);
        ALIAS.disjoint(op, "out", co, "cache", cc);
        ALIAS.disjoint(op, "out", co, "x", cx);
        ALIAS.disjoint(op, "out", co, "weight", cw);
        ALIAS.disjoint(op, "out", co, "bias", cb);
        CpuVideo.conv3d(co, cc, cx, cw, cb, dims);
    }

    @Override
    public void upsampleNearest2x(Tensor out, Tensor x) {
        var dims = OpChecks.upsampleNearest2x(out, x);
        CpuTensor co = cpu("upsampleNearest2x", "out", out), cx = cpu("upsampleNearest2x", "x", x);
        ALIAS.disjoint("upsampleNearest2x", "out", co, "x", cx);
        CpuVideo.upsampleNearest2x(co, cx, dims);
    }

    @Override
    public void softmax(Tensor out, Tensor x, float scale) {
        var dims = OpChecks.softmax(out, x);
        CpuTensor co = cpu("softmax", "out", out), cx = cpu("softmax", "x", x);
        ALIAS.sameOrDisjoint("softmax", "out", co, "x", cx);
        CpuVideo.softmax(co, cx, scale, dims);
    }

    // ---------------------------------------------------------------- flow matching and loss

    @Override
    public void gaussianNoise(Tensor out, long seed, long offset) {
        OpChecks.gaussianNoise(out);
        CpuFlow.gaussianNoise(cpu("gaussianNoise", "out", out), seed, offset);
    }

    @Override
    public void flowMatchingInput(Tensor xt, Tensor target, Tensor x0, Tensor noise, Tensor t) {
        String op = "flowMatchingInput";
        var dims = OpChecks.flowMatchingInput(xt, target, x0, noise, t);
        CpuTensor cxt = cpu(op, "xt", xt), ctg = cpu(op, "target", target);
        CpuTensor cx0 = cpu(op, "x0", x0), cn = cpu(op, "noise", noise), ct = cpu(op, "t", t);
        ALIAS.disjoint(op, "xt", cxt, "target", ctg);
        for (CpuTensor o : new CpuTensor[] {cxt, ctg}) {
            String name = o == cxt ? "xt" : "target";
            ALIAS.sameOrDisjoint(op, name, o, "x0", cx0);
            ALIAS.sameOrDisjoint(op, name, o, "noise", cn);
            ALIAS.disjoint(op, name, o, "t", ct);
        }
        CpuFlow.flowMatchingInput(cxt, ctg, cx0, cn, ct, dims);
    }

    @Override
    public void mseLoss(Tensor loss, Tensor dPred, Tensor pred, Tensor target, float gradScale) {
        String op = "mseLoss";
        long n = OpChecks.mseLoss(loss, dPred, pred, target);
        CpuTensor cl = cpu(op, "loss", loss), cd = cpu(op, "dPred", dPred);
        CpuTensor cp = cpu(op, "pred", pred), ct = cpu(op, "target", target);
        ALIAS.disjoint(op, "loss", cl, "dPred", cd);
        ALIAS.disjoint(op, "loss", cl, "pred", cp);
        ALIAS.disjoint(op, "loss", cl, "target", ct);
        ALIAS.sameOrDisjoint(op, "dPred", cd, "pred", cp);
        ALIAS.sameOrDisjoint(op, "dPred", cd, "target", ct);
        CpuFlow.mseLoss(cl, cd, cp, ct, gradScale, n);
    }

    // ---------------------------------------------------------------- optimizer

    @Override
    public void sumOfSquares(Tensor normSquared, Tensor g) {
        OpChecks.sumOfSquares(normSquared, g);
        CpuTensor cn = cpu("sumOfSquares", "normSquared", normSquared), cg = cpu("sumOfSquares", "g", g);
        ALIAS.disjoint("sumOfSquares", "normSquared", cn, "g", cg);
        CpuOptim.sumOfSquares(cn, cg);
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, AdamWStep hyper) {
        String op = "adamw";
        OpChecks.adamw(param, grad, m, v, gradScale, hyper);
        CpuTensor cp = cpu(op, "param", param), cg = cpu(op, "grad", grad);
        CpuTensor cm = cpu(op, "m", m), cv = cpu(op, "v", v), cs = cpu(op, "gradScale", gradScale);
        ALIAS.outputs(op, new String[] {"param", "m", "v"}, new CpuTensor[] {cp, cm, cv},
                new String[] {"grad", "gradScale"}, new CpuTensor[] {cg, cs});
        CpuOptim.adamw(cp, cg, cm, cv, cs, hyper);
    }

    @Override
    public void adamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes, Tensor vAbsMax,
                          Tensor gradScale, AdamWStep hyper) {
        String op = "adamw8bit";
        CpuAdamW8bit.step(cpu(op, "param", param), cpu(op, "grad", grad), cpu(op, "mCodes", mCodes),
                cpu(op, "mAbsMax", mAbsMax), cpu(op, "vCodes", vCodes), cpu(op, "vAbsMax", vAbsMax),
                cpu(op, "gradScale", gradScale), hyper);
    }

    @Override
    public void prodigyAccumulate(Tensor param, Tensor grad, Tensor p0, Tensor m, Tensor v, Tensor s, Tensor gradScale,
                                  Tensor state, ProdigyStep hyper) {
        String op = "prodigyAccumulate";
        OpChecks.prodigy(op, param, grad, p0, m, v, s, gradScale, state, hyper);
        CpuTensor cp = cpu(op, "param", param), cg = cpu(op, "grad", grad), c0 = cpu(op, "p0", p0);
        CpuTensor cm = cpu(op, "m", m), cv = cpu(op, "v", v), cs = cpu(op, "s", s);
        CpuTensor cscale = cpu(op, "gradScale", gradScale), cstate = cpu(op, "state", state);
        ALIAS.outputs(op, new String[] {"p0", "m", "v", "s", "state"}, new CpuTensor[] {c0, cm, cv, cs, cstate},
                new String[] {"param", "grad", "gradScale"}, new CpuTensor[] {cp, cg, cscale});
        CpuProdigy.accumulate(cp, cg, c0, cm, cv, cs, cscale, cstate, hyper);
    }

    @Override
    public void prodigyAdapt(Tensor state, ProdigyStep hyper) {
        OpChecks.prodigy("prodigyAdapt", null, null, null, null, null, null, null, state, hyper);
        CpuProdigy.adapt(cpu("prodigyAdapt", "state", state), hyper);
    }

    @Override
    public void prodigyUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, Tensor state,
                              ProdigyStep hyper) {
        String op = "prodigyUpdate";
        OpChecks.prodigy(op, param, grad, null, m, v, null, gradScale, state, hyper);
        CpuTensor cp = cpu(op, "param", param), cg = cpu(op, "grad", grad), cm = cpu(op, "m", m), cv = cpu(op, "v", v);
        CpuTensor cscale = cpu(op, "gradScale", gradScale), cstate = cpu(op, "state", state);
        ALIAS.outputs(op, new String[] {"param"}, new CpuTensor[] {cp},
                new String[] {"grad", "m", "v", "gradScale", "state"}, new CpuTensor[] {cg, cm, cv, cscale, cstate});
        CpuProdigy.update(cp, cg, cm, cv, cscale, cstate, hyper);
    }

    @Override
    public void adafactor(Tensor param, Tensor grad, Tensor m, Tensor row, Tensor col, Tensor v, Tensor gradScale,
                          AdafactorStep hyper) {
        String op = "adafactor";
        OpChecks.adafactor(param, grad, m, row, col, v, gradScale, hyper);
        CpuTensor cp = cpu(op, "param", param), cg = cpu(op, "grad", grad), cm = cpu(op, "m", m);
        CpuTensor cr = cpu(op, "row", row), cc = cpu(op, "col", col), cv = cpu(op, "v", v);
        CpuTensor cscale = cpu(op, "gradScale", gradScale);
        ALIAS.outputs(op, new String[] {"param", "m", "row", "col", "v"}, new CpuTensor[] {cp, cm, cr, cc, cv},
                new String[] {"grad", "gradScale"}, new CpuTensor[] {cg, cscale});
        CpuAdafactor.step(cp, cg, cm, cr, cc, cv, cscale, hyper);
    }

    @Override
    public void clipCoefficient(Tensor clip, Tensor normSquared, float maxNorm) {
        OpChecks.clipCoefficient(clip, normSquared);
        CpuTensor cc = cpu("clipCoefficient", "clip", clip), cn = cpu("clipCoefficient", "normSquared", normSquared);
        ALIAS.sameOrDisjoint("clipCoefficient", "clip", cc, "normSquared", cn);
        CpuOptim.clipCoefficient(cc, cn, maxNorm);
    }

    /** Tensors own their storage; there is nothing to release here. */
    @Override
    public void close() {}

    // ---------------------------------------------------------------- ownership and aliasing

    /** t as a CpuTensor (null stays null: optional arguments are checked by OpChecks). */
    private static CpuTensor cpu(String op, String name, Tensor t) {
        if (t == null || t instanceof CpuTensor) return (CpuTensor) t;
        throw new IllegalArgumentException(op + " (cpu): " + name + " belongs to another backend; got "
                + OpChecks.describe(name, t) + " on " + t.backend().name() + ", expected a tensor of backend cpu");
    }

}
