package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.GemmOps;
import dev.wanlora.engine.backend.OpChecks.GemmDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.numeric.Fp8BlockQuantizer;
import dev.wanlora.engine.tensor.DType;

/**
 * GEMM and fp8 weight dequantization, the scalar reference (the fp8 compute path's in {@link CpuFp8Gemm}). Products are summed in double, so this is a better
 * oracle than any fp32 GPU accumulation; the result is rounded once, to c's dtype, on store.
 */
final class CpuGemm implements GemmOps.Kernels<CpuTensor> {
    /** c = alpha·op(a)·op(b) + beta·c (+ bias); see Backend#gemm. One output row per task. */
    @Override
    public void gemm(CpuTensor c, CpuTensor a, boolean transA, CpuTensor b, boolean transB, float alpha, float beta,
                     CpuTensor bias, GemmDims dims) {
        int m = (int) dims.m(), n = (int) dims.n(), k = (int) dims.k();
        float[] ad = a.data(), bd = b.data();
        int ao = a.offset(), bo = b.offset();
        CpuRows.forEach(m, 2L * n * k, i -> {
            double[] aRow = new double[k]; // row i of op(a)
            for (int p = 0; p < k; p++) aRow[p] = transA ? ad[ao + p * m + i] : ad[ao + i * k + p];
            double[] acc = new double[n];
            if (transB) { // b is (N, K): each output is a dot product of two contiguous rows
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    int row = bo + j * k;
                    for (int p = 0; p < k; p++) s += aRow[p] * bd[row + p];
                    acc[j] = s;
                }
            } else { // b is (K, N): accumulate scaled rows of b
                for (int p = 0; p < k; p++) {
                    double aip = aRow[p];
                    int row = bo + p * n;
                    for (int j = 0; j < n; j++) acc[j] += aip * bd[row + j];
                }
            }
            for (int j = 0; j < n; j++) {
                double v = alpha * acc[j];
                if (beta != 0) v += beta * (double) c.get(i * n + j); // beta = 0 never reads c (NaN-safe)
                if (bias != null) v += bias.get(j);
                c.store(i * n + j, v);
            }
        });
    }

    /** out[o, i] = out.dtype(scale.dtype(wq[o, i]·scale[o, i/64])); see Backend#dequantizeFp8. */
    @Override
    public void dequantizeFp8(CpuTensor out, CpuTensor wq, CpuTensor scale, MatrixDims dims) {
        int rows = (int) dims.rows(), cols = (int) dims.cols(), blocks = cols / 64;
        DType scaleType = scale.dtype();
        CpuRows.forEach(rows, cols, o -> {
            for (int i = 0; i < cols; i++) {
                // wq holds decoded e4m3 values, exact in bf16 and f32, so the cast to scale's dtype is exact; the
                // float product is exact for a bf16 scale (4 × 8 significant bits) and rounded once for an f32 one.
                float w = wq.get(o * cols + i);
                float product = CpuTensor.round(scaleType, w * scale.get(o * blocks + i / 64));
                out.store(o * cols + i, product);
            }
        });
    }

    /** The reference: {@link Fp8BlockQuantizer} on the weight's (exact) values, one call per tensor. */
    @Override
    public void quantizeFp8(CpuTensor codes, CpuTensor scale, CpuTensor w, MatrixDims dims) {
        float[] values = java.util.Arrays.copyOfRange(w.data(), w.offset(), w.offset() + w.size());
        Fp8BlockQuantizer.Result q = Fp8BlockQuantizer.quantize(values, w.shape(), w.dtype());
        byte[] codeBytes = q.codes();
        for (int i = 0; i < codeBytes.length; i++) codes.store(i, Fp8.e4m3ToFloat(codeBytes[i]));
        float[] scales = q.scales();
        for (int i = 0; i < scales.length; i++) scale.store(i, scales[i]);
    }

    @Override
    public void quantizeFp8Tensor(CpuTensor codes, CpuTensor scale, CpuTensor x, MatrixDims dims) {
        CpuFp8Gemm.quantizeTensor(codes, scale, x);
    }

    @Override
    public void dequantizeFp8Tensor(CpuTensor out, CpuTensor codes, CpuTensor scale, MatrixDims dims) {
        CpuFp8Gemm.dequantizeTensor(out, codes, scale);
    }

    @Override
    public void gemmFp8(CpuTensor y, CpuTensor xCodes, CpuTensor xScale, CpuTensor wCodes, CpuTensor wScale, CpuTensor bias,
                        GemmDims dims) {
        CpuFp8Gemm.gemm(y, xCodes, xScale, wCodes, wScale, bias, dims);
    }
}
