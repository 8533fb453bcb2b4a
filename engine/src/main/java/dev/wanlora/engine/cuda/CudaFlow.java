package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.OpChecks.MatrixDims;

/**
 * Launchers of the flow-matching kernels (noise, noisy input and target) and the deterministic reductions shared
 * with the optimizer (MSE loss, sum of squares): a FIXED grid of {@link #PARTIAL_BLOCKS} × 256 threads writes one
 * partial sum per block to the scratch buffer, then one block adds the partials in index order in float64. The
 * summation order therefore depends only on n, never on the GPU or the run.
 */
final class CudaFlow {
    static final int PARTIAL_BLOCKS = 1024, PARTIAL_THREADS = 256;

    private final Launcher launcher;

    CudaFlow(Launcher launcher) { this.launcher = launcher; }

    void gaussianNoise(CudaTensor out, long seed, long offset) {
        long n = out.numElements();
        if (n == 0) return;
        Kernel k = Launcher.kernel("gaussianNoise", "gaussian_noise_fwd", out.dtype(), out.dtype());
        launcher.launch(k, launcher.cover(n), out, seed, offset, n);
    }

    void flowMatchingInput(CudaTensor xt, CudaTensor target, CudaTensor x0, CudaTensor noise, CudaTensor t, MatrixDims d) {
        CudaElementwise.requireSame("flowMatchingInput", "x0", x0.dtype(), "noise", noise.dtype());
        CudaElementwise.requireSame("flowMatchingInput", "xt", xt.dtype(), "target", target.dtype());
        long n = x0.numElements();
        if (n == 0) return;
        Kernel k = Launcher.kernel("flowMatchingInput", "flow_matching_fwd", x0.dtype(), xt.dtype());
        launcher.launch(k, launcher.cover((n + 7) / 8), xt, target, x0, noise, t, d.cols(), n);
    }

    void mseLoss(CudaTensor loss, CudaTensor dPred, CudaTensor pred, CudaTensor target, float gradScale, long n) {
        CudaElementwise.requireSame("mseLoss", "pred", pred.dtype(), "target", target.dtype());
        long partial = launcher.scratch(4L * PARTIAL_BLOCKS);
        Kernel k = Launcher.kernel("mseLoss", "mse_loss_fwd", pred.dtype(), dPred.dtype());
        // dPred = gradScale·2·(pred − target)/n, the factor formed in double and rounded once, as the CPU does.
        launcher.launch(k, LaunchConfig.of(PARTIAL_BLOCKS, PARTIAL_THREADS), dPred, partial, pred, target,
                (float) (2.0 * gradScale / n), n);
        reducePartials(loss, partial, 1.0 / n, false);
    }

    void sumOfSquares(CudaTensor normSquared, CudaTensor g) {
        long n = g.numElements();
        if (n == 0) return;
        long partial = launcher.scratch(4L * PARTIAL_BLOCKS);
        Kernel k = Launcher.kernel("sumOfSquares", "sum_of_squares_fwd", g.dtype(), g.dtype());
        launcher.launch(k, LaunchConfig.of(PARTIAL_BLOCKS, PARTIAL_THREADS), partial, g, n);
        reducePartials(normSquared, partial, 1.0, true);
    }

    /** out[0] = (accumulate ? out[0] : 0) + scale·Σ partial. */
    private void reducePartials(CudaTensor out, long partial, double scale, boolean accumulate) {
        launcher.launch(Kernel.REDUCE_PARTIALS_FWD_F32, LaunchConfig.of(1, 1024), out, partial, PARTIAL_BLOCKS, scale,
                accumulate ? 1 : 0);
    }
}
