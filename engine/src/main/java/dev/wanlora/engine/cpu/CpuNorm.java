package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.NormOps;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.backend.OpChecks.TokenDims;
import dev.wanlora.engine.tensor.DType;

/**
 * LayerNorm and RMSNorm over the last dim, forward and backward. Row statistics are computed in double (two-pass
 * variance); saved mean/rstd are rounded to F32. Weight gradients reduce over rows per column, in row order, so they
 * are deterministic.
 */
final class CpuNorm implements NormOps.Kernels<CpuTensor> {
    private static final CpuElementwise ELEMENTWISE = new CpuElementwise();
    private static final CpuModulation MODULATION = new CpuModulation();

    /** out = (x − mean)·rstd·weight + bias; see Backend#layerNorm. */
    @Override
    public void layerNorm(CpuTensor out, CpuTensor mean, CpuTensor rstd, CpuTensor x, CpuTensor weight,
                          CpuTensor bias, float eps, MatrixDims d) {
        int cols = (int) d.cols();
        CpuRows.forEach(d.rows(), 4L * cols, r -> {
            int base = r * cols;
            double sum = 0;
            for (int c = 0; c < cols; c++) sum += x.get(base + c);
            double mu = sum / cols;
            double sq = 0;
            for (int c = 0; c < cols; c++) {
                double t = x.get(base + c) - mu;
                sq += t * t;
            }
            double rs = 1 / Math.sqrt(sq / cols + eps);
            for (int c = 0; c < cols; c++) {
                double v = (x.get(base + c) - mu) * rs;
                if (weight != null) v *= weight.get(c);
                if (bias != null) v += bias.get(c);
                out.store(base + c, v);
            }
            mean.store(r, mu);
            rstd.store(r, rs);
        });
    }

    /**
     * Forward: xhat = (x − mean)·rstd, y = xhat·w + b. So dxhat = dy·w,
     * dx = rstd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat)), dw = Σ_rows dy·xhat, db = Σ_rows dy.
     */
    @Override
    public void layerNormBackward(CpuTensor dx, CpuTensor dWeight, CpuTensor dBias, CpuTensor dOut, CpuTensor x,
                                  CpuTensor weight, CpuTensor mean, CpuTensor rstd, boolean accumulate,
                                  MatrixDims d) {
        int rows = (int) d.rows(), cols = (int) d.cols();
        if (dWeight != null || dBias != null) {
            CpuRows.forEach(cols, 2L * rows, c -> {
                double dw = 0, db = 0;
                for (int r = 0; r < rows; r++) {
                    double g = dOut.get(r * cols + c);
                    dw += g * (x.get(r * cols + c) - mean.get(r)) * rstd.get(r);
                    db += g;
                }
                if (dWeight != null) dWeight.store(c, dWeight.get(c) + dw);
                if (dBias != null) dBias.store(c, dBias.get(c) + db);
            });
        }
        CpuRows.forEach(rows, 6L * cols, r -> {
            int base = r * cols;
            double mu = mean.get(r), rs = rstd.get(r);
            double sumG = 0, sumGx = 0;
            for (int c = 0; c < cols; c++) {
                double g = dOut.get(base + c) * (weight == null ? 1.0 : weight.get(c));
                sumG += g;
                sumGx += g * (x.get(base + c) - mu) * rs;
            }
            double meanG = sumG / cols, meanGx = sumGx / cols;
            for (int c = 0; c < cols; c++) {
                double g = dOut.get(base + c) * (weight == null ? 1.0 : weight.get(c));
                double xhat = (x.get(base + c) - mu) * rs;
                double v = rs * (g - meanG - xhat * meanGx);
                if (accumulate) v += dx.get(base + c);
                dx.store(base + c, v);
            }
        });
    }

    /** n = out.dtype(x·rstd), out = out.dtype(n·out.dtype(weight)); see Backend#rmsNorm. */
    @Override
    public void rmsNorm(CpuTensor out, CpuTensor rstd, CpuTensor x, CpuTensor weight, float eps, MatrixDims d) {
        int cols = (int) d.cols();
        DType outType = out.dtype();
        CpuRows.forEach(d.rows(), 3L * cols, r -> {
            int base = r * cols;
            double sq = 0;
            for (int c = 0; c < cols; c++) {
                double t = x.get(base + c);
                sq += t * t;
            }
            double rs = 1 / Math.sqrt(sq / cols + eps);
            for (int c = 0; c < cols; c++) {
                float n = CpuTensor.round(outType, (float) (x.get(base + c) * rs));
                float w = CpuTensor.round(outType, weight.get(c));
                out.store(base + c, (double) n * w);
            }
            rstd.store(r, rs);
        });
    }

