package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.Backend.ProdigyStep;

/**
 * Prodigy (Mishchenko &amp; Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", arXiv 2306.06101),
 * as prodigyopt.Prodigy.step computes it (konstmish/prodigy {@code prodigyopt/prodigy.py} at 3efb213): per element in
 * double with F32 state, reductions in double over fixed chunks summed in chunk order. The step is three passes
 * (the first over every parameter, then the scalar update, then the parameter update) because d̂ needs the sums over
 * all parameters before any parameter moves.
 *
 * <p>Scalar state (8) F32: {@link #D}, {@link #D_MAX}, {@link #D_NUMERATOR}, {@link #K} as upstream keeps them in
 * the param group (upstream holds them as Python floats; here they are F32 so that they stay on the device, a relative
 * difference of at most 2⁻²⁴ per step), then the two per-step sums, this step's dlr and the skip flag.
 */
final class CpuProdigy {
    private CpuProdigy() {}

    static final int D = 0, D_MAX = 1, D_NUMERATOR = 2, K = 3, NUMERATOR_SUM = 4, DENOMINATOR_SUM = 5, DLR = 6, SKIP = 7;

    /** Adam's bias correction as Prodigy applies it to d·lr: sqrt(1 − β2^(k+1)) / (1 − β1^(k+1)), or 1. */
    static double biasCorrection(ProdigyStep h, double k) {
        if (!h.useBiasCorrection()) return 1;
        return Math.sqrt(1 - Math.pow(h.beta2(), k + 1)) / (1 - Math.pow(h.beta1(), k + 1));
    }

    /** The first pass (Backend.prodigyAccumulate). */
    static void accumulate(CpuTensor param, CpuTensor grad, CpuTensor p0, CpuTensor m, CpuTensor v, CpuTensor s,
                           CpuTensor gradScale, CpuTensor state, ProdigyStep h) {
        double lr = h.learningRate();
        if (lr == 0) return; // upstream: `if group_lr > 0.0` guards the whole pass
        double d = state.get(D), k = state.get(K), d0 = h.d0();
        double dlr = d * lr * biasCorrection(h, k);
        double b1 = h.beta1(), b2 = h.beta2(), b3 = h.beta3(), wd = h.weightDecay();
        boolean coupled = !h.decouple() && wd != 0;
        boolean isFirstStep = k == 0; // upstream initializes p0 (a copy of p) at the first step
        double sCoef = (d / d0) * (h.safeguardWarmup() ? d : dlr);
        double clip = gradScale.get(0);
        int chunks = CpuRows.numChunks(param.size());
        double[] numerator = new double[chunks], denominator = new double[chunks];
        CpuRows.forEachChunk(param.size(), (from, to) -> {
            double num = 0, den = 0;
            for (int i = from; i < to; i++) {
                double p = param.get(i);
                double g = (float) (grad.get(i) * clip);
                if (coupled) g = (float) (g + wd * p); // grad.add_(p, alpha=decay)
                if (isFirstStep) p0.store(i, p);
                num += g * (p0.get(i) - p);
                m.store(i, b1 * m.get(i) + d * (1 - b1) * g);
                v.store(i, b2 * v.get(i) + d * d * (1 - b2) * g * g);
                s.store(i, b3 * s.get(i) + sCoef * g);
                den += Math.abs(s.get(i));
            }
            numerator[from / CpuRows.CHUNK] = num;
            denominator[from / CpuRows.CHUNK] = den;
        });
        state.store(NUMERATOR_SUM, state.get(NUMERATOR_SUM) + (d / d0) * dlr * CpuFlow.sum(numerator));
        state.store(DENOMINATOR_SUM, state.get(DENOMINATOR_SUM) + CpuFlow.sum(denominator));
    }

    /** The scalar update (Backend.prodigyAdapt). */
    static void adapt(CpuTensor state, ProdigyStep h) {
        double d = state.get(D), dMax = state.get(D_MAX), k = state.get(K);
        double lr = h.learningRate();
        state.store(DLR, d * lr * biasCorrection(h, k));
        double denominator = state.get(DENOMINATOR_SUM);
        double numerator = h.beta3() * state.get(D_NUMERATOR) + state.get(NUMERATOR_SUM);
        state.store(NUMERATOR_SUM, 0);
        state.store(DENOMINATOR_SUM, 0);
        if (denominator == 0 || lr == 0) { // upstream returns before touching d, d_numerator and k
            state.store(SKIP, 1);
            return;
        }
        double dHat = h.dCoef() * numerator / denominator;
        if (d == (float) h.d0()) d = Math.max(d, dHat);
        dMax = Math.max(dMax, dHat);
        d = Math.min(dMax, d * h.growthRate());
        state.store(D, d);
        state.store(D_MAX, dMax);
        state.store(D_NUMERATOR, numerator);
        state.store(K, k + 1);
        state.store(SKIP, 0);
    }

    /** The parameter update (Backend.prodigyUpdate). */
    static void update(CpuTensor param, CpuTensor grad, CpuTensor m, CpuTensor v, CpuTensor gradScale, CpuTensor state,
                       ProdigyStep h) {
        if (state.get(SKIP) != 0) return;
        double d = state.get(D), dlr = state.get(DLR), eps = h.eps(), wd = h.weightDecay();
        boolean decoupled = h.decouple() && wd != 0, coupled = !h.decouple() && wd != 0;
        boolean hasFirstMoment = h.beta1() > 0;
        double clip = gradScale.get(0);
        CpuRows.forEachChunk(param.size(), (from, to) -> {
            for (int i = from; i < to; i++) {
                double denom = Math.sqrt(v.get(i)) + d * eps;
                if (decoupled) param.store(i, param.get(i) - wd * dlr * param.get(i));
                if (hasFirstMoment) {
                    param.store(i, param.get(i) - dlr * m.get(i) / denom);
                } else {
                    double g = (float) (grad.get(i) * clip);
                    if (coupled) g = (float) (g + wd * param.get(i));
                    param.store(i, param.get(i) - dlr * d * g / denom);
                }
            }
        });
    }
}
