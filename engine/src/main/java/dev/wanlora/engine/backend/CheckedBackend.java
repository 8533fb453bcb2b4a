package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.backend.OpChecks.ConvDims;
import dev.wanlora.engine.backend.OpChecks.GemmDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.backend.OpChecks.PatchDims;
import dev.wanlora.engine.backend.OpChecks.TokenDims;
import dev.wanlora.engine.io.ByteSource;
import dev.wanlora.engine.tensor.Tensor;

/**
 * The one place every op's arguments are checked, for every backend: each {@link Backend} op here runs its
 * {@link OpChecks} (shapes, dtypes, indices: the same calls rejected with the same messages on every backend), then
 * takes each tensor as the backend's own type ({@link #own}: a tensor of another backend is rejected), then checks
 * aliasing with the backend's {@link AliasChecks} (where an output may be an input is in Backend's contracts), and
 * only then calls the backend's hook {@code run<Op>} with its own tensors and the dimensions the checks derived. A
 * hook therefore never repeats a check; it adds only what is specific to that backend (a CUDA kernel's supported
 * dtype combinations).
 *
 * <p>The ops are {@code final}: a backend cannot skip the checks. The cost on the hot path is what each backend paid
 * before when it ran the same checks itself (no reflection; one more call, which the JIT inlines).
 *
 * @param <T> the backend's tensor type (CpuTensor, CudaTensor)
 */
public abstract class CheckedBackend<T extends Tensor> implements Backend {
    private final AliasChecks<T> alias;

    /** {@code alias}: how the backend's tensors address storage and how messages name them. */
    protected CheckedBackend(AliasChecks<T> alias) { this.alias = alias; }

    /**
     * t as this backend's tensor, or an {@link IllegalArgumentException} naming the op and the argument when it
     * belongs to another backend; null stays null (optional arguments are checked by OpChecks).
     */
    protected abstract T own(String op, String name, Tensor t);

    // ---------------------------------------------------------------- memory

    @Override
    public final void write(Tensor dst, float[] values) {
        T t = own("write", "dst", dst);
        if (values.length != t.numElements()) {
            throw new IllegalArgumentException("write: value count does not match the tensor; got " + values.length
                    + " values for " + t.shape() + ", expected " + t.numElements());
        }
        runWrite(t, values);
    }

    @Override
    public final void writeBytes(Tensor dst, ByteSource bytes) {
        T t = own("writeBytes", "dst", dst);
        long expected = Math.multiplyExact(t.numElements(), t.dtype().sizeBytes());
        if (bytes.byteSize() != expected) {
            throw new IllegalArgumentException("writeBytes: byte count does not match the tensor; got " + bytes.byteSize()
                    + " bytes from " + bytes.describe() + " for " + t.shape() + " " + t.dtype() + ", expected " + expected);
        }
        runWriteBytes(t, bytes);
    }

    @Override
    public final float[] toFloats(Tensor t) { return runToFloats(own("toFloats", "t", t)); }

    @Override
    public final void copy(Tensor dst, Tensor src) {
        OpChecks.copy(dst, src);
        T d = own("copy", "dst", dst), s = own("copy", "src", src);
        alias.sameOrDisjoint("copy", "dst", d, "src", s);
        runCopy(d, s);
    }

    @Override
    public final void fill(Tensor t, float value) { runFill(own("fill", "t", t), value); }

    protected abstract void runWrite(T dst, float[] values);
    protected abstract void runWriteBytes(T dst, ByteSource bytes);
    protected abstract float[] runToFloats(T t);
    protected abstract void runCopy(T dst, T src);
    protected abstract void runFill(T t, float value);

    // ---------------------------------------------------------------- GEMM

    @Override
    public final void gemm(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta,
                           Tensor bias) {
        String op = "gemm";
        GemmDims dims = OpChecks.gemm(c, a, transA, b, transB, bias);
        T tc = own(op, "c", c), ta = own(op, "a", a), tb = own(op, "b", b), tbias = own(op, "bias", bias);
        alias.disjoint(op, "c", tc, "a", ta);
        alias.disjoint(op, "c", tc, "b", tb);
        alias.disjoint(op, "c", tc, "bias", tbias);
        runGemm(tc, ta, transA, tb, transB, alpha, beta, tbias, dims);
    }

