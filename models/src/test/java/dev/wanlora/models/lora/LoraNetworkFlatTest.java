package dev.wanlora.models.lora;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/** The flat storage of a LoRA network: module tensors are views of one parameter and one gradient buffer. */
class LoraNetworkFlatTest {
    private static final WanDitConfig TINY = new WanDitConfig(256, 512, 2, 2, 16, 16, 4096, 256, 512, 1e-6f,
            WanDitConfig.PATCH_1_2_2);

    @Test
    void modulesAreBackToBackViewsInModuleOrder() {
        try (CpuBackend cpu = new CpuBackend(); LoraNetwork lora = LoraNetwork.create(cpu, TINY, 4, 4f, 9)) {
            // 2 blocks × (8 attention Linears 256→256 and ffn 256→512, 512→256) at rank 4
            long expected = 2L * 4 * (8 * (256 + 256) + 2 * (256 + 512));
            assertEquals(expected, lora.numParameters());
            assertEquals(expected, lora.parameters().numElements());
            float[] all = cpu.toFloats(lora.parameters());
            int at = 0;
            for (LoraModule m : lora.modules()) {
                float[] down = cpu.toFloats(m.down()), up = cpu.toFloats(m.up());
                assertArrayEquals(down, Arrays.copyOfRange(all, at, at + down.length), m.name() + " down");
                at += down.length;
                assertArrayEquals(up, Arrays.copyOfRange(all, at, at + up.length), m.name() + " up");
                at += up.length;
            }
            assertEquals(all.length, at);
            // a gradient written through a module view is in the flat gradient; zeroGrad clears everything at once
            LoraModule ffn0 = lora.module(1, BlockLinear.FFN_0);
            cpu.fill(ffn0.dUp(), 2f);
            double sum = 0;
            for (float g : cpu.toFloats(lora.gradients())) sum += g;
            assertEquals(2.0 * ffn0.dUp().numElements(), sum);
            lora.zeroGrad();
            for (float g : cpu.toFloats(lora.gradients())) assertEquals(0f, g);
        }
    }

    @Test
    void viewsLayOutAnyFlatTensorLikeTheParameters() {
        try (CpuBackend cpu = new CpuBackend(); LoraNetwork lora = LoraNetwork.create(cpu, TINY, 4, 4f, 9);
             Tensor bf16 = cpu.allocate(DType.BF16, lora.parameters().shape())) {
            cpu.copy(bf16, lora.parameters());
            LoraModule m = lora.module(0, BlockLinear.CROSS_ATTN_V);
            Tensor[] v = lora.views(bf16, m);
            assertEquals(m.down().shape(), v[0].shape());
            assertEquals(m.up().shape(), v[1].shape());
            float[] down = cpu.toFloats(m.down()), viewed = cpu.toFloats(v[0]);
            // each viewed element is exactly the bf16 rounding of the module's parameter at the same place
            for (int i = 0; i < down.length; i++) assertEquals(Bf16.round(down[i]), viewed[i]);
            try (Tensor small = cpu.allocate(DType.BF16, dev.wanlora.engine.tensor.Shape.of(10))) {
                assertThrows(IllegalArgumentException.class, () -> lora.views(small, m));
            }
        }
    }
}
