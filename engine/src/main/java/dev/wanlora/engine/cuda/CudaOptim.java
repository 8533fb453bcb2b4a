package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.Backend.AdamWStep;

/** Launchers of the optimizer kernels: the clip coefficient and AdamW (see {@code kernels/src/main/cuda/optim/}). */
final class CudaOptim {
    private final Launcher launcher;

    CudaOptim(Launcher launcher) { this.launcher = launcher; }

    void clipCoefficient(CudaTensor clip, CudaTensor normSquared, float maxNorm) {
        launcher.launch(Kernel.CLIP_COEFFICIENT_FWD_F32, LaunchConfig.of(1, 32), clip, normSquared, maxNorm);
    }

    /** Bias corrections in double on the host, exactly as CpuOptim forms them; the kernel mirrors its arithmetic. */
    void adamw(CudaTensor param, CudaTensor grad, CudaTensor m, CudaTensor v, CudaTensor gradScale, AdamWStep h) {
        long n = param.numElements();
        if (n == 0) return;
        double lr = h.learningRate(), b1 = h.beta1(), b2 = h.beta2();
        double stepSize = lr / (1 - Math.pow(b1, h.step()));
        double bc2Sqrt = Math.sqrt(1 - Math.pow(b2, h.step()));
        launcher.launch(Kernel.ADAMW_FWD_F32, launcher.cover(n), param, grad, m, v, gradScale, lr, b1, b2, (double) h.eps(),
                (double) h.weightDecay(), stepSize, bc2Sqrt, n);
    }
}