    @Override
    public final void dequantizeFp8(Tensor out, Tensor wq, Tensor scale) {
        String op = "dequantizeFp8";
        MatrixDims dims = OpChecks.dequantizeFp8(out, wq, scale);
        T to = own(op, "out", out), tw = own(op, "wq", wq), ts = own(op, "scale", scale);
        alias.disjoint(op, "out", to, "wq", tw);
        alias.disjoint(op, "out", to, "scale", ts);
        runDequantizeFp8(to, tw, ts, dims);
    }

    @Override
    public final void quantizeFp8(Tensor codes, Tensor scale, Tensor w) {
        String op = "quantizeFp8";
        MatrixDims dims = OpChecks.quantizeFp8(codes, scale, w);
        T tc = own(op, "codes", codes), ts = own(op, "scale", scale), tw = own(op, "w", w);
        alias.disjoint(op, "codes", tc, "w", tw);
        alias.disjoint(op, "scale", ts, "w", tw);
        alias.disjoint(op, "codes", tc, "scale", ts);
        runQuantizeFp8(tc, ts, tw, dims);
    }

    protected abstract void runGemm(T c, T a, boolean transA, T b, boolean transB, float alpha, float beta, T bias,
                                    GemmDims dims);
    protected abstract void runDequantizeFp8(T out, T wq, T scale, MatrixDims dims);
    protected abstract void runQuantizeFp8(T codes, T scale, T w, MatrixDims dims);

    // ---------------------------------------------------------------- norms

    @Override
    public final void layerNorm(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias, float eps) {
        String op = "layerNorm";
        MatrixDims dims = OpChecks.layerNorm(out, mean, rstd, x, weight, bias);
        T to = own(op, "out", out), tm = own(op, "mean", mean), tr = own(op, "rstd", rstd);
        T tx = own(op, "x", x), tw = own(op, "weight", weight), tb = own(op, "bias", bias);
        alias.outputs(op, new String[] {"out", "mean", "rstd"}, array(to, tm, tr),
                new String[] {"x", "weight", "bias"}, array(tx, tw, tb));
        runLayerNorm(to, tm, tr, tx, tw, tb, eps, dims);
    }

    @Override
    public final void layerNormBackward(Tensor dx, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor x, Tensor weight,
                                        Tensor mean, Tensor rstd, boolean accumulate) {
        String op = "layerNormBackward";
        MatrixDims dims = OpChecks.layerNormBackward(dx, dWeight, dBias, dOut, x, weight, mean, rstd);
        T tdx = own(op, "dx", dx), tdw = own(op, "dWeight", dWeight), tdb = own(op, "dBias", dBias);
        T tdo = own(op, "dOut", dOut), tx = own(op, "x", x), tw = own(op, "weight", weight);
        T tm = own(op, "mean", mean), tr = own(op, "rstd", rstd);
        alias.outputs(op, new String[] {"dx", "dWeight", "dBias"}, array(tdx, tdw, tdb),
                new String[] {"dOut", "x", "weight", "mean", "rstd"}, array(tdo, tx, tw, tm, tr));
        runLayerNormBackward(tdx, tdw, tdb, tdo, tx, tw, tm, tr, accumulate, dims);
    }

    @Override
    public final void rmsNorm(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
        String op = "rmsNorm";
        MatrixDims dims = OpChecks.rmsNorm(out, rstd, x, weight);
        T to = own(op, "out", out), tr = own(op, "rstd", rstd), tx = own(op, "x", x), tw = own(op, "weight", weight);
        alias.outputs(op, new String[] {"out", "rstd"}, array(to, tr), new String[] {"x", "weight"}, array(tx, tw));
        runRmsNorm(to, tr, tx, tw, eps, dims);
    }

    @Override
    public final void rmsNormSilu(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
        String op = "rmsNormSilu";
        MatrixDims dims = OpChecks.rmsNorm(out, rstd, x, weight);
        T to = own(op, "out", out), tr = own(op, "rstd", rstd), tx = own(op, "x", x), tw = own(op, "weight", weight);
        alias.outputs(op, new String[] {"out", "rstd"}, array(to, tr), new String[] {"x", "weight"}, array(tx, tw));
        runRmsNormSilu(to, tr, tx, tw, eps, dims);
    }

    /** The unfused chain (Backend's contract); a backend with a fused kernel overrides this hook. */
    protected void runRmsNormSilu(T out, T rstd, T x, T weight, float eps, MatrixDims dims) {
        runRmsNorm(out, rstd, x, weight, eps, dims);
        silu(out, out);
    }

