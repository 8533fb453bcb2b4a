package dev.wanlora.models.sampling;

import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;

/**
 * {@link DenoisingLoopBatch2Test} on the GPU: CFG as one batch-2 forward against two batch-1 forwards in musubi's bf16
 * path, bf16 and fp8_scaled weights (one block streamed), with and without the k/v cache, within
 * {@link DenoisingLoopBatch2Test#GPU_LATENT_RELL2} (cuBLASLt may pick another kernel for twice the rows; the attention
 * and elementwise kernels work per batch row). fp32 is the CPU test's (the CUDA attention is bf16 only).
 */
@RequiresCuda
@RequiresGolden("wan-tiny")
class DenoisingLoopBatch2CudaTest {

    @Test
    void batch2EqualsTwoBatch1WithinBf16NoiseOnTheGpu() {
        DenoisingLoopBatch2Test.assertBatch2Matches(CudaTests.backend(), ComputePrecision.BF16_MUSUBI, Quantization.NONE,
                BlockSwap.NONE, DenoisingLoopBatch2Test.GPU_LATENT_RELL2);
        DenoisingLoopBatch2Test.assertBatch2Matches(CudaTests.backend(), ComputePrecision.BF16_MUSUBI,
                Quantization.FP8_SCALED, new BlockSwap(1, 2), DenoisingLoopBatch2Test.GPU_LATENT_RELL2);
    }
}
