package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.ElementwiseOps;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.tensor.DType;

/**
 * Launchers of the elementwise kernels (the {@code ElementwiseOps} family) and of the dtype conversions behind
 * {@code copy}: each reads each input element once and writes each output element once. Vectorized kernels get one
 * work item per group of 8 elements (their grid covers n/8 items and the kernel handles the tail).
 */
final class CudaElementwise implements ElementwiseOps.Kernels<CudaTensor> {
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

    @Override
    public void add(CudaTensor out, CudaTensor a, CudaTensor b) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("add", "add_fwd", a.dtype(), b.dtype(), out.dtype()), vectorGrid(n), out, a, b, n);
    }

    @Override
    public void scale(CudaTensor out, CudaTensor x, float alpha) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("scale", "scale_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, alpha, n);
    }

    @Override
    public void silu(CudaTensor out, CudaTensor x) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("silu", "silu_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, n);
    }

    @Override
    public void geluTanh(CudaTensor out, CudaTensor x) {
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("geluTanh", "gelu_tanh_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, n);
    }

    @Override
    public void geluTanhBackward(CudaTensor dx, CudaTensor dOut, CudaTensor x) {
        requireSame("geluTanhBackward", "dOut", dOut.dtype(), "x", x.dtype());
        long n = dx.numElements();
        if (n > 0) {
            launcher.launch(Launcher.kernel("geluTanhBackward", "gelu_tanh_bwd", x.dtype(), dx.dtype()), vectorGrid(n), dx, dOut, x, n);
        }
    }

    @Override
    public void addRowVector(CudaTensor out, CudaTensor x, CudaTensor v, MatrixDims d) {
        long n = out.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("addRowVector", "add_row_vector_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, v,
                Launcher.paramType(v), d.rows(), d.cols());
    }

    @Override
    public void gatedGelu(CudaTensor out, CudaTensor gate, CudaTensor x) {
        requireSame("gatedGelu", "gate", gate.dtype(), "x", x.dtype());
        long n = out.numElements();
        if (n > 0) launcher.launch(Launcher.kernel("gatedGelu", "gated_gelu_fwd", x.dtype(), out.dtype()), launcher.cover(n), out, gate, x, n);
    }

    static void requireSame(String op, String a, DType ta, String b, DType tb) {
        if (ta != tb) {
            throw new UnsupportedOperationException(op + " (cuda): " + a + " and " + b + " must share a dtype; got " + a + "="
                    + ta + ", " + b + "=" + tb + "; supported: equal dtypes (F32 or BF16)");
        }
    }
}
