package dev.wanlora.models.lora;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LoraNetworkTest {

    private static final Backend BACKEND = new CpuBackend();
    /** The golden's tiny shapes: dim 256, ffn 512, 2 blocks. */
    private static final WanDitConfig TINY = new WanDitConfig(256, 512, 2, 2, 16, 16, 4096, 256, 512, 1e-6f,
            WanDitConfig.PATCH_1_2_2);

    @Test
    void createFollowsMusubiNamesShapesAndInit() {
        try (LoraNetwork lora = LoraNetwork.create(BACKEND, TINY, 4, 2f, 2025)) {
            assertEquals(20, lora.modules().size());
            LoraModule first = lora.modules().getFirst();
            assertEquals("lora_unet_blocks_0_self_attn_q", first.name());
            assertEquals("lora_unet_blocks_1_ffn_2", lora.modules().getLast().name());
            assertEquals("lora_unet_blocks_1_cross_attn_o", lora.module(1, BlockLinear.CROSS_ATTN_O).name());
            LoraModule ffn2 = lora.module(0, BlockLinear.FFN_2);
            assertEquals(Shape.of(4, 512), ffn2.down().shape());
            assertEquals(Shape.of(256, 4), ffn2.up().shape());
            assertEquals("ffn.2", ffn2.target());
            assertEquals(0.5f, ffn2.scale());
            // kaiming_uniform(a=√5) on (4, 512): U(−1/√512, 1/√512); up is zero.
            float bound = (float) (1 / Math.sqrt(512));
            float[] down = BACKEND.toFloats(ffn2.down());
            float max = 0;
            double mean = 0;
            for (float v : down) {
                max = Math.max(max, Math.abs(v));
                mean += v / down.length;
            }
            assertTrue(max <= bound && max > 0.95f * bound, "max |down| " + max + " vs bound " + bound);
            // mean of 2048 uniforms: standard deviation bound/√(3·2048) ≈ 5.7e-4; 5 sigma.
            assertTrue(Math.abs(mean) < 5 * bound / Math.sqrt(3 * 2048.0), "mean " + mean);
            assertArrayEquals(new float[256 * 4], BACKEND.toFloats(ffn2.up()), 0f);
        }
    }

    @Test
    void sameSeedSameInitAndAlphaZeroMeansRank() {
        try (LoraNetwork a = LoraNetwork.create(BACKEND, TINY, 8, 0f, 7);
             LoraNetwork b = LoraNetwork.create(BACKEND, TINY, 8, 0f, 7)) {
            assertEquals(8f, a.modules().get(3).alpha());
            assertEquals(1f, a.modules().get(3).scale());
            for (int i = 0; i < a.modules().size(); i++) {
                assertArrayEquals(BACKEND.toFloats(a.modules().get(i).down()), BACKEND.toFloats(b.modules().get(i).down()), 0f);
            }
            // Σ R·(I + O) per block: 8·(256+256)·8 (q,k,v,o ×2) + 8·(256+512)·2 (ffn) = 45056.
            assertEquals(2 * 45056, a.numParameters());
        }
    }

    @Test
    void fromWeightsRoundTripsAndNamesAMissingModule() {
        try (LoraNetwork source = LoraNetwork.create(BACKEND, TINY, 4, 2f, 1)) {
            List<LoraModuleWeights> weights = new ArrayList<>(source.toWeights());
            try (LoraNetwork copy = LoraNetwork.fromWeights(BACKEND, TINY, weights, "x.safetensors")) {
                assertEquals(0.5f, copy.modules().get(5).scale());
                assertArrayEquals(BACKEND.toFloats(source.modules().get(5).down()),
                        BACKEND.toFloats(copy.modules().get(5).down()), 0f);
            }
            weights.removeIf(w -> w.name().equals("lora_unet_blocks_1_ffn_0"));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> LoraNetwork.fromWeights(BACKEND, TINY, weights, "x.safetensors"));
            assertEquals("x.safetensors: missing LoRA module lora_unet_blocks_1_ffn_0; expected musubi's lora_wan modules"
                    + " (lora_unet_blocks_{i}_{self_attn|cross_attn}_{q|k|v|o}, _ffn_{0|2}) for 2 blocks", e.getMessage());
        }
    }
}
