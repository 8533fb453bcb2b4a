package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.OptimizerOps;
import dev.wanlora.engine.backend.Backend.AdafactorStep;
import dev.wanlora.engine.backend.Backend.AdamWStep;
import dev.wanlora.engine.backend.Backend.ProdigyStep;

/**
 * Gradient-norm clipping and AdamW (torch semantics), per element in double with F32 state; the other optimizers' references
 * ({@link CpuAdamW8bit}, {@link CpuProdigy}, {@link CpuAdafactor}) are called from here.
 */
final class CpuOptim implements OptimizerOps.Kernels<CpuTensor> {
    /** normSquared += Σ g², over fixed chunks summed in chunk order (deterministic). */
    @Override
    public void sumOfSquares(CpuTensor normSquared, CpuTensor g) {
        double[] partial = new double[CpuRows.numChunks(g.size())];
        CpuRows.forEachChunk(g.size(), (from, to) -> {
            double s = 0;
            for (int i = from; i < to; i++) s += (double) g.get(i) * g.get(i);
            partial[from / CpuRows.CHUNK] = s;
        });
        normSquared.store(0, normSquared.get(0) + CpuFlow.sum(partial));
    }

    /** clip = min(1, maxNorm/(‖g‖ + 1e-6)), or 1 when maxNorm ≤ 0 (torch.nn.utils.clip_grad_norm_). */
    @Override
    public void clipCoefficient(CpuTensor clip, CpuTensor normSquared, float maxNorm) {
        double c = maxNorm <= 0 ? 1 : Math.min(1, maxNorm / (Math.sqrt(normSquared.get(0)) + 1e-6));
        clip.store(0, c);
    }

    /**
     * torch.optim.AdamW, one element at a time: g = f32(grad·gradScale) (clipping scales the stored fp32 grad);
     * m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g² (both stored as F32, and the stored values are used below, as
     * torch does); p ← p·(1 − lr·wd) − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps).
     */
    @Override
    public void adamw(CpuTensor param, CpuTensor grad, CpuTensor m, CpuTensor v, CpuTensor gradScale,
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

    @Override
    public void adamw8bit(CpuTensor param, CpuTensor grad, CpuTensor mCodes, CpuTensor mAbsMax, CpuTensor vCodes,
                          CpuTensor vAbsMax, CpuTensor gradScale, AdamWStep hyper) {
        CpuAdamW8bit.step(param, grad, mCodes, mAbsMax, vCodes, vAbsMax, gradScale, hyper);
    }

    @Override
    public void prodigyAccumulate(CpuTensor param, CpuTensor grad, CpuTensor p0, CpuTensor m, CpuTensor v, CpuTensor s,
                                  CpuTensor gradScale, CpuTensor state, ProdigyStep hyper) {
        CpuProdigy.accumulate(param, grad, p0, m, v, s, gradScale, state, hyper);
    }

    @Override
    public void prodigyAdapt(CpuTensor state, ProdigyStep hyper) { CpuProdigy.adapt(state, hyper); }

    @Override
    public void prodigyUpdate(CpuTensor param, CpuTensor grad, CpuTensor m, CpuTensor v, CpuTensor gradScale,
                              CpuTensor state, ProdigyStep hyper) {
        CpuProdigy.update(param, grad, m, v, gradScale, state, hyper);
    }

    @Override
    public void adafactor(CpuTensor param, CpuTensor grad, CpuTensor m, CpuTensor row, CpuTensor col, CpuTensor v,
                          CpuTensor gradScale, AdafactorStep hyper) {
        CpuAdafactor.step(param, grad, m, row, col, v, gradScale, hyper);
    }
}
