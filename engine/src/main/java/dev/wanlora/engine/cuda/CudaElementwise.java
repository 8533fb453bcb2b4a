package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.backend.OpChecks.PatchDims;
import dev.wanlora.engine.backend.OpChecks.TokenDims;
import dev.wanlora.engine.tensor.DType;

/**
 * Launchers of the elementwise, modulation, RoPE, layout, embedding, conversion and fp8 kernels: everything that
 * reads each input element once and writes each output element once. Vectorized kernels get one work item per group
 * of 8 elements (their grid covers n/8 items and the kernel handles the tail).
 */
final class CudaElementwise {
    private final Launcher launcher;

    CudaElementwise(Launcher launcher) { this.launcher = launcher; }

    private LaunchConfig vectorGrid(long n) { return launcher.cover((n + 7) / 8); }

    void convert(CudaTensor dst, CudaTensor src) {
        String symbol = "convert_fwd_" + Launcher.tag(src.dtype()) + "_" + Launcher.tag(dst.dtype());
        Kernel k = Kernel.bySymbol(symbol);
        if (k == null) {
            throw new UnsupportedOperationException("copy (cuda): no conversion from " + src.dtype() + " to " + dst.dtype()
                    + "; supported kernels: " + Kernel.symbolsStartingWith("convert_fwd_"));
        }
        long n = src.numElements();
        if (n > 0) launcher.launch(k, vectorGrid(n), dst, src, n);
    }

