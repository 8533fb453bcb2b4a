package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.VideoOps;
import dev.wanlora.engine.backend.OpChecks.ConvDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;

/**
 * The Wan VAE's video ops on channels-last frames (T, H, W, C): the causal convolution with its frame cache, nearest
 * 2× upsampling, and the row softmax of its single-head spatial attention. Sums are in double; one task per output
 * row (frame, row), so results do not depend on the thread count.
 */
final class CpuVideo implements VideoOps.Kernels<CpuTensor> {
    /**
     * out[t, h, w, o] = bias[o] + Σ weight[o, dt, dh, dw, i] · in[t·st + dt, h·ss + dh − pb, w·ss + dw − pb, i], where
     * in = concat(cache, x) along frames and 0 outside the image (Backend.conv3d).
     */
    @Override
    public void conv3d(CpuTensor out, CpuTensor cache, CpuTensor x, CpuTensor weight, CpuTensor bias, ConvDims d) {
        int tc = (int) d.cacheFrames(), h = (int) d.height(), w = (int) d.width(), cin = (int) d.inChannels();
        int kt = (int) d.kt(), kh = (int) d.kh(), kw = (int) d.kw();
        int ho = (int) d.outHeight(), wo = (int) d.outWidth(), cout = (int) d.outChannels();
        int st = d.geometry().timeStride(), ss = d.geometry().spaceStride(), pb = d.geometry().padBefore();
        int frameSize = h * w * cin;
        long work = (long) wo * cout * kt * kh * kw * cin;
        CpuRows.forEach(d.outFrames() * ho, work, row -> {
            int t = row / ho, oh = row % ho;
            double[] acc = new double[cout];
            for (int ow = 0; ow < wo; ow++) {
                for (int o = 0; o < cout; o++) acc[o] = bias == null ? 0 : bias.get(o);
                for (int dt = 0; dt < kt; dt++) {
                    int ti = t * st + dt; // frame of the stream concat(cache, x)
                    CpuTensor src = ti < tc ? cache : x;
                    int frameBase = (ti < tc ? ti : ti - tc) * frameSize;
                    for (int dh = 0; dh < kh; dh++) {
                        int ih = oh * ss + dh - pb;
                        if (ih < 0 || ih >= h) continue;
                        for (int dw = 0; dw < kw; dw++) {
                            int iw = ow * ss + dw - pb;
                            if (iw < 0 || iw >= w) continue;
                            int in = frameBase + (ih * w + iw) * cin;
                            int tap = (dt * kh + dh) * kw + dw;
                            for (int o = 0; o < cout; o++) {
                                int wBase = (o * kt * kh * kw + tap) * cin;
                                double s = 0;
                                for (int i = 0; i < cin; i++) s += (double) weight.get(wBase + i) * src.get(in + i);
                                acc[o] += s;
                            }
                        }
                    }
                }
                int outBase = ((t * ho + oh) * wo + ow) * cout;
                for (int o = 0; o < cout; o++) out.store(outBase + o, acc[o]);
            }
        });
    }

    /** out[t, 2h + a, 2w + b, c] = x[t, h, w, c]. */
    @Override
    public void upsampleNearest2x(CpuTensor out, CpuTensor x, ConvDims d) {
        int h = (int) d.height(), w = (int) d.width(), c = (int) d.inChannels();
        CpuRows.forEach(d.outFrames() * 2 * h, 2L * w * c, row -> {
            int t = row / (2 * h), oh = row % (2 * h);
            int in = (t * h + oh / 2) * w * c, o = row * 2 * w * c;
            for (int ow = 0; ow < 2 * w; ow++) {
                for (int ch = 0; ch < c; ch++) out.store(o + ow * c + ch, x.get(in + ow / 2 * c + ch));
            }
        });
    }

    /** out[r, :] = softmax(scale·x[r, :]), max-subtracted, in double. out may be x (each row is read before written). */
    @Override
    public void softmax(CpuTensor out, CpuTensor x, float scale, MatrixDims d) {
        int cols = (int) d.cols();
        CpuRows.forEach(d.rows(), 3L * cols, r -> {
            int base = r * cols;
            double[] e = new double[cols];
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) max = Math.max(max, (double) scale * x.get(base + c));
            double sum = 0;
            for (int c = 0; c < cols; c++) sum += e[c] = Math.exp((double) scale * x.get(base + c) - max);
            for (int c = 0; c < cols; c++) out.store(base + c, e[c] / sum);
        });
    }
}
