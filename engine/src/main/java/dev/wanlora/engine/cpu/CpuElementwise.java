package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.ElementwiseOps;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;

/**
 * Elementwise activations and arithmetic, computed in double and rounded on store. Each element is read before it
 * is written, so an output may be the very same tensor (same storage range) as an input.
 */
final class CpuElementwise implements ElementwiseOps.Kernels<CpuTensor> {
    /** √(2/π), the tanh-GELU constant. */
    private static final double GELU_K = Math.sqrt(2 / Math.PI);
    private static final double GELU_C = 0.044715;

    /** out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
    @Override
    public void geluTanh(CpuTensor out, CpuTensor x) {
        CpuRows.forEachChunk(x.size(), (from, to) -> {
            for (int i = from; i < to; i++) {
                double v = x.get(i);
                out.store(i, 0.5 * v * (1 + Math.tanh(GELU_K * (v + GELU_C * v * v * v))));
            }
        });
    }

    /** With u = √(2/π)·(x + 0.044715·x³), t = tanh u: gelu' = ½(1 + t) + ½·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²). */
    @Override
    public void geluTanhBackward(CpuTensor dx, CpuTensor dOut, CpuTensor x) {
        CpuRows.forEachChunk(x.size(), (from, to) -> {
            for (int i = from; i < to; i++) {
                double v = x.get(i);
                double t = Math.tanh(GELU_K * (v + GELU_C * v * v * v));
                double grad = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * v * v);
                dx.store(i, dOut.get(i) * grad);
            }
        });
    }

    /** out = x·round(gelu_tanh(gate)), the GELU rounded to out's dtype first (Backend#gatedGelu). */
    @Override
    public void gatedGelu(CpuTensor out, CpuTensor gate, CpuTensor x) {
        CpuRows.forEachChunk(x.size(), (from, to) -> {
            for (int i = from; i < to; i++) {
                double g = gate.get(i);
                float gelu = CpuTensor.round(out.dtype(), (float) (0.5 * g * (1 + Math.tanh(GELU_K * (g + GELU_C * g * g * g)))));
                out.store(i, (double) x.get(i) * gelu);
            }
        });
    }

    /** out = x·sigmoid(x) = x / (1 + e^−x). */
    @Override
    public void silu(CpuTensor out, CpuTensor x) {
        CpuRows.forEachChunk(x.size(), (from, to) -> {
            for (int i = from; i < to; i++) {
                double v = x.get(i);
                out.store(i, v / (1 + Math.exp(-v)));
            }
        });
    }

    @Override
    public void add(CpuTensor out, CpuTensor a, CpuTensor b) {
        CpuRows.forEachChunk(a.size(), (from, to) -> {
            for (int i = from; i < to; i++) out.store(i, (double) a.get(i) + b.get(i));
        });
    }

    @Override
    public void addRowVector(CpuTensor out, CpuTensor x, CpuTensor v, MatrixDims d) {
        int cols = (int) d.cols();
        CpuRows.forEach(d.rows(), cols, r -> {
            for (int c = 0; c < cols; c++) out.store(r * cols + c, (double) x.get(r * cols + c) + v.get(c));
        });
    }

    @Override
    public void scale(CpuTensor out, CpuTensor x, float alpha) {
        CpuRows.forEachChunk(x.size(), (from, to) -> {
            for (int i = from; i < to; i++) out.store(i, (double) alpha * x.get(i));
        });
    }
}
