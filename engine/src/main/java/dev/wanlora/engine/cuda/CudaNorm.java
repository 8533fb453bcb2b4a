package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.NormOps;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.backend.OpChecks.TokenDims;
import dev.wanlora.engine.tensor.DType;

/**
 * Launchers of the norm kernels ({@code kernels/src/main/cuda/norm/}): LayerNorm and RMSNorm, forward and backward.
 * A row of up to 8192 columns is held in registers by one block (row.cuh); the backward's parameter gradients are
 * per-block column partials in the scratch buffer, summed in block order by {@code column_sum_fwd_f32}, so every
 * result is deterministic.
 */
final class CudaNorm implements NormOps.Kernels<CudaTensor> {
    /** The widest row one block holds: 8 elements per thread × 1024 threads (row.cuh's ROW_ELEMS). */
    static final long MAX_COLS = 8192;

    private final Launcher launcher;

    CudaNorm(Launcher launcher) { this.launcher = launcher; }

    /** Block size for a row of {@code cols}: one thread per group of VEC columns, a multiple of 32, at most 1024. */
    private static int rowThreads(long cols, boolean vec) {
        long groups = vec ? cols / 8 : cols;
        return (int) Math.max(32, Math.min(1024, (groups + 31) / 32 * 32));
    }

    private static void requireWidth(String op, MatrixDims d) {
        if (d.cols() > MAX_COLS) {
            throw new UnsupportedOperationException(op + " (cuda): rows of " + d.cols() + " columns; supported: at most "
                    + MAX_COLS + " columns");
        }
    }

    /** Rows per block for a backward pass: one row per block unless column partials are needed. */
    private int rowsPerBlock(long rows, boolean partials) {
        if (!partials) return 1;
        long blocks = Math.min(rows, 2L * launcher.multiprocessorCount());
        return (int) Math.max(1, (rows + blocks - 1) / blocks);
    }

    @Override
    public void layerNorm(CudaTensor out, CudaTensor mean, CudaTensor rstd, CudaTensor x, CudaTensor w, CudaTensor b,
                          float eps, MatrixDims d) {
        if (w != null && b != null) CudaElementwise.requireSame("layerNorm", "weight", w.dtype(), "bias", b.dtype());
        requireWidth("layerNorm", d);
        if (d.rows() == 0) return;
        boolean vec = d.cols() % 8 == 0 && Launcher.aligned16(out, x, w, b);
        Kernel k = Launcher.kernel("layerNorm", "layer_norm_fwd", x.dtype(), out.dtype());
        launcher.launch(k, LaunchConfig.of(d.rows(), rowThreads(d.cols(), vec)), out, mean, rstd, x, w, b,
                Launcher.paramType(w != null ? w : b), (int) d.cols(), eps, vec ? 1 : 0);
    }

    @Override
    public void layerNormBackward(CudaTensor dx, CudaTensor dWeight, CudaTensor dBias, CudaTensor dOut, CudaTensor x,
                                  CudaTensor w, CudaTensor mean, CudaTensor rstd, boolean accumulate, MatrixDims d) {
        CudaElementwise.requireSame("layerNormBackward", "dOut", dOut.dtype(), "x", x.dtype());
        requireWidth("layerNormBackward", d);
        if (d.rows() == 0) return;
        boolean partials = dWeight != null || dBias != null;
        int rowsPerBlock = rowsPerBlock(d.rows(), partials);
        long blocks = (d.rows() + rowsPerBlock - 1) / rowsPerBlock;
        long partialW = 0, partialB = 0;
        if (partials) {
            long bytes = blocks * d.cols() * 4;
            long base = launcher.scratch(2 * bytes);
            partialW = dWeight != null ? base : 0;
            partialB = dBias != null ? base + bytes : 0;
        }
        boolean vec = d.cols() % 8 == 0 && Launcher.aligned16(dx, dOut, x, w);
        Kernel k = Launcher.kernel("layerNormBackward", "layer_norm_bwd", x.dtype(), dx.dtype());
        launcher.launch(k, LaunchConfig.of(blocks, rowThreads(d.cols(), vec)), dx, partialW, partialB, dOut, x, w,
                Launcher.paramType(w), mean, rstd, d.rows(), (int) d.cols(), accumulate ? 1 : 0, rowsPerBlock, vec ? 1 : 0);
        if (dWeight != null) columnSum(dWeight, partialW, blocks, d.cols());
        if (dBias != null) columnSum(dBias, partialB, blocks, d.cols());
    }

    /** layer_norm_modulate_fwd (layer_norm_modulate.cu): one block per row like {@link #layerNorm}. */
    @Override
    public void layerNormModulate(CudaTensor out, CudaTensor mean, CudaTensor rstd, CudaTensor x, CudaTensor mod,
                                  int shift, int scale, float eps, TokenDims d) {
        MatrixDims rows = new MatrixDims(d.batch() * d.tokens(), d.channels());
        requireWidth("layerNormModulate", rows);
        if (rows.rows() == 0) return;
        boolean vec = d.channels() % 8 == 0 && Launcher.aligned16(out, x, mod);
        Kernel k = Launcher.kernel("layerNormModulate", "layer_norm_modulate_fwd", x.dtype(), out.dtype());
        launcher.launch(k, LaunchConfig.of(rows.rows(), rowThreads(d.channels(), vec)), out, mean, rstd, x, mod,
                (int) mod.shape().dim(1), shift, scale, d.tokens(), (int) d.channels(), eps, vec ? 1 : 0);
    }

