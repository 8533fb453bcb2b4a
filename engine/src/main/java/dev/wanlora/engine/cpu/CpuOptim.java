package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.Backend.AdamWStep;

/** Gradient-norm clipping and AdamW (torch semantics), per element in double with F32 state. */
final class CpuOptim {
    private CpuOptim() {}

    /** normSquared += Σ g², over fixed chunks summed in chunk order (deterministic). */
    static void sumOfSquares(CpuTensor normSquared, CpuTensor g) {
        double[] partial = new double[CpuRows.numChunks(g.size())];
        CpuRows.forEachChunk(g.size(), (from, to) -> {
            double s = 0;
            for (int i = from; i < to; i++) s += (double) g.get(i) * g.get(i);
            partial[from / CpuRows.CHUNK] = s;
        });
        normSquared.store(0, normSquared.get(0) + CpuFlow.sum(partial));
    }

    /** clip = min(1, maxNorm/(‖g‖ + 1e-6)), or 1 when maxNorm ≤ 0 (torch.nn.utils.clip_grad_norm_). */
    static void clipCoefficient(CpuTensor clip, CpuTensor normSquared, float maxNorm) {
        double c = maxNorm <= 0 ? 1 : Math.min(1, maxNorm / (Math.sqrt(normSquared.get(0)) + 1e-6));
        clip.store(0, c);
    }

    /**
     * torch.optim.AdamW, one element at a time: g = f32(grad·gradScale) (clipping scales the stored fp32 grad);
     * m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g² (both stored as F32, and the stored values are used below, as
     * torch does); p ← p·(1 − lr·wd) − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps).
     */
    static void adamw(CpuTensor param, CpuTensor grad, CpuTensor m, CpuTensor v, CpuTensor gradScale,
                      AdamWStep hyper) {
        double lr = hyper.learningRate(), b1 = hyper.beta1(), b2 = hyper.beta2();
        double eps = hyper.eps(), wd = hyper.weightDecay();
        double stepSize = lr / (1 - Math.pow(b1, hyper.step()));
        double bc2Sqrt = Math.sqrt(1 - Math.pow(b2, hyper.step()));
        double clip = gradScale.get(0);
        CpuRows.forEachChunk(param.size(), (from, to) -> {
            for (int i = from; i < to; i++) {
                double g = (float) (grad.get(i) * clip);
                m.store(i, b1 * m.get(i) + (1 - b1) * g);
                v.store(i, b2 * v.get(i) + (1 - b2) * g * g);
                double denom = Math.sqrt(v.get(i)) / bc2Sqrt + eps;
                param.store(i, param.get(i) * (1 - lr * wd) - stepSize * m.get(i) / denom);
            }
        });
    }
}
