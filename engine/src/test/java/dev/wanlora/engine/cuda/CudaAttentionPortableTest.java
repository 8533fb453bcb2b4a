package dev.wanlora.engine.cuda;

/**
 * {@link CudaAttentionTest} with the portable (mma.sync) forward forced: on a Hopper card the parent class tests the
 * sm_90a forward and this one the kernels our RTX 3090/4090 users run; elsewhere both test the portable path.
 */
@RequiresCuda
class CudaAttentionPortableTest extends CudaAttentionTest {
    @Override
    CudaAttention.Path forcedPath() { return CudaAttention.Path.PORTABLE; }
}
