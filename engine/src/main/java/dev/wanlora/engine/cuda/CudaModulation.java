package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.ModulationOps;
import dev.wanlora.engine.backend.OpChecks.TokenDims;

/**
 * Launchers of the adaLN modulation kernels ({@code kernels/src/main/cuda/elementwise/modulation.cu}), the
 * {@code ModulationOps} family: one work item per group of 8 elements (16-byte accesses), the kernel handles the tail.
 */
final class CudaModulation implements ModulationOps.Kernels<CudaTensor> {
    private final Launcher launcher;

    CudaModulation(Launcher launcher) { this.launcher = launcher; }

    private LaunchConfig vectorGrid(long n) { return launcher.cover((n + 7) / 8); }

    @Override
    public void modulate(CudaTensor out, CudaTensor x, CudaTensor mod, int shift, int scale, TokenDims d) {
        long n = out.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("modulate", "modulate_fwd", x.dtype(), out.dtype()), vectorGrid(n), out, x, mod,
                (int) mod.shape().dim(1), shift, scale, d.tokens(), d.channels(), n);
    }

    @Override
    public void modulateBackward(CudaTensor dx, CudaTensor dOut, CudaTensor mod, int scale, TokenDims d) {
        long n = dx.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("modulateBackward", "modulate_bwd", dOut.dtype(), dx.dtype()), vectorGrid(n), dx, dOut,
                mod, (int) mod.shape().dim(1), scale, d.tokens(), d.channels(), n);
    }

    /** x += y·gate; the symbol's first dtype is x's (the residual stream), the second y's. */
    @Override
    public void gatedResidual(CudaTensor x, CudaTensor y, CudaTensor mod, int gate, TokenDims d) {
        long n = x.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("gatedResidual", "gated_residual_fwd", x.dtype(), y.dtype()), vectorGrid(n), x, y, mod,
                mod == null ? 0 : (int) mod.shape().dim(1), gate, d.tokens(), d.channels(), n);
    }

    /** out = x + y·gate; x and out share the stream's dtype (the symbol's first), y's is the second. */
    @Override
    public void addGatedResidual(CudaTensor out, CudaTensor x, CudaTensor y, CudaTensor mod, int gate, TokenDims d) {
        CudaElementwise.requireSame("addGatedResidual", "out", out.dtype(), "x", x.dtype());
        long n = out.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("addGatedResidual", "add_gated_residual_fwd", x.dtype(), y.dtype()), vectorGrid(n),
                out, x, y, mod, mod == null ? 0 : (int) mod.shape().dim(1), gate, d.tokens(), d.channels(), n);
    }

    @Override
    public void gatedResidualBackward(CudaTensor dy, CudaTensor dx, CudaTensor mod, int gate, TokenDims d) {
        long n = dy.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel("gatedResidualBackward", "gated_residual_bwd", dx.dtype(), dy.dtype()), vectorGrid(n), dy,
                dx, mod, mod == null ? 0 : (int) mod.shape().dim(1), gate, d.tokens(), d.channels(), n);
    }
}
