package dev.wanlora.models.wan;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitWeights.Block;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Linear;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Pins the exact values of both random generators and of a load (SHA-256 over every tensor's key, dtype, shape and
 * values, in the model's order), so a change to how the key tree is walked cannot change a single bit: demo runs,
 * seeded test checkpoints, bench weights and bit-exact resumes depend on them. The hashes were taken on commit
 * 31925ca, before the key tree was described once (WanDitTree); they must never change without a reason in the log.
 */
class WanDitWeightsPinnedTest {

    /** Three blocks, so two can stream; widths multiples of 64 (the fp8 block size). */
    private static final WanDitConfig SMALL = new WanDitConfig(128, 256, 2, 3, 16, 16, 64, 32, 16, 1e-6f,
            WanDitConfig.PATCH_1_2_2);

    @TempDir
    Path tmp;

    @Test
    void randomCheckpointIsPinned() {
        MessageDigest digest = sha256();
        for (SafeTensorsWriter.Entry e : WanDitWeights.randomCheckpoint(SMALL, 5)) {
            update(digest, e.name() + " " + e.dtype() + " " + e.shape());
            digest.update(e.bytes().toArray(ValueLayout.JAVA_BYTE));
        }
        assertEquals("4fdb86a6f4f8b7feb927b798", hex(digest), "randomCheckpoint(SMALL, 5)");
    }

    @Test
    void deviceRandomWeightsArePinned() {
        Map<String, String> expected = Map.of(
                "NONE false 0", "eca5d54a292e3c58e91e9bc0",
                "NONE false 2", "eca5d54a292e3c58e91e9bc0",
                "FP8_SCALED false 0", "d5c010085e6817cfa4ac16fe",
                "FP8_SCALED false 2", "d5c010085e6817cfa4ac16fe",
                "FP8_SCALED true 1", "56a109e4634f73e1e94b94a8",
                "FP8_BASE false 1", "aaabc124d7f28cc70626bae6");
        Map<String, String> actual = new TreeMap<>();
        try (CpuBackend cpu = new CpuBackend()) {
            for (String key : expected.keySet()) {
                String[] p = key.split(" ");
                try (WanDitWeights w = WanDitWeights.random(cpu, SMALL, ComputePrecision.BF16_MUSUBI,
                        Quantization.valueOf(p[0]), Boolean.parseBoolean(p[1]), new BlockSwap(Integer.parseInt(p[2]), 2), 9)) {
                    actual.put(key, hash(cpu, w));
                }
            }
        }
        assertEquals(new TreeMap<>(expected), actual, "WanDitWeights.random(SMALL, seed 9): quantization, dequantized, swapped");
    }

    @Test
    void loadIsPinned() {
        Path file = tmp.resolve("small.safetensors");
        SafeTensorsWriter.write(file, WanDitWeights.randomCheckpoint(SMALL, 5), Map.of());
        Map<String, String> expected = Map.of(
                "BF16_MUSUBI NONE false 0", "6b575b5bb60ff7c8c1f84fd7",
                "BF16_MUSUBI NONE false 2", "6b575b5bb60ff7c8c1f84fd7",
                "FP32 NONE false 1", "86664dffbcb7cb4a7f93bafe",
                "BF16_MUSUBI FP8_SCALED false 2", "10947ab44f99de07efdabb28",
                "BF16_MUSUBI FP8_SCALED true 0", "ee43dddde7e53b0c02072a9f",
                "BF16_MUSUBI FP8_BASE false 1", "db33e17548c55120262edc95",
                "BF16_MUSUBI FP8_BASE true 0", "b9d65d581d952a8c09dec930");
        Map<String, String> actual = new TreeMap<>();
        try (CpuBackend cpu = new CpuBackend(); SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES)) {
            for (String key : expected.keySet()) {
                String[] p = key.split(" ");
                try (WanDitWeights w = WanDitWeights.load(cpu, st, SMALL, ComputePrecision.valueOf(p[0]),
                        Quantization.valueOf(p[1]), Boolean.parseBoolean(p[2]), new BlockSwap(Integer.parseInt(p[3]), 2))) {
                    actual.put(key, hash(cpu, w));
                }
            }
        }
        assertEquals(new TreeMap<>(expected), actual, "WanDitWeights.load of randomCheckpoint(SMALL, 5): precision, quantization, dequantized, swapped");
    }

    /** Every tensor of {@code w} in the model's order; a streamed block's Linears as its slot holds them. */
    static String hash(CpuBackend cpu, WanDitWeights w) {
        MessageDigest digest = sha256();
        for (Linear l : List.of(w.patchEmbedding(), w.textEmbedding0(), w.textEmbedding2(), w.timeEmbedding0(),
                w.timeEmbedding2(), w.timeProjection(), w.head())) {
            update(digest, cpu, l);
        }
        update(digest, cpu, "head.modulation", w.headModulation());
        for (int i = 0; i < w.blocks().size(); i++) {
            Block b = w.acquireBlock(i);
            for (BlockLinear which : BlockLinear.values()) update(digest, cpu, b.linear(which));
            update(digest, cpu, "modulation", b.modulation());
            for (Tensor t : List.of(b.selfAttnNormQ(), b.selfAttnNormK(), b.norm3Weight(), b.norm3Bias(),
                    b.crossAttnNormQ(), b.crossAttnNormK())) {
                update(digest, cpu, "norm", t);
            }
            w.releaseBlock(i);
        }
        return hex(digest);
    }

    private static void update(MessageDigest digest, CpuBackend cpu, Linear l) {
        update(digest, l.key());
        for (Tensor t : new Tensor[] {l.weight(), l.quantized(), l.scale(), l.bias()}) {
            if (t != null) update(digest, cpu, "", t);
        }
    }

    private static void update(MessageDigest digest, CpuBackend cpu, String what, Tensor t) {
        update(digest, what + " " + t.dtype() + " " + t.shape());
        float[] v = cpu.toFloats(t);
        byte[] bytes = new byte[v.length * 4];
        for (int i = 0; i < v.length; i++) {
            int bits = Float.floatToRawIntBits(v[i]);
            for (int k = 0; k < 4; k++) bytes[4 * i + k] = (byte) (bits >>> (8 * k));
        }
        digest.update(bytes);
    }

    private static void update(MessageDigest digest, String s) { digest.update(s.getBytes(StandardCharsets.UTF_8)); }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    private static String hex(MessageDigest digest) { return HexFormat.of().formatHex(digest.digest(), 0, 12); }
}
