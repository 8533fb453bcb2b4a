package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.Backend.AdafactorStep;

/**
 * Adafactor (Shazeer &amp; Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", arXiv 1804.04235)
 * as transformers.optimization.Adafactor.step computes it for one parameter (huggingface/transformers
 * {@code src/transformers/optimization.py} at 005edacb): in double with F32 state, every reduction (RMS(p), the row and
 * column means, mean(row), RMS(u)) a double sum in index order. The update u is recomputed from the stored state
 * where it is needed twice (its RMS, then the step), so it is never stored.
 */
final class CpuAdafactor {
    private CpuAdafactor() {}

    /** The step size: (scaleParameter ? max(eps2, rmsP) : 1)·relativeStepSize. */
    static double learningRate(AdafactorStep h, double rmsP) {
        double scale = h.scaleParameter() ? Math.max(h.eps2(), rmsP) : 1.0;
        return scale * h.relativeStepSize();
    }

    static void step(CpuTensor param, CpuTensor grad, CpuTensor m, CpuTensor row, CpuTensor col, CpuTensor v,
                     CpuTensor gradScale, AdafactorStep h) {
        int n = param.size();
        boolean factored = row != null;
        int rows = factored ? row.size() : 1, cols = factored ? col.size() : n;
        double clip = gradScale.get(0);
        double[] g = new double[n];
        double sumP2 = 0;
        for (int i = 0; i < n; i++) {
            g[i] = (float) (grad.get(i) * clip);
            sumP2 += (double) param.get(i) * param.get(i);
        }
        double lr = learningRate(h, Math.sqrt(sumP2 / n));
        double beta2t = 1.0 - Math.pow(h.step(), h.decayRate());
        double eps1 = h.eps1();
        double[] u = new double[n];
        if (factored) {
            // row_i: EMA of mean_j (g² + eps1); col_j: EMA of mean_i (g² + eps1)
            for (int r = 0; r < rows; r++) {
                double sum = 0;
                for (int c = 0; c < cols; c++) sum += g[r * cols + c] * g[r * cols + c] + eps1;
                row.store(r, beta2t * row.get(r) + (1 - beta2t) * (sum / cols));
            }
            for (int c = 0; c < cols; c++) {
                double sum = 0;
                for (int r = 0; r < rows; r++) sum += g[r * cols + c] * g[r * cols + c] + eps1;
                col.store(c, beta2t * col.get(c) + (1 - beta2t) * (sum / rows));
            }
            double rowSum = 0;
            for (int r = 0; r < rows; r++) rowSum += row.get(r);
            double rowMean = rowSum / rows;
            // _approx_sq_grad: rsqrt(row_i / mean(row))·rsqrt(col_j)
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    u[r * cols + c] = g[r * cols + c] / Math.sqrt(row.get(r) / rowMean) / Math.sqrt(col.get(c));
                }
            }
        } else {
            for (int i = 0; i < n; i++) {
                v.store(i, beta2t * v.get(i) + (1 - beta2t) * (g[i] * g[i] + eps1));
                u[i] = g[i] / Math.sqrt(v.get(i));
            }
        }
        double sumU2 = 0;
        for (int i = 0; i < n; i++) sumU2 += u[i] * u[i];
        double divisor = Math.max(1.0, Math.sqrt(sumU2 / n) / h.clipThreshold());
        double beta1 = h.beta1(), wd = h.weightDecay();
        for (int i = 0; i < n; i++) {
            double update = u[i] / divisor * lr;
            if (m != null) {
                m.store(i, beta1 * m.get(i) + (1 - beta1) * update);
                update = m.get(i);
            }
            if (wd != 0) param.store(i, param.get(i) - wd * lr * param.get(i));
            param.store(i, param.get(i) - update);
        }
    }
}
