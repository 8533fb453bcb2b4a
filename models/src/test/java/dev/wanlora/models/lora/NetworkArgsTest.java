package dev.wanlora.models.lora;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** --network_args as musubi's lora_wan reads them, and the module subsets they select. */
class NetworkArgsTest {
    private static final WanDitConfig TINY = new WanDitConfig(256, 512, 2, 2, 16, 16, 4096, 256, 512, 1e-6f,
            WanDitConfig.PATCH_1_2_2);

    @Test
    void parsesMusubisKeys() {
        var a = NetworkArgs.parse(List.of("loraplus_lr_ratio=4", "verbose=True", "exclude_patterns=['.*ffn.*']",
                "include_patterns=[r'blocks.1.ffn.0']".replace("r'", "'")));
        assertTrue(a.hasLoraplus());
        assertEquals(4.0, a.loraplusLrRatio());
        assertTrue(a.isVerbose());
        assertEquals(2, a.excludePatterns().size()); // the given one and lora_wan's default
        assertEquals(NetworkArgs.WAN_EXCLUDE, a.excludePatterns().getLast().pattern());
        // fullmatch: excluded unless an include pattern matches too
        var keep = a.selection();
        assertTrue(keep.test("blocks.0.self_attn.q"));
        assertFalse(keep.test("blocks.0.ffn.0"));
        assertFalse(keep.test("blocks.1.ffn.2"));
        assertTrue(keep.test("blocks.1.ffn.0"));
        // verbose is True only for the string "True", as lora.py compares it
        assertFalse(NetworkArgs.parse(List.of("verbose=true")).isVerbose());
        // lora_wan's default exclusion matches no block Linear: every module is kept
        var none = NetworkArgs.none().selection();
        for (BlockLinear l : BlockLinear.values()) assertTrue(none.test(LoraNetwork.originalName(3, l)), l.toString());
        assertFalse(NetworkArgs.none().hasLoraplus());
    }

    @Test
    void refusalsNameTheKey() {
        var e = assertThrows(IllegalArgumentException.class, () -> NetworkArgs.parse(List.of("loraplus_ratio=4")));
        assertEquals("--network_args: unknown key 'loraplus_ratio'; networks.lora_wan keys wanlora supports:"
                + " exclude_patterns, include_patterns, loraplus_lr_ratio, verbose", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NetworkArgs.parse(List.of("rank_dropout=0.1")));
        assertTrue(e.getMessage().startsWith("--network_args rank_dropout: not supported"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NetworkArgs.parse(List.of("exclude_patterns=.*ffn.*")));
        assertTrue(e.getMessage().startsWith("--network_args exclude_patterns: "), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NetworkArgs.parse(List.of("exclude_patterns=['(']")));
        assertTrue(e.getMessage().startsWith("--network_args exclude_patterns: invalid regular expression '('"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> NetworkArgs.parse(List.of("loraplus_lr_ratio=0")));
        assertEquals("--network_args loraplus_lr_ratio: got 0.0, expected a positive number", e.getMessage());
    }

    @Test
    void subsetNetworkRoundTripsThroughItsWeights() {
        var cpu = new CpuBackend();
        var keep = NetworkArgs.parse(List.of("exclude_patterns=['.*cross_attn.*', 'blocks.0.ffn.*']")).selection();
        try (LoraNetwork net = LoraNetwork.create(cpu, TINY, 4, 4, 7, keep)) {
            // 2 blocks × 10 − 2 × 4 cross_attn − 2 ffn of block 0 = 10 modules
            assertEquals(10, net.modules().size());
            assertNull(net.module(0, BlockLinear.CROSS_ATTN_Q));
            assertNull(net.module(0, BlockLinear.FFN_0));
            assertNotNull(net.module(1, BlockLinear.FFN_0));
            assertEquals("lora_unet_blocks_0_self_attn_q", net.modules().getFirst().name());
            long expected = 0;
            for (LoraModule m : net.modules()) expected += m.down().numElements() + m.up().numElements();
            assertEquals(expected, net.numParameters());
            try (LoraNetwork back = LoraNetwork.fromWeights(cpu, TINY, net.toWeights(), "subset.safetensors", keep)) {
                assertEquals(10, back.modules().size());
            }
            // the subset file is not a whole network
            var e = assertThrows(IllegalArgumentException.class,
                    () -> LoraNetwork.fromWeights(cpu, TINY, net.toWeights(), "subset.safetensors"));
            assertTrue(e.getMessage().startsWith("subset.safetensors: missing LoRA module lora_unet_blocks_0_cross_attn_q"),
                    e.getMessage());
        }
        var e = assertThrows(IllegalArgumentException.class,
                () -> LoraNetwork.create(cpu, TINY, 4, 4, 7, NetworkArgs.parse(List.of("exclude_patterns=['.*']")).selection()));
        assertTrue(e.getMessage().startsWith("--network_args: the include/exclude patterns leave no module to train"),
                e.getMessage());
    }
}