    void add(CudaTensor out, CudaTensor a, CudaTensor b) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("add", "add_fwd", a.dtype(), b.dtype(), out.dtype()), vectorGrid(n), out, a, b, n);
    }

    void scale(CudaTensor out, CudaTensor x, float alpha) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("scale", "scale_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, alpha, n);
    }

    void silu(CudaTensor out, CudaTensor x) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("silu", "silu_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, n);
    }

    void geluTanh(CudaTensor out, CudaTensor x) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("geluTanh", "gelu_tanh_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, n);
    }

    void geluTanhBackward(CudaTensor dx, CudaTensor dOut, CudaTensor x) {
        requireSame("geluTanhBackward", "dOut", dOut.dtype(), "x", x.dtype());
        long n = dx.numElements();
        if (n > 0) {
            launcher.launch(Launcher.kernel("geluTanhBackward", "gelu_tanh_bwd", x.dtype(), dx.dtype()), vectorGrid(n), dx, dOut, x, n);
        }
    }

    void addRowVector(CudaTensor out, CudaTensor x, CudaTensor v, MatrixDims d) {
        long n = out.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("addRowVector", "add_row_vector_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, v,
                Launcher.paramType(v), d.rows(), d.cols());
    }

    void modulate(CudaTensor out, CudaTensor x, CudaTensor mod, int shift, int scale, TokenDims d) {
        long n = out.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("modulate", "modulate_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, mod,
                (int) mod.shape().dim(1), shift, scale, d.tokens(), d.channels(), n);
    }

    void modulateBackward(CudaTensor dx, CudaTensor dOut, CudaTensor mod, int scale, TokenDims d) {
        long n = dx.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("modulateBackward", "modulate_bwd", dOut.dtype(), dx.dtype()), vectorGrid(n), dx, dOut,
                mod, (int) mod.shape().dim(1), scale, d.tokens(), d.channels(), n);
    }

    /** x += y·gate; the symbol's first dtype is x's (the residual stream), the second y's. */
    void gatedResidual(CudaTensor x, CudaTensor y, CudaTensor mod, int gate, TokenDims d) {
        long n = x.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("gatedResidual", "gated_residual_fwd", x.dtype(), y.dtype()), vectorGrid(n), x, y, mod,
                mod == null ? 0 : (int) mod.shape().dim(1), gate, d.tokens(), d.channels(), n);
    }

    void gatedResidualBackward(CudaTensor dy, CudaTensor dx, CudaTensor mod, int gate, TokenDims d) {
        long n = dy.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("gatedResidualBackward", "gated_residual_bwd", dx.dtype(), dy.dtype()), vectorGrid(n), dy,
                dx, mod, mod == null ? 0 : (int) mod.shape().dim(1), gate, d.tokens(), d.channels(), n);
    }

    void rope(String op, CudaTensor out, CudaTensor x, CudaTensor cos, CudaTensor sin, boolean inverse, AttentionDims d) {
        long n = out.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel(op, "rope_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, cos, sin, d.queries(),
                d.heads(), (int) d.headDim(), n, inverse ? 1 : 0);
    }

    void patchify(CudaTensor out, CudaTensor latents, PatchDims d) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("patchify", "patchify_fwd", latents.dtype(), out.dtype()), launcher.cover(n), out, latents, (int) d.batch(), d.channels(), d.frames(), d.height(), d.width());
    }

    void unpatchify(CudaTensor out, CudaTensor tokens, PatchDims d) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("unpatchify", "unpatchify_fwd", tokens.dtype(), out.dtype()), launcher.cover(n), out, tokens, (int) d.batch(), d.channels(), d.frames(), d.height(), d.width());
    }

    void unpatchifyBackward(CudaTensor dTokens, CudaTensor dOut, PatchDims d) {
        long n = dTokens.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("unpatchifyBackward", "unpatchify_bwd", dOut.dtype(), dTokens.dtype()), launcher.cover(n), dTokens, dOut, (int) d.batch(), d.channels(), d.frames(), d.height(), d.width());
    }

    void sinusoidalEmbedding(CudaTensor out, CudaTensor timesteps, MatrixDims d) {
        long half = d.cols() / 2;
        if (d.rows() * half > 0) {
            launcher.launch(Kernel.SINUSOIDAL_EMBEDDING_FWD_F32, launcher.cover(d.rows() * half), out, timesteps,
                    (int) d.rows(), (int) half);
        }
    }

    void dequantizeFp8(CudaTensor out, CudaTensor wq, CudaTensor scale) {
        long n = out.numElements();
        if (n > 0) {
            launcher.launch(Launcher.kernel("dequantizeFp8", "dequantize_fp8_fwd", scale.dtype(), out.dtype()), vectorGrid(n), out,
                    wq, scale, n);
        }
    }

    void embedding(CudaTensor out, CudaTensor table, CudaTensor ids, MatrixDims d) {
        long n = out.numElements();
        if (n > 0) {
            launcher.launch(Launcher.kernel("embedding", "embedding_fwd", table.dtype(), out.dtype()), launcher.cover(n), out,
                    table, ids, d.rows(), d.cols(), table.shape().dim(0));
        }
    }

    void relativePositionBias(CudaTensor out, CudaTensor table, CudaTensor buckets, AttentionDims d) {
        long n = out.numElements();
        if (n > 0) {
            launcher.launch(Launcher.kernel("relativePositionBias", "relative_position_bias_fwd", table.dtype(), out.dtype()),
                    launcher.cover(n), out, table, buckets, d.heads(), d.queries(), d.keys(), (int) table.shape().dim(0));
        }
    }

    void gatedGelu(CudaTensor out, CudaTensor gate, CudaTensor x) {
        requireSame("gatedGelu", "gate", gate.dtype(), "x", x.dtype());
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("gatedGelu", "gated_gelu_fwd", x.dtype(), out.dtype()), launcher.cover(n), out, gate, x, n);
    }

    /** One thread per 8 elements (see quantize_fp8.cu); OpChecks has checked I % 64 == 0. */
    void quantizeFp8(CudaTensor codes, CudaTensor scale, CudaTensor w) {
        long n = w.numElements();
        if (w.address() % 16 != 0 || codes.address() % 8 != 0) {
            throw new UnsupportedOperationException("quantizeFp8 (cuda): w must be 16-byte and codes 8-byte aligned; got "
                    + w + ", " + codes + "; supported: tensors at the start of an allocation or at 64-element offsets");
        }
        if (n > 0) launcher.launch(Launcher.kernel("quantizeFp8", "quantize_fp8_fwd", w.dtype()), vectorGrid(n), codes, scale, w, n);
    }

    static void requireSame(String op, String a, DType ta, String b, DType tb) {
        if (ta != tb) {
            throw new UnsupportedOperationException(op + " (cuda): " + a + " and " + b + " must share a dtype; got " + a + "="
                    + ta + ", " + b + "=" + tb + "; supported: equal dtypes (F32 or BF16)");
        }
    }
}
