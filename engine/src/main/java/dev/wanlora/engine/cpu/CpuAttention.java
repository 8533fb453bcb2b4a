package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.AttentionOps;
import dev.wanlora.engine.backend.OpChecks.AttentionDims;

/**
 * Rotary embedding and exact softmax attention, forward and backward, for any head dim D (Wan uses D = 128; tests use
 * small D). Layout: token rows of width N·D with head h at columns [h·D, (h+1)·D). Scores, softmax sums and every
 * dot product are in double; nothing of size Lq·Lk is stored, so memory stays O(L) per task.
 */
final class CpuAttention implements AttentionOps.Kernels<CpuTensor> {
    /**
     * Rotates each pair (a, b) = (x[2j], x[2j+1]) of every head by the angle whose cosine and sine are
     * cos[l, j], sin[l, j]; with {@code inverse} the angle is negated (the backward). out may be x.
     */
    @Override
    public void rope(CpuTensor out, CpuTensor x, CpuTensor cos, CpuTensor sin, boolean inverse, AttentionDims d) {
        int tokens = (int) d.queries(), heads = d.heads(), dim = (int) d.headDim(), half = dim / 2;
        int width = heads * dim;
        double sign = inverse ? -1 : 1;
        CpuRows.forEach(d.batch() * tokens, 3L * width, row -> {
            int l = row % tokens, base = row * width;
            for (int h = 0; h < heads; h++) {
                for (int j = 0; j < half; j++) {
                    int i = base + h * dim + 2 * j;
                    double a = x.get(i), b = x.get(i + 1);
                    double c = cos.get(l * half + j), s = sign * sin.get(l * half + j);
                    out.store(i, a * c - b * s);
                    out.store(i + 1, a * s + b * c);
                }
            }
        });
    }

