package dev.wanlora.engine.backend;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The building blocks of every op's argument checks and the dimension records the checks derive. Each op family's
 * {@code Checked} class ({@link NormOps.Checked}, …) checks its ops with these, so the CPU reference and the CUDA
 * backend reject exactly the same calls with exactly the same messages. Messages follow STYLE.md §7:
 * {@code <op>: <what is wrong>; got <actual>, expected <expected>}.
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

    static void requireIndex(String op, String name, int index, long count) {
        if (index < 0 || index >= count) {
            throw new IllegalArgumentException(op + ": " + name + " out of range; got " + name + "=" + index
                    + ", expected 0 <= " + name + " < " + count);
        }
    }

    static int headDimOf(String op, String name, Tensor t, int numHeads) {
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

    // ---------------------------------------------------------------- shared by the op families

    static MatrixDims rowwise(String op, Tensor out, String outName, Tensor x) {
        requireActivation(op, "x", x);
        requireActivation(op, outName, out);
        requireSameShape(op, outName, out, "x", x);
        return new MatrixDims(x.shape().rows(), x.shape().cols());
    }

    static void requireStats(String op, Tensor t, String name, MatrixDims d) {
        requireDType(op, name, t, DType.F32);
        requireElements(op, name, t, d.rows);
    }

    static void requireOptionalVector(String op, String name, Tensor t, long cols) {
        if (t == null) return;
        requireActivation(op, name, t);
        requireElements(op, name, t, cols);
    }

    static TokenDims tokens(String op, String name, Tensor x, Tensor mod) {
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

    public static long sameCount(String op, String outName, Tensor out, String inName, Tensor in) {
        requireActivation(op, inName, in);
        requireActivation(op, outName, out);
        if (out.numElements() != in.numElements()) {
            throw new IllegalArgumentException(op + ": element counts differ; got " + describe(outName, out) + " and "
                    + describe(inName, in) + ", expected equal element counts");
        }
        return in.numElements();
    }

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

    /** The operands of an aliasing check, as the backend's tensor type. */
    @SafeVarargs
    static <T> T[] array(T... tensors) { return tensors; }
}
