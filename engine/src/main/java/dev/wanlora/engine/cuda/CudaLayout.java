package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.LayoutOps;
import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.backend.OpChecks.PatchDims;

/**
 * Launchers of the layout and embedding kernels ({@code kernels/src/main/cuda/layout/}, {@code embedding/}), the
 * {@code LayoutOps} family: one thread per output element, grid-stride.
 */
final class CudaLayout implements LayoutOps.Kernels<CudaTensor> {
    private final Launcher launcher;

    CudaLayout(Launcher launcher) { this.launcher = launcher; }

    @Override
    public void patchify(CudaTensor out, CudaTensor latents, PatchDims d) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("patchify", "patchify_fwd", latents.dtype(), out.dtype()), launcher.cover(n), out, latents, (int) d.batch(), d.channels(), d.frames(), d.height(), d.width());
    }

    @Override
    public void unpatchify(CudaTensor out, CudaTensor tokens, PatchDims d) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("unpatchify", "unpatchify_fwd", tokens.dtype(), out.dtype()), launcher.cover(n), out, tokens, (int) d.batch(), d.channels(), d.frames(), d.height(), d.width());
    }

    @Override
    public void unpatchifyBackward(CudaTensor dTokens, CudaTensor dOut, PatchDims d) {
        long n = dTokens.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("unpatchifyBackward", "unpatchify_bwd", dOut.dtype(), dTokens.dtype()), launcher.cover(n), dTokens, dOut, (int) d.batch(), d.channels(), d.frames(), d.height(), d.width());
    }

    @Override
    public void sinusoidalEmbedding(CudaTensor out, CudaTensor timesteps, MatrixDims d) {
        long half = d.cols() / 2;
        if (d.rows() * half > 0) {
            launcher.launch(Kernel.SINUSOIDAL_EMBEDDING_FWD_F32, launcher.cover(d.rows() * half), out, timesteps,
                    (int) d.rows(), (int) half);
        }
    }

    @Override
    public void embedding(CudaTensor out, CudaTensor table, CudaTensor ids, MatrixDims d) {
        long n = out.numElements();
        if (n > 0) {
            launcher.launch(Launcher.kernel("embedding", "embedding_fwd", table.dtype(), out.dtype()), launcher.cover(n), out,
                    table, ids, d.rows(), d.cols(), table.shape().dim(0));
        }
    }

    @Override
    public void relativePositionBias(CudaTensor out, CudaTensor table, CudaTensor buckets, AttentionDims d) {
        long n = out.numElements();
        if (n > 0) {
            launcher.launch(Launcher.kernel("relativePositionBias", "relative_position_bias_fwd", table.dtype(), out.dtype()),
                    launcher.cover(n), out, table, buckets, d.heads(), d.queries(), d.keys(), (int) table.shape().dim(0));
        }
    }
}
