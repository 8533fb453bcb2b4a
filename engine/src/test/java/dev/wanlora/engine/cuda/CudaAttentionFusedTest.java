package dev.wanlora.engine.cuda;

/**
 * {@link CudaAttentionTest} with the Hopper path's fused backward forced at every shape (attention_bwd_fused_sm90_bf16:
 * dK, dV and the dQ contributions in one pass, dQ summed over key blocks in a fixed order, then dq_convert), also where
 * the default would take the two passes (small grids, cross-attention). The same bounds hold: the same roundings, only
 * the fp32 order of dQ's sum differs (per 128-key block in the tensor cores, then across blocks in ascending order).
 * On a card without the Hopper kernels it tests the portable path once more.
 */
@RequiresCuda
class CudaAttentionFusedTest extends CudaAttentionTest {
    @Override
    CudaAttention.Backward forcedBackward() { return CudaAttention.Backward.FUSED; }
}