    @Override
    public final void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dOut, Tensor x, Tensor weight, Tensor rstd) {
        String op = "rmsNormBackward";
        MatrixDims dims = OpChecks.rmsNormBackward(dx, dWeight, dOut, x, weight, rstd);
        T tdx = own(op, "dx", dx), tdw = own(op, "dWeight", dWeight);
        T tdo = own(op, "dOut", dOut), tx = own(op, "x", x), tw = own(op, "weight", weight), tr = own(op, "rstd", rstd);
        alias.outputs(op, new String[] {"dx", "dWeight"}, array(tdx, tdw),
                new String[] {"dOut", "x", "weight", "rstd"}, array(tdo, tx, tw, tr));
        runRmsNormBackward(tdx, tdw, tdo, tx, tw, tr, dims);
    }

    protected abstract void runLayerNorm(T out, T mean, T rstd, T x, T weight, T bias, float eps, MatrixDims dims);
    protected abstract void runLayerNormBackward(T dx, T dWeight, T dBias, T dOut, T x, T weight, T mean, T rstd,
                                                 boolean accumulate, MatrixDims dims);
    protected abstract void runRmsNorm(T out, T rstd, T x, T weight, float eps, MatrixDims dims);
    protected abstract void runRmsNormBackward(T dx, T dWeight, T dOut, T x, T weight, T rstd, MatrixDims dims);

    // ---------------------------------------------------------------- adaLN modulation

    @Override
    public final void modulate(Tensor out, Tensor x, Tensor mod, int shiftIndex, int scaleIndex) {
        String op = "modulate";
        TokenDims dims = OpChecks.modulate(out, x, mod, shiftIndex, scaleIndex);
        T to = own(op, "out", out), tx = own(op, "x", x), tm = own(op, "mod", mod);
        alias.sameOrDisjoint(op, "out", to, "x", tx);
        alias.disjoint(op, "out", to, "mod", tm);
        runModulate(to, tx, tm, shiftIndex, scaleIndex, dims);
    }

    @Override
    public final void modulateBackward(Tensor dx, Tensor dOut, Tensor mod, int scaleIndex) {
        String op = "modulateBackward";
        TokenDims dims = OpChecks.modulateBackward(dx, dOut, mod, scaleIndex);
        T tdx = own(op, "dx", dx), tdo = own(op, "dOut", dOut), tm = own(op, "mod", mod);
        alias.sameOrDisjoint(op, "dx", tdx, "dOut", tdo);
        alias.disjoint(op, "dx", tdx, "mod", tm);
        runModulateBackward(tdx, tdo, tm, scaleIndex, dims);
    }

    @Override
    public final void gatedResidual(Tensor x, Tensor y, Tensor mod, int gateIndex) {
        String op = "gatedResidual";
        TokenDims dims = OpChecks.gatedResidual(op, "x", x, "y", y, mod, gateIndex);
        T tx = own(op, "x", x), ty = own(op, "y", y), tm = gateIndex < 0 ? null : own(op, "mod", mod);
        alias.disjoint(op, "x", tx, "y", ty);
        alias.disjoint(op, "x", tx, "mod", tm);
        runGatedResidual(tx, ty, tm, gateIndex, dims);
    }

    @Override
    public final void gatedResidualBackward(Tensor dy, Tensor dx, Tensor mod, int gateIndex) {
        String op = "gatedResidualBackward";
        TokenDims dims = OpChecks.gatedResidual(op, "dx", dx, "dy", dy, mod, gateIndex);
        T tdy = own(op, "dy", dy), tdx = own(op, "dx", dx), tm = gateIndex < 0 ? null : own(op, "mod", mod);
        alias.sameOrDisjoint(op, "dy", tdy, "dx", tdx);
        alias.disjoint(op, "dy", tdy, "mod", tm);
        runGatedResidualBackward(tdy, tdx, tm, gateIndex, dims);
    }

    protected abstract void runModulate(T out, T x, T mod, int shiftIndex, int scaleIndex, TokenDims dims);
    protected abstract void runModulateBackward(T dx, T dOut, T mod, int scaleIndex, TokenDims dims);
    /** mod is null when gateIndex &lt; 0. */
    protected abstract void runGatedResidual(T x, T y, T mod, int gateIndex, TokenDims dims);
    /** mod is null when gateIndex &lt; 0. */
    protected abstract void runGatedResidualBackward(T dy, T dx, T mod, int gateIndex, TokenDims dims);

    // ---------------------------------------------------------------- RoPE and attention

    @Override
    public final void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int numHeads) {
        String op = "rope";
        AttentionDims dims = OpChecks.rope(op, out, "out", x, "x", cos, sin, numHeads);
        T to = own(op, "out", out), tx = own(op, "x", x), tc = own(op, "cos", cos), ts = own(op, "sin", sin);
        alias.sameOrDisjoint(op, "out", to, "x", tx);
        alias.disjoint(op, "out", to, "cos", tc);
        alias.disjoint(op, "out", to, "sin", ts);
        runRope(to, tx, tc, ts, dims);
    }

    @Override
    public final void ropeBackward(Tensor dx, Tensor dOut, Tensor cos, Tensor sin, int numHeads) {
        String op = "ropeBackward";
        AttentionDims dims = OpChecks.rope(op, dx, "dx", dOut, "dOut", cos, sin, numHeads);
        T tdx = own(op, "dx", dx), tdo = own(op, "dOut", dOut), tc = own(op, "cos", cos), ts = own(op, "sin", sin);
        alias.sameOrDisjoint(op, "dx", tdx, "dOut", tdo);
        alias.disjoint(op, "dx", tdx, "cos", tc);
        alias.disjoint(op, "dx", tdx, "sin", ts);
        runRopeBackward(tdx, tdo, tc, ts, dims);
    }

    @Override
    public final void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int numHeads) {
        String op = "attention";
        AttentionDims dims = OpChecks.attention(out, lse, q, k, v, numHeads);
        T to = own(op, "out", out), tl = own(op, "lse", lse), tq = own(op, "q", q), tk = own(op, "k", k);
        T tv = own(op, "v", v);
        alias.outputs(op, new String[] {"out", "lse"}, array(to, tl), new String[] {"q", "k", "v"}, array(tq, tk, tv));
        runAttention(to, tl, tq, tk, tv, dims);
    }

    @Override
    public final void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v,
                                        Tensor out, Tensor lse, int numHeads) {
        String op = "attentionBackward";
        AttentionDims dims = OpChecks.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, numHeads);
        T tdq = own(op, "dq", dq), tdk = own(op, "dk", dk), tdv = own(op, "dv", dv);
        T tdo = own(op, "dOut", dOut), tq = own(op, "q", q), tk = own(op, "k", k), tv = own(op, "v", v);
        T to = own(op, "out", out), tl = own(op, "lse", lse);
        alias.outputs(op, new String[] {"dq", "dk", "dv"}, array(tdq, tdk, tdv),
                new String[] {"dOut", "q", "k", "v", "out", "lse"}, array(tdo, tq, tk, tv, to, tl));
        runAttentionBackward(tdq, tdk, tdv, tdo, tq, tk, tv, to, tl, dims);
    }

    protected abstract void runRope(T out, T x, T cos, T sin, AttentionDims dims);
    protected abstract void runRopeBackward(T dx, T dOut, T cos, T sin, AttentionDims dims);
    protected abstract void runAttention(T out, T lse, T q, T k, T v, AttentionDims dims);
    protected abstract void runAttentionBackward(T dq, T dk, T dv, T dOut, T q, T k, T v, T out, T lse,
                                                 AttentionDims dims);

    // ---------------------------------------------------------------- activations and elementwise

    @Override
    public final void geluTanh(Tensor out, Tensor x) {
        String op = "geluTanh";
        OpChecks.sameCount(op, "out", out, "x", x);
        T to = own(op, "out", out), tx = own(op, "x", x);
        alias.sameOrDisjoint(op, "out", to, "x", tx);
        runGeluTanh(to, tx);
    }

    @Override
    public final void geluTanhBackward(Tensor dx, Tensor dOut, Tensor x) {
        String op = "geluTanhBackward";
        OpChecks.sameCount(op, "dx", dx, "x", x);
        OpChecks.sameCount(op, "dOut", dOut, "x", x);
        T tdx = own(op, "dx", dx), tdo = own(op, "dOut", dOut), tx = own(op, "x", x);
        alias.sameOrDisjoint(op, "dx", tdx, "dOut", tdo);
        alias.sameOrDisjoint(op, "dx", tdx, "x", tx);
        runGeluTanhBackward(tdx, tdo, tx);
    }

    @Override
    public final void silu(Tensor out, Tensor x) {
        String op = "silu";
        OpChecks.sameCount(op, "out", out, "x", x);
        T to = own(op, "out", out), tx = own(op, "x", x);
        alias.sameOrDisjoint(op, "out", to, "x", tx);
        runSilu(to, tx);
    }

    @Override
    public final void add(Tensor out, Tensor a, Tensor b) {
        String op = "add";
        OpChecks.sameCount(op, "out", out, "a", a);
        OpChecks.sameCount(op, "out", out, "b", b);
        T to = own(op, "out", out), ta = own(op, "a", a), tb = own(op, "b", b);
        alias.sameOrDisjoint(op, "out", to, "a", ta);
        alias.sameOrDisjoint(op, "out", to, "b", tb);
        runAdd(to, ta, tb);
    }

    @Override
    public final void addRowVector(Tensor out, Tensor x, Tensor v) {
        String op = "addRowVector";
        MatrixDims dims = OpChecks.addRowVector(out, x, v);
        T to = own(op, "out", out), tx = own(op, "x", x), tv = own(op, "v", v);
        alias.sameOrDisjoint(op, "out", to, "x", tx);
        alias.disjoint(op, "out", to, "v", tv);
        runAddRowVector(to, tx, tv, dims);
    }

    @Override
    public final void scale(Tensor out, Tensor x, float alpha) {
        String op = "scale";
        OpChecks.sameCount(op, "out", out, "x", x);
        T to = own(op, "out", out), tx = own(op, "x", x);
        alias.sameOrDisjoint(op, "out", to, "x", tx);
        runScale(to, tx, alpha);
    }

    protected abstract void runGeluTanh(T out, T x);
    protected abstract void runGeluTanhBackward(T dx, T dOut, T x);
    protected abstract void runSilu(T out, T x);
    protected abstract void runAdd(T out, T a, T b);
    protected abstract void runAddRowVector(T out, T x, T v, MatrixDims dims);
    protected abstract void runScale(T out, T x, float alpha);

    // ---------------------------------------------------------------- layout and embeddings

    @Override
    public final void patchify(Tensor out, Tensor latents, int channels, int frames, int height, int width) {
        String op = "patchify";
        PatchDims dims = OpChecks.patchify(out, latents, channels, frames, height, width);
        T to = own(op, "out", out), tl = own(op, "latents", latents);
        alias.disjoint(op, "out", to, "latents", tl);
        runPatchify(to, tl, dims);
    }

    @Override
    public final void unpatchify(Tensor out, Tensor tokens, int channels, int frames, int height, int width) {
        String op = "unpatchify";
        PatchDims dims = OpChecks.unpatchify(op, out, "out", tokens, "tokens", channels, frames, height, width);
        T to = own(op, "out", out), tt = own(op, "tokens", tokens);
        alias.disjoint(op, "out", to, "tokens", tt);
        runUnpatchify(to, tt, dims);
    }

    @Override
    public final void unpatchifyBackward(Tensor dTokens, Tensor dOut, int channels, int frames, int height, int width) {
        String op = "unpatchifyBackward";
        PatchDims dims = OpChecks.unpatchify(op, dOut, "dOut", dTokens, "dTokens", channels, frames, height, width);
        T tt = own(op, "dTokens", dTokens), to = own(op, "dOut", dOut);
        alias.disjoint(op, "dTokens", tt, "dOut", to);
        runUnpatchifyBackward(tt, to, dims);
    }

    @Override
    public final void sinusoidalEmbedding(Tensor out, Tensor timesteps) {
        String op = "sinusoidalEmbedding";
        MatrixDims dims = OpChecks.sinusoidalEmbedding(out, timesteps);
        T to = own(op, "out", out), tt = own(op, "timesteps", timesteps);
        alias.disjoint(op, "out", to, "timesteps", tt);
        runSinusoidalEmbedding(to, tt, dims);
    }

    protected abstract void runPatchify(T out, T latents, PatchDims dims);
    protected abstract void runUnpatchify(T out, T tokens, PatchDims dims);
    protected abstract void runUnpatchifyBackward(T dTokens, T dOut, PatchDims dims);
    protected abstract void runSinusoidalEmbedding(T out, T timesteps, MatrixDims dims);

    // ---------------------------------------------------------------- text encoder (umT5)

    @Override
    public final void embedding(Tensor out, Tensor table, Tensor ids) {
        String op = "embedding";
        MatrixDims dims = OpChecks.embedding(out, table, ids);
        T to = own(op, "out", out), tt = own(op, "table", table), ti = own(op, "ids", ids);
        alias.outputs(op, new String[] {"out"}, array(to), new String[] {"table", "ids"}, array(tt, ti));
        runEmbedding(to, tt, ti, dims);
    }

    @Override
    public final void relativePositionBias(Tensor out, Tensor table, Tensor buckets) {
        String op = "relativePositionBias";
        AttentionDims dims = OpChecks.relativePositionBias(out, table, buckets);
        T to = own(op, "out", out), tt = own(op, "table", table), tb = own(op, "buckets", buckets);
        alias.outputs(op, new String[] {"out"}, array(to), new String[] {"table", "buckets"}, array(tt, tb));
        runRelativePositionBias(to, tt, tb, dims);
    }

    @Override
    public final void attentionWithBias(Tensor out, Tensor q, Tensor k, Tensor v, Tensor bias, Tensor keyMask,
                                        int numHeads) {
        String op = "attentionWithBias";
        AttentionDims dims = OpChecks.attentionWithBias(out, q, k, v, bias, keyMask, numHeads);
        T to = own(op, "out", out), tq = own(op, "q", q), tk = own(op, "k", k), tv = own(op, "v", v);
        T tb = own(op, "bias", bias), tm = own(op, "keyMask", keyMask);
        alias.outputs(op, new String[] {"out"}, array(to), new String[] {"q", "k", "v", "bias", "keyMask"},
                array(tq, tk, tv, tb, tm));
        runAttentionWithBias(to, tq, tk, tv, tb, tm, dims);
    }

    @Override
    public final void gatedGelu(Tensor out, Tensor gate, Tensor x) {
        String op = "gatedGelu";
        OpChecks.sameCount(op, "out", out, "x", x);
        OpChecks.sameCount(op, "out", out, "gate", gate);
        T to = own(op, "out", out), tg = own(op, "gate", gate), tx = own(op, "x", x);
        alias.sameOrDisjoint(op, "out", to, "x", tx);
        alias.sameOrDisjoint(op, "out", to, "gate", tg);
        runGatedGelu(to, tg, tx);
    }

    protected abstract void runEmbedding(T out, T table, T ids, MatrixDims dims);
    protected abstract void runRelativePositionBias(T out, T table, T buckets, AttentionDims dims);
    protected abstract void runAttentionWithBias(T out, T q, T k, T v, T bias, T keyMask, AttentionDims dims);
    protected abstract void runGatedGelu(T out, T gate, T x);

    // ---------------------------------------------------------------- video convolution (the Wan VAE)

    @Override
    public final void conv3d(Tensor out, Tensor cache, Tensor x, Tensor weight, Tensor bias, ConvGeometry geometry) {
        String op = "conv3d";
        ConvDims dims = OpChecks.conv3d(out, cache, x, weight, bias, geometry);
        T to = own(op, "out", out), tc = own(op, "cache", cache), tx = own(op, "x", x);
        T tw = own(op, "weight", weight), tb = own(op, "bias", bias);
        alias.disjoint(op, "out", to, "cache", tc);
        alias.disjoint(op, "out", to, "x", tx);
        alias.disjoint(op, "out", to, "weight", tw);
        alias.disjoint(op, "out", to, "bias", tb);
        runConv3d(to, tc, tx, tw, tb, dims);
    }

    @Override
    public final void upsampleNearest2x(Tensor out, Tensor x) {
        String op = "upsampleNearest2x";
        ConvDims dims = OpChecks.upsampleNearest2x(out, x);
        T to = own(op, "out", out), tx = own(op, "x", x);
        alias.disjoint(op, "out", to, "x", tx);
        runUpsampleNearest2x(to, tx, dims);
    }

    @Override
    public final void softmax(Tensor out, Tensor x, float scale) {
        String op = "softmax";
        MatrixDims dims = OpChecks.softmax(out, x);
        T to = own(op, "out", out), tx = own(op, "x", x);
        alias.sameOrDisjoint(op, "out", to, "x", tx);
        runSoftmax(to, tx, scale, dims);
    }

    /** cache and bias are null when absent. */
    protected abstract void runConv3d(T out, T cache, T x, T weight, T bias, ConvDims dims);
    protected abstract void runUpsampleNearest2x(T out, T x, ConvDims dims);
    protected abstract void runSoftmax(T out, T x, float scale, MatrixDims dims);

    // ---------------------------------------------------------------- flow matching and loss

    @Override
    public final void gaussianNoise(Tensor out, long seed, long offset) {
        OpChecks.gaussianNoise(out);
        runGaussianNoise(own("gaussianNoise", "out", out), seed, offset);
    }

    @Override
    public final void flowMatchingInput(Tensor xt, Tensor target, Tensor x0, Tensor noise, Tensor t) {
        String op = "flowMatchingInput";
        MatrixDims dims = OpChecks.flowMatchingInput(xt, target, x0, noise, t);
        T txt = own(op, "xt", xt), ttg = own(op, "target", target);
        T tx0 = own(op, "x0", x0), tn = own(op, "noise", noise), tt = own(op, "t", t);
        alias.disjoint(op, "xt", txt, "target", ttg);
        for (int i = 0; i < 2; i++) {
            String name = i == 0 ? "xt" : "target";
            T o = i == 0 ? txt : ttg;
            alias.sameOrDisjoint(op, name, o, "x0", tx0);
            alias.sameOrDisjoint(op, name, o, "noise", tn);
            alias.disjoint(op, name, o, "t", tt);
        }
        runFlowMatchingInput(txt, ttg, tx0, tn, tt, dims);
    }

    @Override
    public final void mseLoss(Tensor loss, Tensor dPred, Tensor pred, Tensor target, float gradScale) {
        String op = "mseLoss";
        long n = OpChecks.mseLoss(loss, dPred, pred, target);
        T tl = own(op, "loss", loss), td = own(op, "dPred", dPred), tp = own(op, "pred", pred);
        T tt = own(op, "target", target);
        alias.disjoint(op, "loss", tl, "dPred", td);
        alias.disjoint(op, "loss", tl, "pred", tp);
        alias.disjoint(op, "loss", tl, "target", tt);
        alias.sameOrDisjoint(op, "dPred", td, "pred", tp);
        alias.sameOrDisjoint(op, "dPred", td, "target", tt);
        runMseLoss(tl, td, tp, tt, gradScale, n);
    }

    protected abstract void runGaussianNoise(T out, long seed, long offset);
    protected abstract void runFlowMatchingInput(T xt, T target, T x0, T noise, T t, MatrixDims dims);
    /** n: pred's element count. */
    protected abstract void runMseLoss(T loss, T dPred, T pred, T target, float gradScale, long n);

    // ---------------------------------------------------------------- optimizer

    @Override
    public final void sumOfSquares(Tensor normSquared, Tensor g) {
        String op = "sumOfSquares";
        OptimizerChecks.sumOfSquares(normSquared, g);
        T tn = own(op, "normSquared", normSquared), tg = own(op, "g", g);
        alias.disjoint(op, "normSquared", tn, "g", tg);
        runSumOfSquares(tn, tg);
    }

    @Override
    public final void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, AdamWStep hyper) {
        String op = "adamw";
        OptimizerChecks.adamw(param, grad, m, v, gradScale, hyper);
        T tp = own(op, "param", param), tg = own(op, "grad", grad), tm = own(op, "m", m), tv = own(op, "v", v);
        T ts = own(op, "gradScale", gradScale);
        alias.outputs(op, new String[] {"param", "m", "v"}, array(tp, tm, tv), new String[] {"grad", "gradScale"},
                array(tg, ts));
        runAdamw(tp, tg, tm, tv, ts, hyper);
    }

    @Override
    public final void adamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes, Tensor vAbsMax,
                                Tensor gradScale, AdamWStep hyper) {
        String op = "adamw8bit";
        OptimizerChecks.adamw8bit(param, grad, mCodes, mAbsMax, vCodes, vAbsMax, gradScale, hyper, ADAMW8BIT_BLOCK_SIZE);
        T tp = own(op, "param", param), tg = own(op, "grad", grad), ts = own(op, "gradScale", gradScale);
        T tmc = own(op, "mCodes", mCodes), tma = own(op, "mAbsMax", mAbsMax);
        T tvc = own(op, "vCodes", vCodes), tva = own(op, "vAbsMax", vAbsMax);
        alias.outputs(op, new String[] {"param", "mCodes", "mAbsMax", "vCodes", "vAbsMax"}, array(tp, tmc, tma, tvc, tva),
                new String[] {"grad", "gradScale"}, array(tg, ts));
        runAdamw8bit(tp, tg, tmc, tma, tvc, tva, ts, hyper);
    }

    @Override
    public final void prodigyAccumulate(Tensor param, Tensor grad, Tensor p0, Tensor m, Tensor v, Tensor s,
                                        Tensor gradScale, Tensor state, ProdigyStep hyper) {
        String op = "prodigyAccumulate";
        OptimizerChecks.prodigy(op, param, grad, p0, m, v, s, gradScale, state, hyper);
        T tp = own(op, "param", param), tg = own(op, "grad", grad), t0 = own(op, "p0", p0);
        T tm = own(op, "m", m), tv = own(op, "v", v), ts = own(op, "s", s);
        T tscale = own(op, "gradScale", gradScale), tstate = own(op, "state", state);
        alias.outputs(op, new String[] {"p0", "m", "v", "s", "state"}, array(t0, tm, tv, ts, tstate),
                new String[] {"param", "grad", "gradScale"}, array(tp, tg, tscale));
        runProdigyAccumulate(tp, tg, t0, tm, tv, ts, tscale, tstate, hyper);
    }

    @Override
    public final void prodigyAdapt(Tensor state, ProdigyStep hyper) {
        OptimizerChecks.prodigy("prodigyAdapt", null, null, null, null, null, null, null, state, hyper);
        runProdigyAdapt(own("prodigyAdapt", "state", state), hyper);
    }

    @Override
    public final void prodigyUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, Tensor state,
                                    ProdigyStep hyper) {
        String op = "prodigyUpdate";
        OptimizerChecks.prodigy(op, param, grad, null, m, v, null, gradScale, state, hyper);
        T tp = own(op, "param", param), tg = own(op, "grad", grad), tm = own(op, "m", m), tv = own(op, "v", v);
        T tscale = own(op, "gradScale", gradScale), tstate = own(op, "state", state);
        alias.outputs(op, new String[] {"param"}, array(tp),
                new String[] {"grad", "m", "v", "gradScale", "state"}, array(tg, tm, tv, tscale, tstate));
        runProdigyUpdate(tp, tg, tm, tv, tscale, tstate, hyper);
    }

    @Override
    public final void adafactor(Tensor param, Tensor grad, Tensor m, Tensor row, Tensor col, Tensor v, Tensor gradScale,
                                AdafactorStep hyper) {
        String op = "adafactor";
        OptimizerChecks.adafactor(param, grad, m, row, col, v, gradScale, hyper);
        T tp = own(op, "param", param), tg = own(op, "grad", grad), tm = own(op, "m", m);
        T tr = own(op, "row", row), tc = own(op, "col", col), tv = own(op, "v", v);
        T tscale = own(op, "gradScale", gradScale);
        alias.outputs(op, new String[] {"param", "m", "row", "col", "v"}, array(tp, tm, tr, tc, tv),
                new String[] {"grad", "gradScale"}, array(tg, tscale));
        runAdafactor(tp, tg, tm, tr, tc, tv, tscale, hyper);
    }

    @Override
    public final void clipCoefficient(Tensor clip, Tensor normSquared, float maxNorm) {
        String op = "clipCoefficient";
        OptimizerChecks.clipCoefficient(clip, normSquared);
        T tc = own(op, "clip", clip), tn = own(op, "normSquared", normSquared);
        alias.sameOrDisjoint(op, "clip", tc, "normSquared", tn);
        runClipCoefficient(tc, tn, maxNorm);
    }

    protected abstract void runSumOfSquares(T normSquared, T g);
    protected abstract void runAdamw(T param, T grad, T m, T v, T gradScale, AdamWStep hyper);
    protected abstract void runAdamw8bit(T param, T grad, T mCodes, T mAbsMax, T vCodes, T vAbsMax, T gradScale,
                                         AdamWStep hyper);
    protected abstract void runProdigyAccumulate(T param, T grad, T p0, T m, T v, T s, T gradScale, T state,
                                                 ProdigyStep hyper);
    protected abstract void runProdigyAdapt(T state, ProdigyStep hyper);
    protected abstract void runProdigyUpdate(T param, T grad, T m, T v, T gradScale, T state, ProdigyStep hyper);
    /** m, row, col, v are null where Backend's contract leaves them out. */
    protected abstract void runAdafactor(T param, T grad, T m, T row, T col, T v, T gradScale, AdafactorStep hyper);
    protected abstract void runClipCoefficient(T clip, T normSquared, float maxNorm);

    // ---------------------------------------------------------------- plumbing

    /** The operands of an aliasing check, as the backend's tensor type (the array each backend built before). */
    @SafeVarargs
    private static <T> T[] array(T... tensors) { return tensors; }
}
