package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.Backend.AdafactorStep;
import dev.wanlora.engine.backend.Backend.AdamWStep;
import dev.wanlora.engine.backend.Backend.ProdigyStep;
import dev.wanlora.engine.backend.OptimizerOps;
import dev.wanlora.engine.optim.AdamW8bit;
import dev.wanlora.engine.optim.DynamicQuantization;
import jcuda.Pointer;

import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;

/**
 * Launchers of the optimizer kernels: the clip coefficient, AdamW and 8-bit AdamW (see
 * {@code kernels/src/main/cuda/optim/}). Holds the two 256-entry dynamic quantization maps of the 8-bit optimizer in
 * device memory, uploaded once from {@link DynamicQuantization} so that both backends quantize with the same values.
 */
final class CudaOptim implements OptimizerOps.Kernels<CudaTensor>, AutoCloseable {
    /** The kernel's block: one quantization block of AdamW8bit.BLOCK_SIZE elements per CUDA block. */
    private static final int BLOCK_8BIT = 256;

    private final Launcher launcher;
    private final CudaFlow flow;
    private final DeviceBuffer maps; // (2, 256) F32: the signed map, then the unsigned map

    /** {@code flow}: its deterministic reduction serves sumOfSquares. */
    CudaOptim(Launcher launcher, CudaFlow flow) {
        if (AdamW8bit.BLOCK_SIZE != BLOCK_8BIT) {
            throw new IllegalStateException("adamw8bit (cuda): the kernel is built for blocks of " + BLOCK_8BIT
                    + " elements, but AdamW8bit.BLOCK_SIZE is " + AdamW8bit.BLOCK_SIZE);
        }
        this.launcher = launcher;
        this.flow = flow;
        float[] both = new float[2 * DynamicQuantization.MAP_SIZE];
        System.arraycopy(DynamicQuantization.signedMap(), 0, both, 0, DynamicQuantization.MAP_SIZE);
        System.arraycopy(DynamicQuantization.unsignedMap(), 0, both, DynamicQuantization.MAP_SIZE, DynamicQuantization.MAP_SIZE);
        this.maps = DeviceBuffer.allocate(launcher.context(), 4L * both.length, "8-bit optimizer quantization maps");
        // A pageable cuMemcpyHtoD may return before its DMA lands, on the legacy stream that the non-blocking compute
        // stream does not wait for (see CudaBackend.upload): wait for the whole context once, at construction.
        CudaException.check(cuMemcpyHtoD(maps.pointer(0), Pointer.to(both), 4L * both.length), "cuMemcpyHtoD",
                "uploading the 8-bit optimizer maps");
        CudaException.check(cuCtxSynchronize(), "cuCtxSynchronize", "after uploading the 8-bit optimizer maps");
    }

    @Override
    public void sumOfSquares(CudaTensor normSquared, CudaTensor g) { flow.sumOfSquares(normSquared, g); }

    @Override
    public void clipCoefficient(CudaTensor clip, CudaTensor normSquared, float maxNorm) {
        launcher.launch(Kernel.CLIP_COEFFICIENT_FWD_F32, LaunchConfig.of(1, 32), clip, normSquared, maxNorm);
    }

    /** Bias corrections in double on the host, exactly as CpuOptim forms them; the kernel mirrors its arithmetic. */
    @Override
    public void adamw(CudaTensor param, CudaTensor grad, CudaTensor m, CudaTensor v, CudaTensor gradScale, AdamWStep h) {
        long n = param.numElements();
        if (n == 0) return;
        double lr = h.learningRate(), b1 = h.beta1(), b2 = h.beta2();
        double stepSize = lr / (1 - Math.pow(b1, h.step()));
        double bc2Sqrt = Math.sqrt(1 - Math.pow(b2, h.step()));
        launcher.launch(Kernel.ADAMW_FWD_F32, launcher.cover(n), param, grad, m, v, gradScale, lr, b1, b2, (double) h.eps(),
                (double) h.weightDecay(), stepSize, bc2Sqrt, n);
    }

    /** The step size and c2 in float, formed exactly as CpuAdamW8bit forms them; the kernel mirrors the rest. */
    @Override
    public void adamw8bit(CudaTensor param, CudaTensor grad, CudaTensor mCodes, CudaTensor mAbsMax, CudaTensor vCodes,
                   CudaTensor vAbsMax, CudaTensor gradScale, AdamWStep h) {
        long n = param.numElements();
        if (n == 0) return;
        float beta1 = h.beta1(), beta2 = h.beta2(), lr = h.learningRate();
        float correction1 = 1.0f - (float) Math.pow(beta1, h.step());
        float correction2 = (float) Math.sqrt(1.0f - (float) Math.pow(beta2, h.step()));
        float stepSize = (-lr * correction2) / correction1;
        long blocks = (n + BLOCK_8BIT - 1) / BLOCK_8BIT;
        long signedMap = maps.address(), unsignedMap = signedMap + 4L * DynamicQuantization.MAP_SIZE;
        launcher.launch(Kernel.ADAMW8BIT_FWD_F32, LaunchConfig.of(blocks, BLOCK_8BIT), param, grad, mCodes, mAbsMax, vCodes,
                vAbsMax, gradScale, signedMap, unsignedMap, beta1, beta2, h.eps(), lr, h.weightDecay(), correction2, stepSize, n);
    }

