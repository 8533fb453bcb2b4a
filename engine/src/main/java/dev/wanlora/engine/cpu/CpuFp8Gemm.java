package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.OpChecks.GemmDims;
import dev.wanlora.engine.numeric.Fp8;

/**
 * The reference of the fp8 compute path ({@code --fp8_compute}, {@code GemmOps#quantizeFp8Tensor},
 * {@code #dequantizeFp8Tensor}, {@code #gemmFp8}): per-tensor E4M3 codes with an fp32 scale, and their GEMM. These
 * define the numerics the CUDA path (our quantize kernels, cuBLASLt's fp8 GEMM) is checked against. CpuTensor keeps
 * an F8_E4M3 tensor as the decoded e4m3 values, so a "code" here is its exact value.
 */
final class CpuFp8Gemm {
    private CpuFp8Gemm() {}

    /** e4m3's largest finite value. */
    static final float E4M3_MAX = 448f;

    /** scale = amax/448 (1 for amax 0; NaN ignored), codes = e4m3(clamp(x/scale, ±448)); see GemmOps#quantizeFp8Tensor. */
    static void quantizeTensor(CpuTensor codes, CpuTensor scale, CpuTensor x) {
        float amax = 0f;
        for (int i = 0; i < x.size(); i++) {
            float a = Math.abs(x.get(i));
            if (a > amax) amax = a; // a NaN compares false: ignored, as CUDA's fmaxf ignores it
        }
        float s = scaleOf(amax);
        scale.store(0, s);
        for (int i = 0; i < x.size(); i++) codes.store(i, Fp8.e4m3ToFloat(Fp8.e4m3FromFloat(saturate(x.get(i) / s))));
    }

    /** The per-tensor scale of an amax: amax / 448 in fp32, 1 for an all-zero tensor (any scale codes zeros as 0). */
    static float scaleOf(float amax) { return amax > 0 ? amax / E4M3_MAX : 1f; }

    /** Clamp to ±448, NaN kept (it becomes e4m3's NaN code). */
    static float saturate(float q) { return q > E4M3_MAX ? E4M3_MAX : (q < -E4M3_MAX ? -E4M3_MAX : q); }

    /** out = out.dtype(fp32(code · scale)). */
    static void dequantizeTensor(CpuTensor out, CpuTensor codes, CpuTensor scale) {
        float s = scale.get(0);
        for (int i = 0; i < codes.size(); i++) out.store(i, codes.get(i) * s); // float product, then out's rounding
    }

    /**
     * y = (sx·sw)·Σ_k xq[i,k]·wq[j,k] + bias, summed in double: each product of two e4m3 values (4 significant bits
     * each) is exact, and so is their sum for every K a Wan Linear has, so this is the exact fp8 product rounded once.
     */
    static void gemm(CpuTensor y, CpuTensor xCodes, CpuTensor xScale, CpuTensor wCodes, CpuTensor wScale, CpuTensor bias,
                     GemmDims dims) {
        int m = (int) dims.m(), n = (int) dims.n(), k = (int) dims.k();
        double s = (double) xScale.get(0) * wScale.get(0);
        float[] xd = xCodes.data(), wd = wCodes.data();
        int xo = xCodes.offset(), wo = wCodes.offset();
        CpuRows.forEach(m, 2L * n * k, i -> {
            int xRow = xo + i * k;
            for (int j = 0; j < n; j++) {
                double acc = 0;
                int wRow = wo + j * k;
                for (int p = 0; p < k; p++) acc += (double) xd[xRow + p] * wd[wRow + p];
                double v = s * acc;
                if (bias != null) v += bias.get(j);
                y.store(i * n + j, v);
            }
        });
    }
}
