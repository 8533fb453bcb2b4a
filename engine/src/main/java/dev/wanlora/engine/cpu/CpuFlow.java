package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.FlowOps;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.random.CounterRng;

/** Flow-matching noise, noisy input and target, and the MSE loss (spec §4), in double, rounded on store. */
final class CpuFlow implements FlowOps.Kernels<CpuTensor> {
    /** out[i] = normal(seed, offset + i), see {@link CounterRng}. */
    @Override
    public void gaussianNoise(CpuTensor out, long seed, long offset) {
        CpuRows.forEachChunk(out.size(), (from, to) -> {
            for (int i = from; i < to; i++) out.store(i, CounterRng.normal(seed, offset + i));
        });
    }

    /** xt = (1 − t[b])·x0 + t[b]·noise, target = noise − x0; one task per sample. */
    @Override
    public void flowMatchingInput(CpuTensor xt, CpuTensor target, CpuTensor x0, CpuTensor noise, CpuTensor t,
                                  MatrixDims d) {
        int perSample = (int) d.cols();
        CpuRows.forEach(d.rows(), 4L * perSample, b -> {
            double tb = t.get(b);
            for (int i = b * perSample; i < (b + 1) * perSample; i++) {
                double x = x0.get(i), n = noise.get(i);
                xt.store(i, (1 - tb) * x + tb * n);
                target.store(i, n - x);
            }
        });
    }

    /**
     * loss = Σ(pred − target)²/n, reduced in double over fixed chunks summed in chunk order (deterministic);
     * dPred = gradScale·2·(pred − target)/n.
     */
    @Override
    public void mseLoss(CpuTensor loss, CpuTensor dPred, CpuTensor pred, CpuTensor target, float gradScale, long n) {
        double[] partial = new double[CpuRows.numChunks(n)];
        double gradFactor = 2.0 * gradScale / n;
        CpuRows.forEachChunk(n, (from, to) -> {
            double s = 0;
            for (int i = from; i < to; i++) {
                double diff = (double) pred.get(i) - target.get(i);
                s += diff * diff;
                dPred.store(i, gradFactor * diff);
            }
            partial[from / CpuRows.CHUNK] = s;
        });
        loss.store(0, sum(partial) / n);
    }

    static double sum(double[] values) {
        double s = 0;
        for (double v : values) s += v;
        return s;
    }
}
