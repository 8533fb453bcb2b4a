package dev.wanlora.engine.backend;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * Argument checks of every {@link Backend} op, shared by all backends so that the CPU reference and the CUDA
 * backend reject exactly the same calls with exactly the same messages. Each op has one method that checks shapes,
 * dtypes and index arguments and returns the dimensions the op derives from them. Messages follow STYLE.md §7:
 * {@code <op>: <what is wrong>; got <actual>, expected <expected>}. {@link CheckedBackend} calls them, then checks
 * tensor ownership and aliasing; a backend's hook checks only what is its own (kernel availability). The optimizer
 * ops' checks are in {@link OptimizerChecks}.
 */
public final class OpChecks {
    private OpChecks() {}

    /** The dtypes every activation input and output may have (Backend's class Javadoc). */
    private static final DType[] ACTIVATION = {DType.F32, DType.BF16};

    /** op(a) (m, k) times op(b) (k, n) into c (m, n). */
    public record GemmDims(long m, long n, long k) {}

    /** A tensor seen as a (rows, cols) matrix. */
    public record MatrixDims(long rows, long cols) {}

    /** A (B, L, C) token tensor modulated per sample. */
    public record TokenDims(long batch, long tokens, long channels) {}

    /** q (B, Lq, N·D) attending to k, v (B, Lk, N·D). */
    public record AttentionDims(long batch, long queries, long keys, int heads, long headDim) {}

    /** A (B, C, F, H, W) latent and its (B, F·H/2·W/2, 4·C) token layout. */
    public record PatchDims(long batch, int channels, int frames, int height, int width) {
        public long tokens() { return (long) frames * (height / 2) * (width / 2); }
    }

    // ---------------------------------------------------------------- building blocks

    /** "x=(3,40) bf16", the way every message names a tensor. */
    public static String describe(String name, Tensor t) {
        return name + "=" + t.shape() + " " + t.dtype().name().toLowerCase(Locale.ROOT);
    }

    public static void requireNonNull(String op, String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(op + ": " + name + " is null; got null, expected a tensor");
    }

    public static void requireDType(String op, String name, Tensor t, DType... allowed) {
        requireNonNull(op, name, t);
        for (DType d : allowed) if (t.dtype() == d) return;
        String list = Arrays.stream(allowed).map(d -> d.name().toLowerCase(Locale.ROOT)).collect(Collectors.joining(", "));
        throw new IllegalArgumentException(op + ": unsupported dtype of " + name + "; got " + describe(name, t)
                + ", expected " + (allowed.length == 1 ? list : "one of " + list));
    }

    /** F32 or BF16, the activation dtypes. */
    public static void requireActivation(String op, String name, Tensor t) {
        requireDType(op, name, t, ACTIVATION);
    }

    public static void requireShape(String op, String name, Tensor t, Shape expected) {
        requireNonNull(op, name, t);
        if (!t.shape().equals(expected)) {
            throw new IllegalArgumentException(op + ": wrong shape of " + name + "; got " + describe(name, t)
                    + ", expected " + name + "=" + expected);
        }
    }

    public static void requireSameShape(String op, String name, Tensor t, String refName, Tensor ref) {
        requireNonNull(op, name, t);
        if (!t.shape().equals(ref.shape())) {
            throw new IllegalArgumentException(op + ": " + name + " shape does not match " + refName + "; got "
                    + describe(name, t) + ", expected " + name + "=" + ref.shape() + " (as " + describe(refName, ref) + ")");
        }
    }

    public static void requireRank(String op, String name, Tensor t, int rank, String legend) {
        requireNonNull(op, name, t);
        if (t.shape().rank() != rank) {
            throw new IllegalArgumentException(op + ": " + name + " must have rank " + rank + "; got " + describe(name, t)
                    + ", expected " + name + "=" + legend);
        }
    }

    public static void requireElements(String op, String name, Tensor t, long expected) {
        requireNonNull(op, name, t);
        if (t.numElements() != expected) {
            throw new IllegalArgumentException(op + ": wrong element count of " + name + "; got " + describe(name, t)
                    + " (" + t.numElements() + " elements), expected " + expected + " elements");
        }
    }

    /** A (1)-element F32 scalar such as a loss or a clip coefficient. */
    public static void requireScalarF32(String op, String name, Tensor t) {
        requireDType(op, name, t, DType.F32);
        requireElements(op, name, t, 1);
    }

