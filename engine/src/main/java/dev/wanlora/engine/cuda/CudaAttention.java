package dev.wanlora.engine.cuda;

/**
 * Multi-head attention on the GPU ({@code Backend.attention} / {@code attentionBackward}); owned by the attention
 * work (flash-attention kernels in {@code kernels/src/main/cuda/attention/}). Shapes as in the Backend contract:
 * q, out (B, Lq, N·D); k, v (B, Lk, N·D); lse (B, N, Lq) F32.
 */
public final class CudaAttention {
    private final CudaContext context;
    private final KernelLibrary kernels;

    public CudaAttention(CudaContext context, KernelLibrary kernels) {
        this.context = context;
        this.kernels = kernels;
    }

    public void forward(CudaTensor out, CudaTensor lse, CudaTensor q, CudaTensor k, CudaTensor v, int numHeads) {
        throw new UnsupportedOperationException("attention (cuda): kernels not landed yet");
    }

    public void backward(CudaTensor dq, CudaTensor dk, CudaTensor dv, CudaTensor dOut, CudaTensor q, CudaTensor k,
                         CudaTensor v, CudaTensor out, CudaTensor lse, int numHeads) {
        throw new UnsupportedOperationException("attention (cuda): kernels not landed yet");
    }
}
