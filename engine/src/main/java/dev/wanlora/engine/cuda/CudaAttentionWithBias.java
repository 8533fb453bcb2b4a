package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.tensor.DType;

/**
 * Launcher of T5 attention (Backend#attentionWithBias, kernels/src/main/cuda/attention/attention_bias.cu): one warp
 * per query row, 4 warps per block, each warp with (Lk + D) floats of dynamic shared memory. Supported: q, k, v, out
 * all F32 or all BF16; bias F32 or BF16; head dim D up to 128 (umT5: 64; the tiny golden: 16); Lk up to what fits in
 * 48 KiB of shared memory per block (Lk + D ≤ 3072; umT5 uses 512).
 */
final class CudaAttentionWithBias {
    private static final int WARPS = 4;
    private static final int MAX_SHARED_BYTES = 48 * 1024; // the default per-block limit, no opt-in needed

    private final Launcher launcher;

    CudaAttentionWithBias(Launcher launcher) { this.launcher = launcher; }

    void forward(CudaTensor out, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor bias, CudaTensor keyMask,
                 AttentionDims d) {
        String op = "attentionWithBias";
        DType t = q.dtype();
        if (k.dtype() != t || v.dtype() != t || out.dtype() != t) {
            throw new UnsupportedOperationException(op + " (cuda): no kernel for q=" + q.dtype() + ", k=" + k.dtype() + ", v="
                    + v.dtype() + ", out=" + out.dtype() + "; supported: q, k, v, out all F32 or all BF16");
        }
        long headDim = d.headDim();
        if (headDim > 128) {
            throw new UnsupportedOperationException(op + " (cuda): no kernel for head dim " + headDim
                    + "; supported: head dims up to 128");
        }
        long sharedBytes = WARPS * (d.keys() + headDim) * Float.BYTES;
        if (sharedBytes > MAX_SHARED_BYTES) {
            throw new UnsupportedOperationException(op + " (cuda): " + d.keys() + " keys need " + sharedBytes
                    + " bytes of shared memory per block; supported: Lk + D <= " + (MAX_SHARED_BYTES / WARPS / Float.BYTES));
        }
        long rows = d.batch() * d.heads() * d.queries();
        if (rows == 0) return;
        long blocks = Math.min((rows + WARPS - 1) / WARPS, (long) launcher.multiprocessorCount() * 32);
        Kernel kernel = t == DType.BF16 ? Kernel.ATTENTION_BIAS_FWD_BF16 : Kernel.ATTENTION_BIAS_FWD_F32;
        launcher.launch(kernel, LaunchConfig.of(blocks, WARPS * 32, (int) sharedBytes), out, q, k, v, bias,
                Launcher.paramType(bias), keyMask, (int) d.batch(), (int) d.queries(), (int) d.keys(), d.heads(), (int) headDim);
    }
}
