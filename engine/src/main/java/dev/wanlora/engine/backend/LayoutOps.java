package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.backend.OpChecks.PatchDims;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import static dev.wanlora.engine.backend.OpChecks.*;

/**
 * The layout and embedding family of {@link Backend}: Wan's patch layout and time embedding, umT5's token embedding
 * and relative-position bias. Contracts, their checks ({@link Checked}, once for every backend) and the hooks a
 * backend implements ({@link Kernels}); the recipe is in {@link Backend}'s class comment.
 */
public interface LayoutOps {

    /** This backend's checked layout and embedding ops; the defaults below forward here. */
    Checked<?> layoutOps();

    /**
     * Patch extraction for a (1,2,2) patch: latents (B, Cin, F, H, W) → out (B, F·(H/2)·(W/2), Cin·4) with token
     * index (f·H/2 + h)·W/2 + w and patch element c·4 + kh·2 + kw (the Conv3d weight order). H, W even.
     */
    default void patchify(Tensor out, Tensor latents, int channels, int frames, int height, int width) {
        layoutOps().patchify(out, latents, channels, frames, height, width);
    }

    /**
     * Inverse layout of Wan's head: tokens (B, L, 4·Cout) with feature ph·2·Cout + pw·Cout + ch →
     * out (B, Cout, F, H, W) with out(ch, f, 2h+ph, 2w+pw). height/width are the full latent sizes.
     */
    default void unpatchify(Tensor out, Tensor tokens, int channels, int frames, int height, int width) {
        layoutOps().unpatchify(out, tokens, channels, frames, height, width);
    }

    /** Backward of {@link #unpatchify}: the gather in the other direction (=). */
    default void unpatchifyBackward(Tensor dTokens, Tensor dOut, int channels, int frames, int height, int width) {
        layoutOps().unpatchifyBackward(dTokens, dOut, channels, frames, height, width);
    }

    /**
     * Wan's sinusoidal time embedding in float64, stored as F32: out (B, 2·half) = [cos(t·ω_j), sin(t·ω_j)],
     * ω_j = 10000^(−j/half), j &lt; half; cosine first. timesteps (B) F32.
     */
    default void sinusoidalEmbedding(Tensor out, Tensor timesteps) { layoutOps().sinusoidalEmbedding(out, timesteps); }

    /**
     * Embedding gather: out[r, :] = table[ids[r], :]. table (V, C); out (R, C) (=); ids (R) F32 holding integer token
     * ids in [0, V) (exact in F32 below 2²⁴; umT5's vocabulary is 256384). Values are copied, rounded to out's dtype.
     * An id that is not an integer in [0, V) is a caller error: the CPU throws; CUDA writes NaN into that row.
     */
    default void embedding(Tensor out, Tensor table, Tensor ids) { layoutOps().embedding(out, table, ids); }

    /**
     * T5's relative-position bias, gathered per head: out[h, i, j] = table[buckets[j − i + Lq − 1], h].
     * table (numBuckets, N); out (N, Lq, Lk) (=); buckets (Lq + Lk − 1) F32 holding the integer bucket of each
     * relative position j − i = −(Lq − 1) … Lk − 1 (computed by the model, T5's bucket rule).
     */
    default void relativePositionBias(Tensor out, Tensor table, Tensor buckets) {
        layoutOps().relativePositionBias(out, table, buckets);
    }

    /** A backend's layout family, called by {@link Checked} with checked arguments of the backend's tensor type. */
    interface Kernels<T extends Tensor> {
        void patchify(T out, T latents, PatchDims dims);
        void unpatchify(T out, T tokens, PatchDims dims);
        void unpatchifyBackward(T dTokens, T dOut, PatchDims dims);
        void sinusoidalEmbedding(T out, T timesteps, MatrixDims dims);
        void embedding(T out, T table, T ids, MatrixDims dims);
        void relativePositionBias(T out, T table, T buckets, AttentionDims dims);
    }

    /** The checks of every layout op (shapes, dtypes, ownership, aliasing), then the backend's {@link Kernels}. */
    final class Checked<T extends Tensor> {
        private final CheckedBackend<T> backend;
        private final Kernels<T> kernels;

        public Checked(CheckedBackend<T> backend, Kernels<T> kernels) {
            this.backend = backend;
            this.kernels = kernels;
        }

        public void patchify(Tensor out, Tensor latents, int channels, int frames, int height, int width) {
            String op = "patchify";
            PatchDims d = patchDims(op, "latents", latents, channels, frames, height, width);
            requireActivation(op, "out", out);
            requireShape(op, "out", out, Shape.of(d.batch(), d.tokens(), 4L * channels));
            T to = backend.own(op, "out", out), tl = backend.own(op, "latents", latents);
            backend.alias().disjoint(op, "out", to, "latents", tl);
            kernels.patchify(to, tl, d);
        }

