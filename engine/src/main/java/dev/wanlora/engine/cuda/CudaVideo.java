package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.OpChecks.ConvDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;

/**
 * Launchers of the Wan VAE's video kernels ({@code kernels/src/main/cuda/video/}): the implicit-GEMM convolution
 * with its frame cache (on tensor cores for bf16, else on CUDA cores), nearest 2× upsampling and the row softmax. The kernels' headers give thread mapping and
 * numerics; none has a size or alignment requirement, and none allocates.
 */
final class CudaVideo {
    /** conv3d.cu's output tile (CONV_BM positions × CONV_BN channels) and block size. */
    private static final int CONV_TILE_M = 64, CONV_TILE_N = 64, CONV_THREADS = 256;
    /** conv3d_mma.cu's output tiles (128 × 64, or 128 × 96 for Cout % 96 == 0), also 256 threads. */
    private static final int MMA_TILE_M = 128, MMA_TILE_N = 64, MMA_WIDE_TILE_N = 96;
    /** Threads per softmax row (a multiple of 32). */
    private static final int SOFTMAX_THREADS = 256;

    private final Launcher launcher;

    CudaVideo(Launcher launcher) { this.launcher = launcher; }

    /**
     * bf16 with Cin % 8 == 0 and 16-byte aligned inputs (every convolution of the release VAE but the encoder's first,
     * Cin = 3) runs on tensor cores ({@code conv3d_mma96_fwd_bf16} when Cout % 96 == 0, as for 96, 192 and 384
     * channels, else {@code conv3d_mma_fwd_bf16}); anything else on the CUDA-core kernel.
     */
    void conv3d(CudaTensor out, CudaTensor cache, CudaTensor x, CudaTensor w, CudaTensor bias, ConvDims d) {
        long positions = d.outFrames() * d.outHeight() * d.outWidth();
        if (positions == 0) return;
        Kernel k = Launcher.kernel("conv3d", "conv3d_fwd", x.dtype(), w.dtype(), out.dtype());
        int tileM = CONV_TILE_M, tileN = CONV_TILE_N;
        if (k == Kernel.CONV3D_FWD_BF16 && d.inChannels() % 8 == 0 && Launcher.aligned16(x, cache, w)) {
            boolean wide = d.outChannels() % MMA_WIDE_TILE_N == 0;
            k = wide ? Kernel.CONV3D_MMA96_FWD_BF16 : Kernel.CONV3D_MMA_FWD_BF16;
            tileM = MMA_TILE_M;
            tileN = wide ? MMA_WIDE_TILE_N : MMA_TILE_N;
        }
        var g = d.geometry();
        launcher.launch(k, LaunchConfig.of((positions + tileM - 1) / tileM, (d.outChannels() + tileN - 1) / tileN,
                        CONV_THREADS, 0),
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
