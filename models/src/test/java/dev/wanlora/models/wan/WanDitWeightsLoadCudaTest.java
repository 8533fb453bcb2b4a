package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.cuda.CudaTests;
import dev.wanlora.engine.cuda.RequiresCuda;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The loader on the GPU (file bytes through the pinned staging ring, conversions and the fp8 quantizer as kernels)
 * gives the very tensors the CPU reference loads: the golden tiny model under every quantization, with codes and
 * scales kept (the GPU's form), and with the last block streamed (quantized on the device, then copied to its pinned
 * host image).
 */
@RequiresCuda
class WanDitWeightsLoadCudaTest {
    private static final Backend CPU = new CpuBackend();

    @Test
    void everyQuantizationLoadsTheCpuReferenceTensors() {
        Path file = Golden.dir("wan-tiny").resolve("model.safetensors");
        Backend cuda = CudaTests.backend();
        for (Quantization q : Quantization.values()) {
            try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES)) {
                WanDitConfig config = WanDitConfig.fromCheckpoint(st);
                try (WanDitWeights cpu = WanDitWeights.load(CPU, st, config, ComputePrecision.BF16_MUSUBI, q, false);
                     WanDitWeights gpu = WanDitWeights.load(cuda, st, config, ComputePrecision.BF16_MUSUBI, q, false)) {
                    for (int b = 0; b < config.numLayers(); b++) {
                        for (BlockLinear which : BlockLinear.values()) {
                            WanDitWeights.Linear c = cpu.block(b).linear(which), g = gpu.block(b).linear(which);
                            String what = q + " block " + b + " " + which;
                            if (c.isQuantized()) {
                                same(what + " codes", c.quantized(), cuda, g.quantized());
                                same(what + " scale", c.scale(), cuda, g.scale());
                            } else {
                                same(what, c.weight(), cuda, g.weight());
                            }
                            same(what + " bias", c.bias(), cuda, g.bias());
                        }
                        same(q + " modulation " + b, cpu.block(b).modulation(), cuda, gpu.block(b).modulation());
                    }
                    same(q + " patch", cpu.patchEmbedding().weight(), cuda, gpu.patchEmbedding().weight());
                    same(q + " head modulation", cpu.headModulation(), cuda, gpu.headModulation());
                }
            }
            System.out.println("load[cuda vs cpu, " + q + "]: every tensor identical");
        }
    }

    /** A streamed block's weights reach the slot the same as a resident block's. */
    @Test
    void streamedBlockMatchesResident() {
        Path file = Golden.dir("wan-tiny").resolve("model.safetensors");
        Backend cuda = CudaTests.backend();
        try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES)) {
            WanDitConfig config = WanDitConfig.fromCheckpoint(st);
            try (WanDitWeights resident = WanDitWeights.load(cuda, st, config, ComputePrecision.BF16_MUSUBI,
                    Quantization.FP8_SCALED, false);
                 WanDitWeights swapped = WanDitWeights.load(cuda, st, config, ComputePrecision.BF16_MUSUBI,
                         Quantization.FP8_SCALED, false, new BlockSwap(1, 2))) {
                int last = config.numLayers() - 1;
                WanDitWeights.Block block = swapped.acquireBlock(last);
                for (BlockLinear which : BlockLinear.values()) {
                    same("streamed " + which + " codes", cuda, resident.block(last).linear(which).quantized(), cuda,
                            block.linear(which).quantized());
                    same("streamed " + which + " scale", cuda, resident.block(last).linear(which).scale(), cuda,
                            block.linear(which).scale());
                }
                swapped.releaseBlock(last);
            }
        }
    }

    /** expected (a CPU tensor) equals got (a tensor of backend) bit for bit, NaNs compared as NaN. */
    private static void same(String what, Tensor expected, Backend backend, Tensor got) {
        same(what, CPU, expected, backend, got);
    }

    private static void same(String what, Backend expectedOn, Tensor expected, Backend backend, Tensor got) {
        float[] e = expectedOn.toFloats(expected), g = backend.toFloats(got);
        int[] eb = new int[e.length], gb = new int[g.length];
        for (int i = 0; i < e.length; i++) eb[i] = Float.floatToIntBits(e[i]);
        for (int i = 0; i < g.length; i++) gb[i] = Float.floatToIntBits(g[i]);
        assertArrayEquals(eb, gb, what);
    }
}