        public void unpatchify(Tensor out, Tensor tokens, int channels, int frames, int height, int width) {
            String op = "unpatchify";
            PatchDims d = unpatchDims(op, out, "out", tokens, "tokens", channels, frames, height, width);
            T to = backend.own(op, "out", out), tt = backend.own(op, "tokens", tokens);
            backend.alias().disjoint(op, "out", to, "tokens", tt);
            kernels.unpatchify(to, tt, d);
        }

        public void unpatchifyBackward(Tensor dTokens, Tensor dOut, int channels, int frames, int height, int width) {
            String op = "unpatchifyBackward";
            PatchDims d = unpatchDims(op, dOut, "dOut", dTokens, "dTokens", channels, frames, height, width);
            T tt = backend.own(op, "dTokens", dTokens), to = backend.own(op, "dOut", dOut);
            backend.alias().disjoint(op, "dTokens", tt, "dOut", to);
            kernels.unpatchifyBackward(tt, to, d);
        }

        public void sinusoidalEmbedding(Tensor out, Tensor timesteps) {
            String op = "sinusoidalEmbedding";
            requireDType(op, "timesteps", timesteps, DType.F32);
            requireDType(op, "out", out, DType.F32);
            requireRank(op, "out", out, 2, "(B, 2·half)");
            requireElements(op, "timesteps", timesteps, out.shape().dim(0));
            if (out.shape().dim(1) % 2 != 0) {
                throw new IllegalArgumentException(op + ": embedding width is odd; got " + describe("out", out)
                        + ", expected out=(B, 2·half)");
            }
            T to = backend.own(op, "out", out), tt = backend.own(op, "timesteps", timesteps);
            backend.alias().disjoint(op, "out", to, "timesteps", tt);
            kernels.sinusoidalEmbedding(to, tt, new MatrixDims(out.shape().dim(0), out.shape().dim(1)));
        }

        public void embedding(Tensor out, Tensor table, Tensor ids) {
            String op = "embedding";
            requireActivation(op, "table", table);
            requireRank(op, "table", table, 2, "(V, C)");
            requireDType(op, "ids", ids, DType.F32);
            requireRank(op, "ids", ids, 1, "(R)");
            requireActivation(op, "out", out);
            requireShape(op, "out", out, Shape.of(ids.shape().dim(0), table.shape().dim(1)));
            T to = backend.own(op, "out", out), tt = backend.own(op, "table", table), ti = backend.own(op, "ids", ids);
            backend.alias().outputs(op, new String[] {"out"}, array(to), new String[] {"table", "ids"}, array(tt, ti));
            kernels.embedding(to, tt, ti, new MatrixDims(ids.shape().dim(0), table.shape().dim(1)));
        }

        public void relativePositionBias(Tensor out, Tensor table, Tensor buckets) {
            String op = "relativePositionBias";
            requireActivation(op, "table", table);
            requireRank(op, "table", table, 2, "(numBuckets, N)");
            requireActivation(op, "out", out);
            requireRank(op, "out", out, 3, "(N, Lq, Lk)");
            long heads = table.shape().dim(1), lq = out.shape().dim(1), lk = out.shape().dim(2);
            if (out.shape().dim(0) != heads) {
                throw new IllegalArgumentException(op + ": out's head count does not match table; got "
                        + describe("out", out) + " and " + describe("table", table) + ", expected out=(" + heads
                        + ", Lq, Lk)");
            }
            requireDType(op, "buckets", buckets, DType.F32);
            requireShape(op, "buckets", buckets, Shape.of(Math.max(0, lq + lk - 1)));
            T to = backend.own(op, "out", out), tt = backend.own(op, "table", table);
            T tb = backend.own(op, "buckets", buckets);
            backend.alias().outputs(op, new String[] {"out"}, array(to), new String[] {"table", "buckets"},
                    array(tt, tb));
            kernels.relativePositionBias(to, tt, tb, new AttentionDims(1, lq, lk, Math.toIntExact(heads), 0));
        }

        /** For unpatchify (image = out, tokens = tokens) and its backward (image = dOut, tokens = dTokens). */
        private static PatchDims unpatchDims(String op, Tensor image, String imageName, Tensor tokens,
                                             String tokensName, int channels, int frames, int height, int width) {
            PatchDims d = patchDims(op, imageName, image, channels, frames, height, width);
            requireActivation(op, tokensName, tokens);
            requireShape(op, tokensName, tokens, Shape.of(d.batch(), d.tokens(), 4L * channels));
            return d;
        }

        private static PatchDims patchDims(String op, String name, Tensor image, int channels, int frames, int height,
                                           int width) {
            requireActivation(op, name, image);
            requireRank(op, name, image, 5, "(B, C, F, H, W)");
            if (height % 2 != 0 || width % 2 != 0) {
                throw new IllegalArgumentException(op + ": latent height and width must be even for the (1,2,2) patch; "
                        + "got height=" + height + ", width=" + width + ", expected even sizes");
            }
            requireShape(op, name, image, Shape.of(image.shape().dim(0), channels, frames, height, width));
            return new PatchDims(image.shape().dim(0), channels, frames, height, width);
        }
    }
}
