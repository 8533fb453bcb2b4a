package dev.wanlora.engine.cpu;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.optim.AdamW8bit;
import dev.wanlora.engine.optim.DynamicQuantization;

/**
 * The CPU reference of {@link Backend#adamw8bit}: bitsandbytes' {@code kOptimizerStatic8bit2StateBlockwise} for
 * ADAM with weight decay (bitsandbytes {@code csrc/kernels.cu} at 95f9af309d4d5793847169c39288dcd3fcbdf564, launched
 * by {@code csrc/ops.cu} with BLOCKSIZE_2STATE 256, one element per thread), written out serially in float32.
 *
 * <p>Per block of {@link AdamW8bit#BLOCK_SIZE} elements, with the block's old absmax1/absmax2:
 * <pre>
 *   g  = grad·gradScale                                  (bitsandbytes' gnorm_scale)
 *   v  = udynamic[vCode]·absmax2·β2 + (1−β2)·g·g
 *   m  =  dynamic[mCode]·absmax1·β1 + (1−β1)·g
 *   absmax1 = max|m|, absmax2 = max|v| over the block   (the new scales)
 *   p  = p + step_size·m/(√v + c2·eps),  step_size = −lr·c2/c1, c1 = 1−β1^t, c2 = √(1−β2^t)
 *   p  = p·(1 − lr·wd)                                   (after the Adam step, unlike torch's AdamW)
 *   mCode = quantize_2D(m/absmax1) with the sign fix, vCode = quantize_2D(v/absmax2)
 * </pre>
 * A non-finite gradient element sets m = v = 0 there and leaves p unchanged, as the kernel does. In the last, partial
 * block the kernel also processes padding elements (g = 0, mCode 128), whose m = dynamic[128]·absmax1·β1 can raise
 * the new absmax1; we include it.
 *
 * <p>Differences from the GPU kernel, all within a float32 rounding of the same formulas: the kernel uses
 * {@code __powf} and {@code __fdividef} (fast approximations) and nvcc fuses multiply-adds; here every operation is
 * a correctly rounded float operation ({@code Math.pow} in double, rounded once).
 */
final class CpuAdamW8bit {
    private CpuAdamW8bit() {}

    /** The code the kernel loads for the padding elements of the last block (BlockLoad's default for state1). */
    private static final int PADDING_M_CODE = 128;

    static void step(CpuTensor param, CpuTensor grad, CpuTensor mCodes, CpuTensor mAbsMax, CpuTensor vCodes,
                     CpuTensor vAbsMax, CpuTensor gradScale, Backend.AdamWStep hyper) {
        final float beta1 = hyper.beta1(), beta2 = hyper.beta2(), eps = hyper.eps(), lr = hyper.learningRate();
        final float weightDecay = hyper.weightDecay();
        final float correction1 = 1.0f - (float) Math.pow(beta1, hyper.step());
        final float correction2 = (float) Math.sqrt(1.0f - (float) Math.pow(beta2, hyper.step()));
        final float stepSize = (-lr * correction2) / correction1;
        final float gnormScale = gradScale.get(0);
        final int n = param.size();
        final int blockSize = AdamW8bit.BLOCK_SIZE;
        final int blocks = (n + blockSize - 1) / blockSize;
        // blocks are independent: one chunk of work per block, in parallel
        CpuRows.forEachChunk(blocks, (fromBlock, toBlock) -> {
            float[] m = new float[blockSize];
            float[] v = new float[blockSize];
            for (int b = fromBlock; b < toBlock; b++) {
                int begin = b * blockSize;
                int valid = Math.min(blockSize, n - begin);
                float oldAbsMax1 = mAbsMax.get(b), oldAbsMax2 = vAbsMax.get(b);
                float newAbsMax1 = 0f, newAbsMax2 = 0f; // -FLT_MAX in the kernel, then max with |·| ≥ 0
                for (int j = 0; j < valid; j++) {
                    float g = grad.get(begin + j);
                    if (Float.isFinite(g)) {
                        g *= gnormScale;
                        float s2 = DynamicQuantization.unsignedValue((int) vCodes.get(begin + j)) * oldAbsMax2;
                        v[j] = (s2 * beta2) + (((1.0f - beta2) * g) * g);
                        float s1 = DynamicQuantization.signedValue((int) mCodes.get(begin + j)) * oldAbsMax1;
                        m[j] = (s1 * beta1) + ((1.0f - beta1) * g);
                    } else {
                        m[j] = 0f;
                        v[j] = 0f;
                    }
                    newAbsMax1 = Math.max(newAbsMax1, Math.abs(m[j]));
                    newAbsMax2 = Math.max(newAbsMax2, Math.abs(v[j]));
                }
                if (valid < blockSize) {
                    // padding: g = 0, so m = dynamic[128]·absmax1·β1 + 0 and v = udynamic[0]·absmax2·β2 + 0 = 0
                    float padding = (DynamicQuantization.signedValue(PADDING_M_CODE) * oldAbsMax1) * beta1 + 0f;
                    newAbsMax1 = Math.max(newAbsMax1, Math.abs(padding));
                }
                mAbsMax.store(b, newAbsMax1);
                vAbsMax.store(b, newAbsMax2);
                for (int j = 0; j < valid; j++) {
                    int i = begin + j;
                    if (Float.isFinite(grad.get(i))) {
                        float p = param.get(i) + stepSize * (m[j] / ((float) Math.sqrt(v[j]) + correction2 * eps));
                        if (weightDecay > 0.0f) p = p * (1.0f - lr * weightDecay);
                        param.store(i, p);
                    }
                    mCodes.store(i, DynamicQuantization.quantizeKeepingSign(m[j] / newAbsMax1, m[j]));
                    vCodes.store(i, DynamicQuantization.quantizeUnsigned(v[j] / newAbsMax2));
                }
            }
        });
    }
}