    private static void requireIndex(String op, String name, int index, long count) {
        if (index < 0 || index >= count) {
            throw new IllegalArgumentException(op + ": " + name + " out of range; got " + name + "=" + index
                    + ", expected 0 <= " + name + " < " + count);
        }
    }

    private static int headDimOf(String op, String name, Tensor t, int numHeads) {
        if (numHeads <= 0) {
            throw new IllegalArgumentException(op + ": numHeads must be positive; got numHeads=" + numHeads
                    + ", expected >= 1");
        }
        long cols = t.shape().cols();
        if (cols % numHeads != 0) {
            throw new IllegalArgumentException(op + ": last dim of " + name + " is not a multiple of numHeads; got "
                    + describe(name, t) + " with numHeads=" + numHeads + ", expected last dim = numHeads·D");
        }
        return Math.toIntExact(cols / numHeads);
    }

    // ---------------------------------------------------------------- memory

    public static void copy(Tensor dst, Tensor src) {
        requireNonNull("copy", "dst", dst);
        requireNonNull("copy", "src", src);
        if (dst.numElements() != src.numElements()) {
            throw new IllegalArgumentException("copy: element counts differ; got " + describe("dst", dst) + " and "
                    + describe("src", src) + ", expected equal element counts");
        }
    }

    // ---------------------------------------------------------------- GEMM

    public static GemmDims gemm(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, Tensor bias) {
        String op = "gemm";
        requireActivation(op, "c", c);
        requireActivation(op, "a", a);
        requireActivation(op, "b", b);
        long m = transA ? a.shape().cols() : a.shape().rows();
        long k = transA ? a.shape().rows() : a.shape().cols();
        long kb = transB ? b.shape().cols() : b.shape().rows();
        long n = transB ? b.shape().rows() : b.shape().cols();
        if (k != kb) {
            throw new IllegalArgumentException(op + ": inner dims differ; got " + describe("a", a) + (transA ? "ᵀ" : "")
                    + " (K=" + k + ") and " + describe("b", b) + (transB ? "ᵀ" : "") + " (K=" + kb + "), expected equal K");
        }
        if (c.shape().rows() != m || c.shape().cols() != n) {
            throw new IllegalArgumentException(op + ": wrong shape of c; got " + describe("c", c) + ", expected c=("
                    + m + "," + n + ") for " + describe("a", a) + (transA ? "ᵀ" : "") + " and " + describe("b", b)
                    + (transB ? "ᵀ" : ""));
        }
        if (bias != null) {
            requireActivation(op, "bias", bias);
            requireElements(op, "bias", bias, n);
        }
        return new GemmDims(m, n, k);
    }

    public static MatrixDims dequantizeFp8(Tensor out, Tensor wq, Tensor scale) {
        String op = "dequantizeFp8";
        requireDType(op, "wq", wq, DType.F8_E4M3);
        requireRank(op, "wq", wq, 2, "(O, I)");
        requireActivation(op, "out", out);
        requireSameShape(op, "out", out, "wq", wq);
        requireDType(op, "scale", scale, DType.BF16, DType.F32);
        long o = wq.shape().dim(0), i = wq.shape().dim(1);
        if (i % 64 != 0) {
            throw new IllegalArgumentException(op + ": input dim is not a multiple of the block size 64; got "
                    + describe("wq", wq) + ", expected I % 64 == 0");
        }
        requireShape(op, "scale", scale, Shape.of(o, i / 64, 1));
        return new MatrixDims(o, i);
    }

    /** Checks of {@code Backend.quantizeFp8}; returns (O, I). */
    public static MatrixDims quantizeFp8(Tensor codes, Tensor scale, Tensor w) {
        String op = "quantizeFp8";
        requireDType(op, "w", w, DType.BF16, DType.F16, DType.F32);
        requireRank(op, "w", w, 2, "(O, I)");
        requireDType(op, "codes", codes, DType.F8_E4M3);
        requireSameShape(op, "codes", codes, "w", w);
        long o = w.shape().dim(0), i = w.shape().dim(1);
        if (i % 64 != 0) {
            throw new IllegalArgumentException(op + ": input dim is not a multiple of the block size 64; got "
                    + describe("w", w) + ", expected I % 64 == 0");
        }
        requireDType(op, "scale", scale, w.dtype() == DType.BF16 ? DType.BF16 : DType.F32);
        requireShape(op, "scale", scale, Shape.of(o, i / 64, 1));
        return new MatrixDims(o, i);
    }

