package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.OpChecks.ConvDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;

/**
 * Launchers of the Wan VAE's video kernels ({@code kernels/src/main/cuda/video/}): the implicit-GEMM convolution
 * with its frame cache, nearest 2× upsampling and the row softmax. The kernels' headers give thread mapping and
 * numerics; none has a size or alignment requirement, and none allocates.
 */
final class CudaVideo {
    /** conv3d.cu's output tile (CONV_BM positions × CONV_BN channels) and block size. */
    private static final int CONV_TILE_M = 64, CONV_TILE_N = 64, CONV_THREADS = 256;
    /** Threads per softmax row (a multiple of 32). */
    private static final int SOFTMAX_THREADS = 256;

    private final Launcher launcher;

    CudaVideo(Launcher launcher) { this.launcher = launcher; }

    void conv3d(CudaTensor out, CudaTensor cache, CudaTensor x, CudaTensor w, CudaTensor bias, ConvDims d) {
        long positions = d.outFrames() * d.outHeight() * d.outWidth();
        if (positions == 0) return;
        Kernel k = Launcher.kernel("conv3d", "conv3d_fwd", x.dtype(), w.dtype(), out.dtype());
        var g = d.geometry();
        launcher.launch(k, LaunchConfig.of((positions + CONV_TILE_M - 1) / CONV_TILE_M,
                        (d.outChannels() + CONV_TILE_N - 1) / CONV_TILE_N, CONV_THREADS, 0),
                out, cache, x, w, bias, Launcher.paramType(bias), (int) d.cacheFrames(), (int) d.height(),
                (int) d.width(), (int) d.inChannels(), (int) d.kt(), (int) d.kh(), (int) d.kw(), (int) d.outFrames(),
                (int) d.outHeight(), (int) d.outWidth(), (int) d.outChannels(), g.timeStride(), g.spaceStride(),
                g.padBefore());
    }

    void upsampleNearest2x(CudaTensor out, CudaTensor x, ConvDims d) {
        if (out.numElements() == 0) return;
        Kernel k = Launcher.kernel("upsampleNearest2x", "upsample_nearest2x_fwd", x.dtype(), out.dtype());
        launcher.launch(k, launcher.cover(out.numElements()), out, x, d.inFrames(), (int) d.height(), (int) d.width(),
                (int) d.inChannels());
    }

    void softmax(CudaTensor out, CudaTensor x, float scale, MatrixDims d) {
        if (d.rows() == 0 || d.cols() == 0) return;
        Kernel k = Launcher.kernel("softmax", "softmax_fwd", x.dtype(), out.dtype());
        launcher.launch(k, LaunchConfig.of(d.rows(), SOFTMAX_THREADS), out, x, scale, d.rows(), Math.toIntExact(d.cols()));
    }
}
