package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.ByteSource;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The loader reads a checkpoint front to back (issue 13): on a file stored in name order, as official files are
 * (blocks.0, blocks.1, blocks.10, blocks.11, blocks.2, …, head, patch_embedding, …), every read the backend is asked
 * for starts after the previous one, each tensor is read once, and the weights are those of the same tensors stored in
 * the model's order.
 */
class WanDitLoaderOrderTest {

    /** Twelve blocks, so name order and block order differ (10 and 11 sort before 2). */
    private static final WanDitConfig TWELVE = new WanDitConfig(128, 256, 2, 12, 16, 16, 64, 32, 16, 1e-6f,
            WanDitConfig.PATCH_1_2_2);

    @TempDir
    Path tmp;

    @Test
    void readsTheFileFrontToBackIntoTheSameWeights() {
        List<SafeTensorsWriter.Entry> entries = WanDitWeights.randomCheckpoint(TWELVE, 3);
        Path modelOrder = tmp.resolve("model-order.safetensors");
        SafeTensorsWriter.write(modelOrder, entries, Map.of());
        Path nameOrder = tmp.resolve("name-order.safetensors");
        List<SafeTensorsWriter.Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparing(SafeTensorsWriter.Entry::name));
        SafeTensorsWriter.write(nameOrder, sorted, Map.of());

        try (CpuBackend cpu = new CpuBackend();
             SafeTensors byModel = SafeTensors.open(modelOrder, SafeTensors.DIT_PREFIXES);
             SafeTensors byName = SafeTensors.open(nameOrder, SafeTensors.DIT_PREFIXES)) {
            assertNotEquals(WanDitTree.of(TWELVE).shapes().keySet().stream().toList(), byName.keysInFileOrder(),
                    "the name-ordered file must not be in the model's order, or this test proves nothing");
            for (Quantization q : Quantization.values()) {
                for (boolean dequantize : new boolean[] {false, true}) {
                    List<Long> positions = new ArrayList<>();
                    String loaded;
                    try (WanDitWeights w = WanDitWeights.load(recording(cpu, positions), byName, TWELVE,
                            ComputePrecision.BF16_MUSUBI, q, dequantize)) {
                        loaded = WanDitWeightsPinnedTest.hash(cpu, w);
                    }
                    String what = q + (dequantize ? " dequantized at load" : "");
                    assertEquals(byName.keys().size(), positions.size(), what + ": every tensor read once");
                    for (int i = 1; i < positions.size(); i++) {
                        assertTrue(positions.get(i) > positions.get(i - 1), what + ": read " + i + " at "
                                + positions.get(i) + " comes before the previous one at " + positions.get(i - 1));
                    }
                    try (WanDitWeights w = WanDitWeights.load(cpu, byModel, TWELVE, ComputePrecision.BF16_MUSUBI, q,
                            dequantize)) {
                        assertEquals(WanDitWeightsPinnedTest.hash(cpu, w), loaded, what + ": the same weights");
                    }
                    System.out.println("load order[" + what + "]: " + positions.size()
                            + " reads, file offsets strictly increasing, weights equal to the model-ordered file's OK");
                }
            }
            // Streamed blocks (their Linear weights go to the streamer's host images as they are read): the same
            // weights from either file. BlockStreamer needs the CpuBackend itself, so no recording here.
            for (Quantization q : Quantization.values()) {
                BlockSwap swap = new BlockSwap(9, 3);
                try (WanDitWeights a = WanDitWeights.load(cpu, byName, TWELVE, ComputePrecision.BF16_MUSUBI, q, false, swap);
                     WanDitWeights b = WanDitWeights.load(cpu, byModel, TWELVE, ComputePrecision.BF16_MUSUBI, q, false,
                             BlockSwap.NONE)) {
                    assertEquals(WanDitWeightsPinnedTest.hash(cpu, b), WanDitWeightsPinnedTest.hash(cpu, a),
                            q + " with 9 of 12 blocks swapped");
                }
            }
        }
    }

    /** {@code inner} with every {@link Backend#writeBytes} logging the file position its source starts at. */
    private static Backend recording(CpuBackend inner, List<Long> positions) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> {
                    if (method.getName().equals("writeBytes") && args[1] instanceof ByteSource.FileRange range) {
                        positions.add(range.position());
                    }
                    try {
                        return method.invoke(inner, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }
}