    // ---------------------------------------------------------------- norms

    public static MatrixDims layerNorm(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias) {
        String op = "layerNorm";
        MatrixDims d = rowwise(op, out, "out", x);
        requireStats(op, mean, "mean", d);
        requireStats(op, rstd, "rstd", d);
        requireOptionalVector(op, "weight", weight, d.cols);
        requireOptionalVector(op, "bias", bias, d.cols);
        return d;
    }

    public static MatrixDims layerNormBackward(Tensor dx, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor x,
                                               Tensor weight, Tensor mean, Tensor rstd) {
        String op = "layerNormBackward";
        MatrixDims d = rowwise(op, dx, "dx", x);
        requireActivation(op, "dOut", dOut);
        requireSameShape(op, "dOut", dOut, "x", x);
        requireStats(op, mean, "mean", d);
        requireStats(op, rstd, "rstd", d);
        requireOptionalVector(op, "weight", weight, d.cols);
        requireOptionalVector(op, "dWeight", dWeight, d.cols);
        requireOptionalVector(op, "dBias", dBias, d.cols);
        if (dWeight != null && weight == null) {
            throw new IllegalArgumentException(op + ": dWeight given for a LayerNorm without weight; got "
                    + describe("dWeight", dWeight) + " and weight=null, expected dWeight=null");
        }
        return d;
    }

    public static MatrixDims rmsNorm(Tensor out, Tensor rstd, Tensor x, Tensor weight) {
        String op = "rmsNorm";
        MatrixDims d = rowwise(op, out, "out", x);
        requireStats(op, rstd, "rstd", d);
        requireNonNull(op, "weight", weight);
        requireOptionalVector(op, "weight", weight, d.cols);
        return d;
    }