    /** out = softmax(q·kᵀ/√D)·v, lse = log Σ exp(scores); one task per (b, h, query) = one lse element. */
    @Override
    public void attention(CpuTensor out, CpuTensor lse, CpuTensor q, CpuTensor k, CpuTensor v, AttentionDims d) {
        int lq = (int) d.queries(), lk = (int) d.keys(), heads = d.heads(), dim = (int) d.headDim();
        int width = heads * dim;
        double scale = 1 / Math.sqrt(dim);
        CpuRows.forEach(d.batch() * heads * lq, 4L * lk * dim, row -> {
            int b = row / (heads * lq), h = row / lq % heads, i = row % lq;
            int qBase = (b * lq + i) * width + h * dim;
            double[] p = new double[lk]; // (Lk) scores, then unnormalized probabilities
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < lk; j++) {
                p[j] = scale * dot(q, qBase, k, (b * lk + j) * width + h * dim, dim);
                max = Math.max(max, p[j]);
            }
            double sum = 0;
            for (int j = 0; j < lk; j++) {
                p[j] = Math.exp(p[j] - max);
                sum += p[j];
            }
            double[] acc = new double[dim];
            for (int j = 0; j < lk; j++) {
                int vBase = (b * lk + j) * width + h * dim;
                for (int e = 0; e < dim; e++) acc[e] += p[j] * v.get(vBase + e);
            }
            for (int e = 0; e < dim; e++) out.store(qBase + e, acc[e] / sum);
            lse.store(row, max + Math.log(sum));
        });
    }

    /**
     * Forward: S = q·kᵀ·s (s = 1/√D), P = exp(S − lse), O = P·v. So dV = Pᵀ·dO, dP = dO·vᵀ,
     * dS = P∘(dP − Δ) with Δ_i = Σ_j P_ij·dP_ij, dQ = s·dS·k, dK = s·dSᵀ·q.
     * Pass 1 (one task per query row) computes Δ and dQ; pass 2 (one task per key row) recomputes P and dS column by
     * column for dK and dV. Δ is computed from P and dP in double rather than as rowsum(dO∘out), so the result does
     * not depend on out's rounding; out is only shape-checked.
     */
    @Override
    public void attentionBackward(CpuTensor dq, CpuTensor dk, CpuTensor dv, CpuTensor dOut, CpuTensor q, CpuTensor k,
                                  CpuTensor v, CpuTensor out, CpuTensor lse, AttentionDims d) {
        int lq = (int) d.queries(), lk = (int) d.keys(), heads = d.heads(), dim = (int) d.headDim();
        int width = heads * dim;
        double scale = 1 / Math.sqrt(dim);
        double[] delta = new double[Math.toIntExact(d.batch() * heads * lq)]; // (B, N, Lq) Δ, like lse
        CpuRows.forEach(delta.length, 6L * lk * dim, row -> {
            int b = row / (heads * lq), h = row / lq % heads, i = row % lq;
            int qBase = (b * lq + i) * width + h * dim;
            double rowLse = lse.get(row);
            double[] p = new double[lk], dp = new double[lk];
            double del = 0;
            for (int j = 0; j < lk; j++) {
                int kBase = (b * lk + j) * width + h * dim;
                p[j] = Math.exp(scale * dot(q, qBase, k, kBase, dim) - rowLse);
                dp[j] = dot(dOut, qBase, v, kBase, dim);
                del += p[j] * dp[j];
            }
            delta[row] = del;
            double[] acc = new double[dim];
            for (int j = 0; j < lk; j++) {
                double ds = p[j] * (dp[j] - del);
                int kBase = (b * lk + j) * width + h * dim;
                for (int e = 0; e < dim; e++) acc[e] += ds * k.get(kBase + e);
            }
            for (int e = 0; e < dim; e++) dq.store(qBase + e, scale * acc[e]);
        });
        CpuRows.forEach(d.batch() * heads * lk, 6L * lq * dim, row -> {
            int b = row / (heads * lk), h = row / lk % heads, j = row % lk;
            int kBase = (b * lk + j) * width + h * dim;
            double[] accK = new double[dim], accV = new double[dim];
            for (int i = 0; i < lq; i++) {
                int qBase = (b * lq + i) * width + h * dim;
                int stat = (b * heads + h) * lq + i;
                double p = Math.exp(scale * dot(q, qBase, k, kBase, dim) - lse.get(stat));
                double ds = p * (dot(dOut, qBase, v, kBase, dim) - delta[stat]);
                for (int e = 0; e < dim; e++) {
                    accK[e] += ds * q.get(qBase + e);
                    accV[e] += p * dOut.get(qBase + e);
                }
            }
            for (int e = 0; e < dim; e++) {
                dk.store(kBase + e, scale * accK[e]);
                dv.store(kBase + e, accV[e]);
            }
        });
    }

    /**
     * T5 attention (Backend#attentionWithBias): s_j = q·k_j + bias[h, i, j] over unmasked keys, no scaling;
     * out = Σ softmax(s)_j·v_j. One task per (b, h, query), all in double.
     */
    @Override
    public void attentionWithBias(CpuTensor out, CpuTensor q, CpuTensor k, CpuTensor v, CpuTensor bias,
                                  CpuTensor keyMask, AttentionDims d) {
        int lq = (int) d.queries(), lk = (int) d.keys(), heads = d.heads(), dim = (int) d.headDim();
        int width = heads * dim;
        CpuRows.forEach(d.batch() * heads * lq, 4L * lk * dim, row -> {
            int b = row / (heads * lq), h = row / lq % heads, i = row % lq;
            int qBase = (b * lq + i) * width + h * dim;
            double[] p = new double[lk]; // (Lk) scores, then unnormalized probabilities; masked keys stay 0
            boolean[] isReal = new boolean[lk];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < lk; j++) {
                isReal[j] = keyMask.get(b * lk + j) != 0;
                if (!isReal[j]) continue;
                p[j] = dot(q, qBase, k, (b * lk + j) * width + h * dim, dim) + bias.get((h * lq + i) * lk + j);
                max = Math.max(max, p[j]);
            }
            double sum = 0;
            for (int j = 0; j < lk; j++) {
                p[j] = isReal[j] ? Math.exp(p[j] - max) : 0;
                sum += p[j];
            }
            double[] acc = new double[dim];
            for (int j = 0; j < lk; j++) {
                if (p[j] == 0) continue;
                int vBase = (b * lk + j) * width + h * dim;
                for (int e = 0; e < dim; e++) acc[e] += p[j] * v.get(vBase + e);
            }
            for (int e = 0; e < dim; e++) out.store(qBase + e, sum == 0 ? 0 : acc[e] / sum);
        });
    }

    private static double dot(CpuTensor a, int aBase, CpuTensor b, int bBase, int n) {
        double s = 0;
        for (int e = 0; e < n; e++) s += (double) a.get(aBase + e) * b.get(bBase + e);
        return s;
    }
}