    /**
     * Forward: n = x·rstd with rstd = (mean(x²) + eps)^−½, y = n·w (the intermediate roundings are treated as
     * identity, as autograd does for casts). So dn = dy·w, dx = rstd·(dn − n·mean(dn·n)), dw = Σ_rows dy·n.
     */
    @Override
    public void rmsNormBackward(CpuTensor dx, CpuTensor dWeight, CpuTensor dOut, CpuTensor x, CpuTensor weight,
                                CpuTensor rstd, MatrixDims d) {
        int rows = (int) d.rows(), cols = (int) d.cols();
        if (dWeight != null) {
            CpuRows.forEach(cols, 2L * rows, c -> {
                double dw = 0;
                for (int r = 0; r < rows; r++) dw += dOut.get(r * cols + c) * (x.get(r * cols + c) * (double) rstd.get(r));
                dWeight.store(c, dWeight.get(c) + dw);
            });
        }
        CpuRows.forEach(rows, 5L * cols, r -> {
            int base = r * cols;
            double rs = rstd.get(r);
            double sumGn = 0;
            for (int c = 0; c < cols; c++) sumGn += dOut.get(base + c) * (double) weight.get(c) * x.get(base + c) * rs;
            double meanGn = sumGn / cols;
            for (int c = 0; c < cols; c++) {
                double g = dOut.get(base + c) * (double) weight.get(c);
                double n = x.get(base + c) * rs;
                dx.store(base + c, rs * (g - n * meanGn));
            }
        });
    }

    /** The unfused chain, the reference of the fused kernels: {@link #rmsNorm} into out, then SiLU in place. */
    @Override
    public void rmsNormSilu(CpuTensor out, CpuTensor rstd, CpuTensor x, CpuTensor weight, float eps, MatrixDims d) {
        rmsNorm(out, rstd, x, weight, eps, d);
        ELEMENTWISE.silu(out, out);
    }

    /**
     * The chain it fuses, literally: {@link #layerNorm} without affine into out (so n is rounded to out's dtype), then
     * {@link CpuModulation#modulate} in place.
     */
    @Override
    public void layerNormModulate(CpuTensor out, CpuTensor mean, CpuTensor rstd, CpuTensor x, CpuTensor mod,
                                  int shiftIndex, int scaleIndex, float eps, TokenDims d) {
        layerNorm(out, mean, rstd, x, null, null, eps, new MatrixDims(d.batch() * d.tokens(), d.channels()));
        MODULATION.modulate(out, out, mod, shiftIndex, scaleIndex, d);
    }

    /**
     * The chain it fuses, row by row: dn = {@link CpuModulation#modulateBackward}'s dOut·(1 + scale) rounded to dx's
     * dtype, then {@link #layerNormBackward}'s arithmetic without weight on dn (the same double expressions in the same
     * order, dn computed again for the second pass instead of stored, so the same bits; CpuNormTest compares them).
     */
    @Override
    public void layerNormModulateBackward(CpuTensor dx, CpuTensor dOut, CpuTensor x, CpuTensor mean, CpuTensor rstd,
                                          CpuTensor mod, int scaleIndex, boolean accumulate, TokenDims d) {
        int tokens = (int) d.tokens(), cols = (int) d.channels(), n = (int) mod.shape().dim(1);
        DType dnType = dx.dtype();
        CpuRows.forEach(d.batch() * tokens, 8L * cols, r -> {
            int base = r * cols, scale = (r / tokens * n + scaleIndex) * cols;
            double mu = mean.get(r), rs = rstd.get(r);
            double sumG = 0, sumGx = 0;
            for (int c = 0; c < cols; c++) {
                double g = CpuTensor.round(dnType, (float) (dOut.get(base + c) * (1.0 + mod.get(scale + c))));
                sumG += g;
                sumGx += g * (x.get(base + c) - mu) * rs;
            }
            double meanG = sumG / cols, meanGx = sumGx / cols;
            for (int c = 0; c < cols; c++) {
                double g = CpuTensor.round(dnType, (float) (dOut.get(base + c) * (1.0 + mod.get(scale + c))));
                double xhat = (x.get(base + c) - mu) * rs;
                double v = rs * (g - meanG - xhat * meanGx);
                if (accumulate) v += dx.get(base + c);
                dx.store(base + c, v);
            }
        });
    }
}
