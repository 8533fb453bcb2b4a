package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.models.golden.GoldenVerifier;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import dev.wanlora.engine.testing.Golden;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --fp8_compute} runs of the DiT on one backend (the CPU test and the CUDA test share them), on {@link SwapRuns}'
 * models and inputs: the flag off changes nothing, streaming changes nothing with it on, and its numerics against the
 * goldens.
 */
final class Fp8ComputeRuns {
    private final Backend backend;
    private final SwapRuns runs;

    Fp8ComputeRuns(Backend backend, SwapRuns runs) {
        this.backend = backend;
        this.runs = runs;
    }

    WanDitWeights load(SafeTensors checkpoint, ComputePrecision precision, boolean dequantizeAtLoad, boolean fp8Compute,
                       BlockSwap swap) {
        return WanDitWeights.load(backend, checkpoint, WanDitConfig.fromCheckpoint(checkpoint), precision,
                Quantization.FP8_SCALED, dequantizeAtLoad, fp8Compute, swap, bytes -> {});
    }

    /** The flag off: the same weights (musubi's block codes) and the same numbers as the loader without the flag. */
    void assertFlagOffIsUnchanged(ComputePrecision precision, boolean dequantizeAtLoad) {
        List<float[]> before, off;
        try (WanDitWeights w = runs.load(runs.golden, precision, Quantization.FP8_SCALED, dequantizeAtLoad, BlockSwap.NONE)) {
            before = runs.run(w, precision, true);
        }
        try (WanDitWeights w = load(runs.golden, precision, dequantizeAtLoad, false, BlockSwap.NONE)) {
            assertFalse(w.isFp8Compute());
            assertFalse(w.block(0).linear(BlockLinear.FFN_0).hasTensorScale());
            off = runs.run(w, precision, true);
        }
        assertEquals(before.size(), off.size());
        for (int i = 0; i < before.size(); i++) assertArrayEquals(before.get(i), off.get(i), 0f, "tensor " + i);
        System.out.printf("--fp8_compute off [%s, %s]: %d tensors bit-identical to the loader without the flag%n",
                backend.name(), precision, before.size());
    }

    /** With the flag on, swapped runs equal resident ones bit for bit (per-tensor codes and scales stream as a unit). */
    void assertSwapIsBitIdentical(SafeTensors checkpoint, ComputePrecision precision, boolean dequantizeAtLoad, BlockSwap swap) {
        List<float[]> resident, swapped;
        try (WanDitWeights w = load(checkpoint, precision, dequantizeAtLoad, true, BlockSwap.NONE)) {
            assertTrue(w.isFp8Compute());
            resident = runs.run(w, precision, true);
        }
        try (WanDitWeights w = load(checkpoint, precision, dequantizeAtLoad, true, swap)) {
            assertTrue(w.isFp8Compute());
            swapped = runs.run(w, precision, true);
            assertTrue(w.streamer().loadCount() > 0);
        }
        for (int i = 0; i < resident.size(); i++) assertArrayEquals(resident.get(i), swapped.get(i), 0f, "tensor " + i);
        System.out.printf("--fp8_compute swap bit-identity [%s, %s, %s]: losses %.9g %.9g, %d tensors equal%n", backend.name(),
                precision, swap, resident.get(0)[0], resident.get(1)[0], resident.size());
    }

    /** GoldenVerifier's --fp8_compute report: every line printed; returns them. */
    List<GoldenVerifier.Comparison> goldenReport(GoldenVerifier.Mode mode) {
        GoldenVerifier verifier = new GoldenVerifier(backend, Golden.dir("wan-tiny"));
        return verifier.runFp8Compute(mode, c -> System.out.println(c.describe()));
    }
}
