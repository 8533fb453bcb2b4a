package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.LayoutOps;
import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.backend.OpChecks.PatchDims;

/**
 * Patch layouts of Wan's (1,2,2) patch embedding and head (spec §1.2, §1.6), and the sinusoidal time embedding
 * (spec §1.2). Layout ops only move values (rounding only when the output dtype is narrower than the input's).
 */
final class CpuLayout implements LayoutOps.Kernels<CpuTensor> {
    /** out[b, (f·H/2 + h)·W/2 + w, c·4 + kh·2 + kw] = latents[b, c, f, 2h + kh, 2w + kw]; one task per token. */
    @Override
    public void patchify(CpuTensor out, CpuTensor latents, PatchDims d) {
        int ch = d.channels(), frames = d.frames(), height = d.height(), width = d.width();
        int h2 = height / 2, w2 = width / 2, tokens = (int) d.tokens(), feat = 4 * ch;
        CpuRows.forEach(d.batch() * tokens, feat, row -> {
            int b = row / tokens, t = row % tokens;
            int f = t / (h2 * w2), h = t / w2 % h2, w = t % w2;
            for (int c = 0; c < ch; c++) {
                for (int kh = 0; kh < 2; kh++) {
                    for (int kw = 0; kw < 2; kw++) {
                        int src = (((b * ch + c) * frames + f) * height + 2 * h + kh) * width + 2 * w + kw;
                        out.store(row * feat + c * 4 + kh * 2 + kw, latents.get(src));
                    }
                }
            }
        });
    }

    /**
     * The head's token layout ↔ the latent image: token (f, h, w) feature ph·2C + pw·C + ch is image element
     * (ch, f, 2h + ph, 2w + pw). {@code toImage} scatters tokens into the image (unpatchify); otherwise it gathers
     * the image into tokens (unpatchify's backward). One task per token either way.
     */
    private static void unpatchify(CpuTensor image, CpuTensor tokens, boolean toImage, PatchDims d) {
        int ch = d.channels(), frames = d.frames(), height = d.height(), width = d.width();
        int h2 = height / 2, w2 = width / 2, count = (int) d.tokens(), feat = 4 * ch;
        CpuRows.forEach(d.batch() * count, feat, row -> {
            int b = row / count, t = row % count;
            int f = t / (h2 * w2), h = t / w2 % h2, w = t % w2;
            for (int ph = 0; ph < 2; ph++) {
                for (int pw = 0; pw < 2; pw++) {
                    for (int c = 0; c < ch; c++) {
                        int pixel = (((b * ch + c) * frames + f) * height + 2 * h + ph) * width + 2 * w + pw;
                        int token = row * feat + ph * 2 * ch + pw * ch + c;
                        if (toImage) image.store(pixel, tokens.get(token));
                        else tokens.store(token, image.get(pixel));
                    }
                }
            }
        });
    }

    /** out[b] = [cos(t·ω_0..half−1), sin(t·ω_0..half−1)], ω_j = 10000^(−j/half), all in float64 as Wan does. */
    @Override
    public void sinusoidalEmbedding(CpuTensor out, CpuTensor timesteps, MatrixDims d) {
        int half = (int) d.cols() / 2;
        CpuRows.forEach(d.rows(), 2L * half, b -> {
            double t = timesteps.get(b);
            for (int j = 0; j < half; j++) {
                double angle = t * Math.pow(10000, -(double) j / half);
                out.store(b * 2 * half + j, Math.cos(angle));
                out.store(b * 2 * half + half + j, Math.sin(angle));
            }
        });
    }

    @Override
    public void unpatchify(CpuTensor out, CpuTensor tokens, PatchDims d) { unpatchify(out, tokens, true, d); }

    @Override
    public void unpatchifyBackward(CpuTensor dTokens, CpuTensor dOut, PatchDims d) { unpatchify(dOut, dTokens, false, d); }

    @Override
    public void embedding(CpuTensor out, CpuTensor table, CpuTensor ids, MatrixDims d) {
        CpuEmbedding.embedding(out, table, ids, d);
    }

    @Override
    public void relativePositionBias(CpuTensor out, CpuTensor table, CpuTensor buckets, AttentionDims d) {
        CpuEmbedding.relativePositionBias(out, table, buckets, d);
    }
}