    /** Prodigy's first pass: the partial sums (a fixed grid, as CudaFlow's), then one block adds them into the state. */
    @Override
    public void prodigyAccumulate(CudaTensor param, CudaTensor grad, CudaTensor p0, CudaTensor m, CudaTensor v, CudaTensor s,
                           CudaTensor gradScale, CudaTensor state, ProdigyStep h) {
        long n = param.numElements();
        if (n == 0 || h.learningRate() == 0) return; // as CpuProdigy: a zero lr skips the pass
        int blocks = CudaFlow.PARTIAL_BLOCKS;
        long partial = launcher.scratch(2L * Double.BYTES * blocks);
        boolean coupled = !h.decouple() && h.weightDecay() != 0;
        launcher.launch(Kernel.PRODIGY_ACCUMULATE_FWD_F32, LaunchConfig.of(blocks, CudaFlow.PARTIAL_THREADS), param, grad,
                p0, m, v, s, gradScale, state, partial, (double) h.learningRate(), (double) h.beta1(), (double) h.beta2(),
                (double) h.beta3(), (double) h.weightDecay(), coupled ? 1 : 0, h.safeguardWarmup() ? 1 : 0,
                h.useBiasCorrection() ? 1 : 0, (double) h.d0(), n);
        launcher.launch(Kernel.PRODIGY_ACCUMULATE_REDUCE_F32, LaunchConfig.of(1, 1024), state, partial, blocks,
                (double) h.learningRate(), h.useBiasCorrection() ? 1 : 0, (double) h.beta1(), (double) h.beta2(),
                (double) h.d0());
    }

    @Override
    public void prodigyAdapt(CudaTensor state, ProdigyStep h) {
        launcher.launch(Kernel.PRODIGY_ADAPT_F32, LaunchConfig.of(1, 32), state, (double) h.learningRate(),
                h.useBiasCorrection() ? 1 : 0, (double) h.beta1(), (double) h.beta2(), (double) h.beta3(), h.d0(),
                (double) h.dCoef(), (double) h.growthRate());
    }

    @Override
    public void prodigyUpdate(CudaTensor param, CudaTensor grad, CudaTensor m, CudaTensor v, CudaTensor gradScale,
                       CudaTensor state, ProdigyStep h) {
        long n = param.numElements();
        if (n == 0) return;
        float wd = h.weightDecay();
        launcher.launch(Kernel.PRODIGY_UPDATE_F32, launcher.cover(n), param, grad, m, v, gradScale, state, (double) h.eps(),
                (double) wd, h.decouple() && wd != 0 ? 1 : 0, !h.decouple() && wd != 0 ? 1 : 0, h.beta1() > 0 ? 1 : 0, n);
    }

    /**
     * One Adafactor step (see adafactor.cu for the kernels). Scratch, float64: the p² partials, the u² partials,
     * 8 scalars, then the row sums (R) and column sums (C) of a 2-D parameter.
     */
    @Override
    public void adafactor(CudaTensor param, CudaTensor grad, CudaTensor m, CudaTensor row, CudaTensor col, CudaTensor v,
                   CudaTensor gradScale, AdafactorStep h) {
        long n = param.numElements();
        if (n == 0) return;
        boolean factored = row != null;
        long rows = factored ? param.shape().dim(0) : 1, cols = factored ? param.shape().dim(1) : n;
        int blocks = CudaFlow.PARTIAL_BLOCKS, threads = CudaFlow.PARTIAL_THREADS;
        long base = launcher.scratch(Double.BYTES * (2L * blocks + 8 + (factored ? rows + cols : 0)));
        long pPartial = base, uPartial = base + Double.BYTES * (long) blocks, scalars = base + Double.BYTES * 2L * blocks;
        long rowSums = scalars + Double.BYTES * 8L, colSums = rowSums + Double.BYTES * rows;
        double beta2t = 1.0 - Math.pow(h.step(), h.decayRate());
        launcher.launch(Kernel.ADAFACTOR_SQUARE_SUM_F32, LaunchConfig.of(blocks, threads), pPartial, param, n);
        if (factored) {
            launcher.launch(Kernel.ADAFACTOR_LINES_F32, LaunchConfig.of(rows, Launcher.THREADS), rowSums, grad, gradScale,
                    (double) h.eps1(), cols, 1L, cols);
            launcher.launch(Kernel.ADAFACTOR_LINES_F32, LaunchConfig.of(cols, Launcher.THREADS), colSums, grad, gradScale,
                    (double) h.eps1(), 1L, cols, rows);
        }
        launcher.launch(Kernel.ADAFACTOR_FACTORS_F32, LaunchConfig.of(1, 1024), row, col, scalars, rowSums, colSums,
                pPartial, blocks, rows, cols, n, beta2t, h.scaleParameter() ? 1 : 0, (double) h.eps2(), h.relativeStepSize());
        launcher.launch(Kernel.ADAFACTOR_NORM_F32, LaunchConfig.of(blocks, threads), uPartial, grad, gradScale, v, row, col,
                scalars, cols, n, beta2t, (double) h.eps1());
        launcher.launch(Kernel.ADAFACTOR_CLIP_F32, LaunchConfig.of(1, 1024), scalars, uPartial, blocks, n,
                (double) h.clipThreshold());
        launcher.launch(Kernel.ADAFACTOR_APPLY_F32, launcher.cover(n), param, grad, gradScale, m, v, row, col, scalars, cols,
                n, (double) h.beta1(), (double) h.weightDecay());
    }

    @Override
    public void close() { maps.close(); }
}
