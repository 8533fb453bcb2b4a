package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.OpChecks.ConvDims;
import dev.wanlora.engine.backend.VideoOps;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;

/**
 * Launchers of the Wan VAE's video kernels ({@code kernels/src/main/cuda/video/}): the implicit-GEMM convolution
 * with its frame cache (on tensor cores for bf16, else on CUDA cores), nearest 2× upsampling and the row softmax. The
 * kernels' headers give thread mapping and numerics; none has a size or alignment requirement (the tensor-core
 * convolution's are checked here), and none allocates.
 */
final class CudaVideo implements VideoOps.Kernels<CudaTensor> {
    /** conv3d.cu's output tile (CONV_BM positions × CONV_BN channels) and block size. */
    private static final int CONV_TILE_M = 64, CONV_TILE_N = 64, CONV_THREADS = 256;
    /** conv3d_tc.cu's pipeline: stages, K tile and bf16 row pitch (TC_STAGES, TC_BK + 8). */
    private static final int TC_STAGES = 4, TC_ROW_PITCH = 32 + 8;

    /** One of conv3d_tc.cu's tile shapes: BM positions × BN channels, its threads (32 per warp tile). */
    private record TcTile(Kernel kernel, int m, int n, int threads) {
        /** conv3d_tc_smem_bytes: the pipeline, or the bf16 epilogue tile (BN + 8 pitch) if larger; ≤ 80 KiB. */
        int sharedBytes() { return Math.max(TC_STAGES * (m + n) * TC_ROW_PITCH * 2, m * (n + 8) * 2); }

        long blocks(long positions, long outChannels) { return ((positions + m - 1) / m) * ((outChannels + n - 1) / n); }
    }

    private static final TcTile TC_128 = new TcTile(Kernel.CONV3D_TC128X128_FWD_BF16, 128, 128, 256);
    private static final TcTile TC_96 = new TcTile(Kernel.CONV3D_TC128X96_FWD_BF16, 128, 96, 256);
    private static final TcTile TC_64 = new TcTile(Kernel.CONV3D_TC64X64_FWD_BF16, 64, 64, 128);
    private static final TcTile TC_NARROW = new TcTile(Kernel.CONV3D_TC128X8_FWD_BF16, 128, 8, 256);
    /** Threads per softmax row (a multiple of 32). */
    private static final int SOFTMAX_THREADS = 256;

    private final Launcher launcher;

    CudaVideo(Launcher launcher) { this.launcher = launcher; }

    /**
     * bf16 with Cin % 8 == 0 and 16-byte aligned inputs (every convolution of the release VAE but the encoder's first,
     * Cin = 3) runs on tensor cores (conv3d_tc.cu): the 128×128 tile when Cout % 128 == 0 (384), 128×96 when
     * Cout % 96 == 0 (96, 192), 128×8 when Cout ≤ 8 (the head's 3), else 64×64; a 128-row tile whose grid would not
     * give every multiprocessor two blocks (one latent frame at 48×48: 54 blocks) takes the 64×64 tile instead.
     * Anything else runs on the CUDA-core kernel.
     */
    @Override
    public void conv3d(CudaTensor out, CudaTensor cache, CudaTensor x, CudaTensor w, CudaTensor bias, ConvDims d) {
        long positions = d.outFrames() * d.outHeight() * d.outWidth();
        if (positions == 0) return;
        Kernel k = Launcher.kernel("conv3d", "conv3d_fwd", x.dtype(), w.dtype(), out.dtype());
        var g = d.geometry();
        Object[] args = {out, cache, x, w, bias, Launcher.paramType(bias), (int) d.cacheFrames(), (int) d.height(),
                (int) d.width(), (int) d.inChannels(), (int) d.kt(), (int) d.kh(), (int) d.kw(), (int) d.outFrames(),
                (int) d.outHeight(), (int) d.outWidth(), (int) d.outChannels(), g.timeStride(), g.spaceStride(),
                g.padBefore()};
        if (k == Kernel.CONV3D_FWD_BF16 && d.inChannels() % 8 == 0 && Launcher.aligned16(x, cache, w)) {
            long cout = d.outChannels();
            TcTile t = cout <= 8 ? TC_NARROW : cout % 128 == 0 ? TC_128 : cout % 96 == 0 ? TC_96 : TC_64;
            if (t.m() == 128 && t != TC_NARROW && t.blocks(positions, cout) < 2L * launcher.multiprocessorCount()) t = TC_64;
            launcher.launch(t.kernel(), LaunchConfig.of(t.blocks(positions, cout), t.threads(), t.sharedBytes()), args);
            return;
        }
        launcher.launch(k, LaunchConfig.of((positions + CONV_TILE_M - 1) / CONV_TILE_M,
                (d.outChannels() + CONV_TILE_N - 1) / CONV_TILE_N, CONV_THREADS, 0), args);
    }

    @Override
    public void upsampleNearest2x(CudaTensor out, CudaTensor x, ConvDims d) {
        if (out.numElements() == 0) return;
        Kernel k = Launcher.kernel("upsampleNearest2x", "upsample_nearest2x_fwd", x.dtype(), out.dtype());
        launcher.launch(k, launcher.cover(out.numElements()), out, x, d.inFrames(), (int) d.height(), (int) d.width(),
                (int) d.inChannels());
    }

    @Override
    public void softmax(CudaTensor out, CudaTensor x, float scale, MatrixDims d) {
        if (d.rows() == 0 || d.cols() == 0) return;
        Kernel k = Launcher.kernel("softmax", "softmax_fwd", x.dtype(), out.dtype());
        launcher.launch(k, LaunchConfig.of(d.rows(), SOFTMAX_THREADS), out, x, scale, d.rows(), Math.toIntExact(d.cols()));
    }
}