    public static MatrixDims rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dOut, Tensor x, Tensor weight,
                                             Tensor rstd) {
        String op = "rmsNormBackward";
        MatrixDims d = rowwise(op, dx, "dx", x);
        requireActivation(op, "dOut", dOut);
        requireSameShape(op, "dOut", dOut, "x", x);
        requireStats(op, rstd, "rstd", d);
        requireNonNull(op, "weight", weight);
        requireOptionalVector(op, "weight", weight, d.cols);
        requireOptionalVector(op, "dWeight", dWeight, d.cols);
        return d;
    }

    private static MatrixDims rowwise(String op, Tensor out, String outName, Tensor x) {
        requireActivation(op, "x", x);
        requireActivation(op, outName, out);
        requireSameShape(op, outName, out, "x", x);
        return new MatrixDims(x.shape().rows(), x.shape().cols());
    }

    private static void requireStats(String op, Tensor t, String name, MatrixDims d) {
        requireDType(op, name, t, DType.F32);
        requireElements(op, name, t, d.rows);
    }

    private static void requireOptionalVector(String op, String name, Tensor t, long cols) {
        if (t == null) return;
        requireActivation(op, name, t);
        requireElements(op, name, t, cols);
    }

    // ---------------------------------------------------------------- modulation

    public static TokenDims modulate(Tensor out, Tensor x, Tensor mod, int shiftIndex, int scaleIndex) {
        String op = "modulate";
        TokenDims d = tokens(op, "x", x, mod);
        requireActivation(op, "out", out);
        requireSameShape(op, "out", out, "x", x);
        requireIndex(op, "shiftIndex", shiftIndex, mod.shape().dim(1));
        requireIndex(op, "scaleIndex", scaleIndex, mod.shape().dim(1));
        return d;
    }

    public static TokenDims modulateBackward(Tensor dx, Tensor dOut, Tensor mod, int scaleIndex) {
        String op = "modulateBackward";
        TokenDims d = tokens(op, "dOut", dOut, mod);
        requireActivation(op, "dx", dx);
        requireSameShape(op, "dx", dx, "dOut", dOut);
        requireIndex(op, "scaleIndex", scaleIndex, mod.shape().dim(1));
        return d;
    }

    /**
     * For gatedResidual (x, y) and its backward (dx, dy). mod may be null when gateIndex &lt; 0 (no gate).
     */
    public static TokenDims gatedResidual(String op, String xName, Tensor x, String yName, Tensor y, Tensor mod,
                                          int gateIndex) {
        requireActivation(op, xName, x);
        requireRank(op, xName, x, 3, "(B, L, C)");
        requireActivation(op, yName, y);
        requireSameShape(op, yName, y, xName, x);
        TokenDims d = new TokenDims(x.shape().dim(0), x.shape().dim(1), x.shape().dim(2));
        if (gateIndex >= 0) {
            tokens(op, xName, x, mod);
            requireIndex(op, "gateIndex", gateIndex, mod.shape().dim(1));
        }
        return d;
    }

    private static TokenDims tokens(String op, String name, Tensor x, Tensor mod) {
        requireActivation(op, name, x);
        requireRank(op, name, x, 3, "(B, L, C)");
        requireDType(op, "mod", mod, DType.F32);
        requireRank(op, "mod", mod, 3, "(B, n, C)");
        long b = x.shape().dim(0), c = x.shape().dim(2);
        if (mod.shape().dim(0) != b || mod.shape().dim(2) != c) {
            throw new IllegalArgumentException(op + ": mod does not match " + name + "'s batch and channels; got "
                    + describe("mod", mod) + " and " + describe(name, x) + ", expected mod=(" + b + ", n, " + c + ")");
        }
        return new TokenDims(b, x.shape().dim(1), c);
    }

    // ---------------------------------------------------------------- RoPE and attention

    /** Returns (B, L, N, D) as an AttentionDims with queries = keys = L. */
    public static AttentionDims rope(String op, Tensor out, String outName, Tensor x, String xName, Tensor cos,
                                     Tensor sin, int numHeads) {
        requireActivation(op, xName, x);
        requireRank(op, xName, x, 3, "(B, L, N·D)");
        requireActivation(op, outName, out);
        requireSameShape(op, outName, out, xName, x);
        int d = headDimOf(op, xName, x, numHeads);
        if (d % 2 != 0) {
            throw new IllegalArgumentException(op + ": head dim is odd; got " + describe(xName, x) + " with numHeads="
                    + numHeads + " (D=" + d + "), expected an even D (pairs of features are rotated)");
        }
        long l = x.shape().dim(1);
        requireDType(op, "cos", cos, DType.F32);
        requireDType(op, "sin", sin, DType.F32);
        requireShape(op, "cos", cos, Shape.of(l, d / 2));
        requireShape(op, "sin", sin, Shape.of(l, d / 2));
        return new AttentionDims(x.shape().dim(0), l, l, numHeads, d);
    }

    public static AttentionDims attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int numHeads) {
        String op = "attention";
        AttentionDims d = qkv(op, q, k, v, numHeads);
        requireActivation(op, "out", out);
        requireSameShape(op, "out", out, "q", q);
        requireDType(op, "lse", lse, DType.F32);
        requireShape(op, "lse", lse, Shape.of(d.batch, numHeads, d.queries));
        return d;
    }

    public static AttentionDims attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k,
                                                  Tensor v, Tensor out, Tensor lse, int numHeads) {
        String op = "attentionBackward";
        AttentionDims d = qkv(op, q, k, v, numHeads);
        requireActivation(op, "out", out);
        requireSameShape(op, "out", out, "q", q);
        requireActivation(op, "dOut", dOut);
        requireSameShape(op, "dOut", dOut, "q", q);
        requireActivation(op, "dq", dq);
        requireSameShape(op, "dq", dq, "q", q);
        requireActivation(op, "dk", dk);
        requireSameShape(op, "dk", dk, "k", k);
        requireActivation(op, "dv", dv);
        requireSameShape(op, "dv", dv, "v", v);
        requireDType(op, "lse", lse, DType.F32);
        requireShape(op, "lse", lse, Shape.of(d.batch, numHeads, d.queries));
        return d;
    }

    private static AttentionDims qkv(String op, Tensor q, Tensor k, Tensor v, int numHeads) {
        requireActivation(op, "q", q);
        requireRank(op, "q", q, 3, "(B, Lq, N·D)");
        requireActivation(op, "k", k);
        requireRank(op, "k", k, 3, "(B, Lk, N·D)");
        requireActivation(op, "v", v);
        requireSameShape(op, "v", v, "k", k);
        int d = headDimOf(op, "q", q, numHeads);
        if (k.shape().dim(0) != q.shape().dim(0) || k.shape().dim(2) != q.shape().dim(2)) {
            throw new IllegalArgumentException(op + ": k does not match q's batch and width; got " + describe("k", k)
                    + " and " + describe("q", q) + ", expected k=(" + q.shape().dim(0) + ", Lk, " + q.shape().dim(2) + ")");
        }
        if (k.shape().dim(1) == 0) {
            throw new IllegalArgumentException(op + ": no keys; got " + describe("k", k) + ", expected Lk >= 1");
        }
        return new AttentionDims(q.shape().dim(0), q.shape().dim(1), k.shape().dim(1), numHeads, d);
    }

    // ---------------------------------------------------------------- text encoder (umT5)

    /** Returns (R, C): R ids gathering rows of width C. */
    public static MatrixDims embedding(Tensor out, Tensor table, Tensor ids) {
        String op = "embedding";
        requireActivation(op, "table", table);
        requireRank(op, "table", table, 2, "(V, C)");
        requireDType(op, "ids", ids, DType.F32);
        requireRank(op, "ids", ids, 1, "(R)");
        requireActivation(op, "out", out);
        requireShape(op, "out", out, Shape.of(ids.shape().dim(0), table.shape().dim(1)));
        return new MatrixDims(ids.shape().dim(0), table.shape().dim(1));
    }

    /** Returns (N, Lq, Lk) as an AttentionDims with batch 1 and head dim 0. */
    public static AttentionDims relativePositionBias(Tensor out, Tensor table, Tensor buckets) {
        String op = "relativePositionBias";
        requireActivation(op, "table", table);
        requireRank(op, "table", table, 2, "(numBuckets, N)");
        requireActivation(op, "out", out);
        requireRank(op, "out", out, 3, "(N, Lq, Lk)");
        long heads = table.shape().dim(1), lq = out.shape().dim(1), lk = out.shape().dim(2);
        if (out.shape().dim(0) != heads) {
            throw new IllegalArgumentException(op + ": out's head count does not match table; got " + describe("out", out)
                    + " and " + describe("table", table) + ", expected out=(" + heads + ", Lq, Lk)");
        }
        requireDType(op, "buckets", buckets, DType.F32);
        requireShape(op, "buckets", buckets, Shape.of(Math.max(0, lq + lk - 1)));
        return new AttentionDims(1, lq, lk, Math.toIntExact(heads), 0);
    }

    public static AttentionDims attentionWithBias(Tensor out, Tensor q, Tensor k, Tensor v, Tensor bias, Tensor keyMask,
                                                  int numHeads) {
        String op = "attentionWithBias";
        AttentionDims d = qkv(op, q, k, v, numHeads);
        requireActivation(op, "out", out);
        requireSameShape(op, "out", out, "q", q);
        requireActivation(op, "bias", bias);
        requireShape(op, "bias", bias, Shape.of(numHeads, d.queries, d.keys));
        requireDType(op, "keyMask", keyMask, DType.F32);
        requireShape(op, "keyMask", keyMask, Shape.of(d.batch, d.keys));
        return d;
    }

    // ---------------------------------------------------------------- elementwise

    public static long sameCount(String op, String outName, Tensor out, String inName, Tensor in) {
        requireActivation(op, inName, in);
        requireActivation(op, outName, out);
        if (out.numElements() != in.numElements()) {
            throw new IllegalArgumentException(op + ": element counts differ; got " + describe(outName, out) + " and "
                    + describe(inName, in) + ", expected equal element counts");
        }
        return in.numElements();
    }

    public static MatrixDims addRowVector(Tensor out, Tensor x, Tensor v) {
        String op = "addRowVector";
        requireActivation(op, "x", x);
        requireActivation(op, "out", out);
        requireSameShape(op, "out", out, "x", x);
        requireActivation(op, "v", v);
        requireElements(op, "v", v, x.shape().cols());
        return new MatrixDims(x.shape().rows(), x.shape().cols());
    }

    // ---------------------------------------------------------------- video convolution

    /**
     * conv3d's sizes: the input stream of {@code cacheFrames + inFrames} frames of (height, width, inChannels), the
     * kernel (kt, kh, kw) and the output (outFrames, outHeight, outWidth, outChannels).
     */
    public record ConvDims(long cacheFrames, long inFrames, long height, long width, long inChannels, long kt,
                           long kh, long kw, long outFrames, long outHeight, long outWidth, long outChannels,
                           Backend.ConvGeometry geometry) {
        /** Multiply-adds of the convolution: To·Ho·Wo·Cout·KT·KH·KW·Cin. */
        public long macs() {
            return Math.multiplyExact(Math.multiplyExact(outFrames * outHeight * outWidth, outChannels),
                    kt * kh * kw * inChannels);
        }
    }

    public static ConvDims conv3d(Tensor out, Tensor cache, Tensor x, Tensor weight, Tensor bias,
                                  Backend.ConvGeometry g) {
        String op = "conv3d";
        if (g == null || g.timeStride() < 1 || g.spaceStride() < 1 || g.padBefore() < 0 || g.padAfter() < 0) {
            throw new IllegalArgumentException(op + ": invalid geometry; got " + g
                    + ", expected strides >= 1 and paddings >= 0");
        }
        requireActivation(op, "x", x);
        requireRank(op, "x", x, 4, "(T, H, W, Cin)");
        long tx = x.shape().dim(0), h = x.shape().dim(1), w = x.shape().dim(2), cin = x.shape().dim(3);
        long tc = 0;
        if (cache != null) {
            requireDType(op, "cache", cache, x.dtype());
            requireRank(op, "cache", cache, 4, "(Tc, H, W, Cin)");
            tc = cache.shape().dim(0);
            requireShape(op, "cache", cache, Shape.of(tc, h, w, cin));
        }
        requireActivation(op, "weight", weight);
        requireRank(op, "weight", weight, 5, "(Cout, KT, KH, KW, Cin)");
        long cout = weight.shape().dim(0), kt = weight.shape().dim(1), kh = weight.shape().dim(2);
        long kw = weight.shape().dim(3);
        if (weight.shape().dim(4) != cin || cout < 1 || kt < 1 || kh < 1 || kw < 1) {
            throw new IllegalArgumentException(op + ": weight does not fit x; got " + describe("weight", weight) + " for "
                    + describe("x", x) + ", expected weight=(Cout, KT, KH, KW, " + cin + ") with positive sizes");
        }
        if (bias != null) {
            requireActivation(op, "bias", bias);
            requireElements(op, "bias", bias, cout);
        }
        long tin = tc + tx, st = g.timeStride(), ss = g.spaceStride();
        long hp = h + g.padBefore() + g.padAfter() - kh, wp = w + g.padBefore() + g.padAfter() - kw;
        if (tin < kt || hp < 0 || wp < 0 || (tin - kt) % st != 0 || hp % ss != 0 || wp % ss != 0) {
            throw new IllegalArgumentException(op + ": the kernel does not tile the input exactly; got " + describe("x", x)
                    + (cache == null ? "" : " after " + describe("cache", cache)) + " with kernel (" + kt + "," + kh + ","
                    + kw + ") and " + g + ", expected (Tc + Tx − KT) % timeStride = 0 and (H + pads − KH) % spaceStride = 0");
        }
        Shape expected = Shape.of((tin - kt) / st + 1, hp / ss + 1, wp / ss + 1, cout);
        requireActivation(op, "out", out);
        requireShape(op, "out", out, expected);
        return new ConvDims(tc, tx, h, w, cin, kt, kh, kw, expected.dim(0), expected.dim(1), expected.dim(2), cout, g);
    }

    /** upsampleNearest2x's input as (T, H, W, C). */
    public static ConvDims upsampleNearest2x(Tensor out, Tensor x) {
        String op = "upsampleNearest2x";
        requireActivation(op, "x", x);
        requireRank(op, "x", x, 4, "(T, H, W, C)");
        long t = x.shape().dim(0), h = x.shape().dim(1), w = x.shape().dim(2), c = x.shape().dim(3);
        requireActivation(op, "out", out);
        requireShape(op, "out", out, Shape.of(t, 2 * h, 2 * w, c));
        return new ConvDims(0, t, h, w, c, 1, 1, 1, t, 2 * h, 2 * w, c, Backend.ConvGeometry.same(0));
    }

    public static MatrixDims softmax(Tensor out, Tensor x) {
        return rowwise("softmax", out, "out", x);
    }

    // ---------------------------------------------------------------- layout and embeddings

    public static PatchDims patchify(Tensor out, Tensor latents, int channels, int frames, int height, int width) {
        String op = "patchify";
        PatchDims d = patchDims(op, "latents", latents, channels, frames, height, width);
        requireActivation(op, "out", out);
        requireShape(op, "out", out, Shape.of(d.batch, d.tokens(), 4L * channels));
        return d;
    }

    /** For unpatchify (image = out, tokens = tokens) and its backward (image = dOut, tokens = dTokens). */
    public static PatchDims unpatchify(String op, Tensor image, String imageName, Tensor tokens, String tokensName,
                                       int channels, int frames, int height, int width) {
        PatchDims d = patchDims(op, imageName, image, channels, frames, height, width);
        requireActivation(op, tokensName, tokens);
        requireShape(op, tokensName, tokens, Shape.of(d.batch, d.tokens(), 4L * channels));
        return d;
    }

    private static PatchDims patchDims(String op, String name, Tensor image, int channels, int frames, int height,
                                       int width) {
        requireActivation(op, name, image);
        requireRank(op, name, image, 5, "(B, C, F, H, W)");
        if (height % 2 != 0 || width % 2 != 0) {
            throw new IllegalArgumentException(op + ": latent height and width must be even for the (1,2,2) patch; got "
                    + "height=" + height + ", width=" + width + ", expected even sizes");
        }
        requireShape(op, name, image, Shape.of(image.shape().dim(0), channels, frames, height, width));
        return new PatchDims(image.shape().dim(0), channels, frames, height, width);
    }

    public static MatrixDims sinusoidalEmbedding(Tensor out, Tensor timesteps) {
        String op = "sinusoidalEmbedding";
        requireDType(op, "timesteps", timesteps, DType.F32);
        requireDType(op, "out", out, DType.F32);
        requireRank(op, "out", out, 2, "(B, 2·half)");
        requireElements(op, "timesteps", timesteps, out.shape().dim(0));
        if (out.shape().dim(1) % 2 != 0) {
            throw new IllegalArgumentException(op + ": embedding width is odd; got " + describe("out", out)
                    + ", expected out=(B, 2·half)");
        }
        return new MatrixDims(out.shape().dim(0), out.shape().dim(1));
    }

    // ---------------------------------------------------------------- flow matching and loss

    public static void gaussianNoise(Tensor out) {
        requireActivation("gaussianNoise", "out", out);
    }

    /** Returns (B, elements per sample). */
    public static MatrixDims flowMatchingInput(Tensor xt, Tensor target, Tensor x0, Tensor noise, Tensor t) {
        String op = "flowMatchingInput";
        requireActivation(op, "x0", x0);
        requireActivation(op, "noise", noise);
        requireSameShape(op, "noise", noise, "x0", x0);
        requireActivation(op, "xt", xt);
        requireSameShape(op, "xt", xt, "x0", x0);
        requireActivation(op, "target", target);
        requireSameShape(op, "target", target, "x0", x0);
        requireDType(op, "t", t, DType.F32);
        if (x0.shape().rank() == 0) {
            throw new IllegalArgumentException(op + ": x0 has no batch dim; got " + describe("x0", x0)
                    + ", expected x0=(B, …)");
        }
        long b = x0.shape().dim(0);
        requireElements(op, "t", t, b);
        return new MatrixDims(b, b == 0 ? 0 : x0.numElements() / b);
    }

    public static long mseLoss(Tensor loss, Tensor dPred, Tensor pred, Tensor target) {
        String op = "mseLoss";
        requireScalarF32(op, "loss", loss);
        requireActivation(op, "pred", pred);
        requireActivation(op, "target", target);
        requireSameShape(op, "target", target, "pred", pred);
        requireActivation(op, "dPred", dPred);
        requireSameShape(op, "dPred", dPred, "pred", pred);
        if (pred.numElements() == 0) {
            throw new IllegalArgumentException(op + ": empty prediction; got " + describe("pred", pred)
                    + ", expected at least one element");
        }
        return pred.numElements();
    }
}
