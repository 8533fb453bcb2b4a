package dev.wanlora.models.sampling;

import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;

/**
 * {@link DenoisingLoopReuseTest} on the GPU: reusing each step's time embedding for both passes and each text's
 * cross-attention k/v for every step leaves the latents bit-identical to the plain loop's (the kept tensors are the
 * ones the plain forwards compute; the kernels are deterministic), in musubi's bf16 path with bf16 and fp8_scaled
 * weights (one block streamed); fp32 is the CPU test's (the CUDA attention is bf16 only).
 */
@RequiresCuda
@RequiresGolden("wan-tiny")
class DenoisingLoopReuseCudaTest {

    @Test
    void reuseLeavesEveryLatentBitIdenticalOnTheGpu() {
        DenoisingLoopReuseTest.assertReuseIsExact(CudaTests.backend(), ComputePrecision.BF16_MUSUBI, Quantization.NONE,
                BlockSwap.NONE);
        DenoisingLoopReuseTest.assertReuseIsExact(CudaTests.backend(), ComputePrecision.BF16_MUSUBI,
                Quantization.FP8_SCALED, new BlockSwap(1, 2));
        // No fp32 case: the CUDA attention kernels take bf16 q, k, v, out only (DenoisingLoopReuseTest covers fp32 on the CPU).
    }
}
