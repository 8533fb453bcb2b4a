package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.FlowOps;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;

/**
 * Launchers of the flow-matching kernels (noise, noisy input and target) and the deterministic reductions shared
 * with the optimizer (MSE loss, sum of squares): a FIXED grid of {@link #PARTIAL_BLOCKS} × 256 threads writes one
 * partial sum per block to the scratch buffer, then one block adds the partials in index order in float64. The
 * summation order therefore depends only on n, never on the GPU or the run.
 */
final class CudaFlow implements FlowOps.Kernels<CudaTensor> {
    static final int PARTIAL_BLOCKS = 1024, PARTIAL_THREADS = 256;

    private final Launcher launcher;

    CudaFlow(Launcher launcher) { this.launcher = launcher; }

    @Override
    public void gaussianNoise(CudaTensor out, long seed, long offset) {
        long n = out.numElements();
        if (n == 0) return;
        Kernel k = Launcher.kernel("gaussianNoise", "gaussian_noise_fwd", out.dtype(), out.dtype());
        launcher.launch(k, launcher.cover(n), out, seed, offset, n);
    }

    /** Each tensor F32 or BF16 independently (the kernel takes the dtypes at run time). */
    @Override
    public void flowMatchingInput(CudaTensor xt, CudaTensor target, CudaTensor x0, CudaTensor noise, CudaTensor t, MatrixDims d) {
        long n = x0.numElements();
        if (n == 0) return;
        launcher.launch(Kernel.FLOW_MATCHING_FWD_ANY, launcher.cover(n), xt, Launcher.paramType(xt), target,
                Launcher.paramType(target), x0, Launcher.paramType(x0), noise, Launcher.paramType(noise), t, d.cols(), n);
    }

    /** Each tensor F32 or BF16 independently. */
    @Override
    public void mseLoss(CudaTensor loss, CudaTensor dPred, CudaTensor pred, CudaTensor target, float gradScale, long n) {
        long partial = launcher.scratch(4L * PARTIAL_BLOCKS);
        // dPred = gradScale·2·(pred − target)/n, the factor formed in double and rounded once to float.
        launcher.launch(Kernel.MSE_LOSS_FWD_ANY, LaunchConfig.of(PARTIAL_BLOCKS, PARTIAL_THREADS), dPred,
                Launcher.paramType(dPred), partial, pred, Launcher.paramType(pred), target, Launcher.paramType(target),
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