    /** layer_norm_modulate_bwd (layer_norm_modulate.cu): one block per row; dOut and x share a dtype. */
    @Override
    public void layerNormModulateBackward(CudaTensor dx, CudaTensor dOut, CudaTensor x, CudaTensor mean, CudaTensor rstd,
                                          CudaTensor mod, int scale, boolean accumulate, TokenDims d) {
        CudaElementwise.requireSame("layerNormModulateBackward", "dOut", dOut.dtype(), "x", x.dtype());
        MatrixDims rows = new MatrixDims(d.batch() * d.tokens(), d.channels());
        requireWidth("layerNormModulateBackward", rows);
        if (rows.rows() == 0) return;
        boolean vec = d.channels() % 8 == 0 && Launcher.aligned16(dx, dOut, x, mod);
        Kernel k = Launcher.kernel("layerNormModulateBackward", "layer_norm_modulate_bwd", x.dtype(), dx.dtype());
        launcher.launch(k, LaunchConfig.of(rows.rows(), rowThreads(d.channels(), vec)), dx, dOut, x, mean, rstd, mod,
                (int) mod.shape().dim(1), scale, d.tokens(), (int) d.channels(), accumulate ? 1 : 0, vec ? 1 : 0);
    }

    @Override
    public void rmsNorm(CudaTensor out, CudaTensor rstd, CudaTensor x, CudaTensor w, float eps, MatrixDims d) {
        requireWidth("rmsNorm", d);
        if (d.rows() == 0) return;
        boolean vec = d.cols() % 8 == 0 && Launcher.aligned16(out, x, w);
        Kernel k = Launcher.kernel("rmsNorm", "rms_norm_fwd", x.dtype(), out.dtype());
        launcher.launch(k, LaunchConfig.of(d.rows(), rowThreads(d.cols(), vec)), out, rstd, x, w, Launcher.paramType(w),
                (int) d.cols(), eps, vec ? 1 : 0);
    }

    /**
     * rms_norm_silu_fwd_bf16 (rms_norm_silu.cu) when x and out are bf16, C % 8 == 0, C ≤ 1024 and x, out, w are 16-byte
     * aligned: L lanes per row (the power of two ≥ C/8, at most 32), 256 threads a block, grid-stride over rows.
     * Otherwise the unfused chain: {@link #rmsNorm} into out, then silu_fwd in place.
     */
    @Override
    public void rmsNormSilu(CudaTensor out, CudaTensor rstd, CudaTensor x, CudaTensor w, float eps, MatrixDims d) {
        if (x.dtype() != DType.BF16 || out.dtype() != DType.BF16 || d.cols() % 8 != 0 || d.cols() > 1024
                || !Launcher.aligned16(out, x, w)) {
            rmsNorm(out, rstd, x, w, eps, d);
            long n = out.numElements();
            if (n > 0) {
                launcher.launch(Launcher.kernel("silu", "silu_fwd", out.dtype(), out.dtype()), launcher.cover((n + 7) / 8),
                        out, out, n);
            }
            return;
        }
        if (d.rows() == 0) return;
        int lanes = Integer.highestOneBit((int) Math.max(1, d.cols() / 8));
        if (lanes * 8 < d.cols()) lanes *= 2;
        lanes = Math.min(32, lanes);
        long rowsPerBlock = Launcher.THREADS / 32 * (32 / lanes);
        launcher.launch(Kernel.RMS_NORM_SILU_FWD_BF16, launcher.cover((d.rows() + rowsPerBlock - 1) / rowsPerBlock * Launcher.THREADS),
                out, rstd, x, w, Launcher.paramType(w), d.rows(), (int) d.cols(), lanes, eps);
    }

    @Override
    public void rmsNormBackward(CudaTensor dx, CudaTensor dWeight, CudaTensor dOut, CudaTensor x, CudaTensor w,
                                CudaTensor rstd, MatrixDims d) {
        CudaElementwise.requireSame("rmsNormBackward", "dOut", dOut.dtype(), "x", x.dtype());
        requireWidth("rmsNormBackward", d);
        if (d.rows() == 0) return;
        int rowsPerBlock = rowsPerBlock(d.rows(), dWeight != null);
        long blocks = (d.rows() + rowsPerBlock - 1) / rowsPerBlock;
        long partialW = dWeight != null ? launcher.scratch(blocks * d.cols() * 4) : 0;
        boolean vec = d.cols() % 8 == 0 && Launcher.aligned16(dx, dOut, x, w);
        Kernel k = Launcher.kernel("rmsNormBackward", "rms_norm_bwd", x.dtype(), dx.dtype());
        launcher.launch(k, LaunchConfig.of(blocks, rowThreads(d.cols(), vec)), dx, partialW, dOut, x, w,
                Launcher.paramType(w), rstd, d.rows(), (int) d.cols(), rowsPerBlock, vec ? 1 : 0);
        if (dWeight != null) columnSum(dWeight, partialW, blocks, d.cols());
    }

    /** param[c] += Σ_b partial[b·C + c]. */
    private void columnSum(CudaTensor param, long partial, long blocks, long cols) {
        launcher.launch(Kernel.COLUMN_SUM_FWD_F32, LaunchConfig.of((cols + 255) / 256, 256), param, Launcher.paramType(param),
                partial, (int) blocks, (int) cols);
    }
}
