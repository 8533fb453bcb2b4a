package dev.wanlora.pipeline.train;

import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import dev.wanlora.pipeline.UserError;

/**
 * {@code --fp8_compute} (issue 11, opt-in, never on by default) for train, sample and bench: the block Linears' forward
 * GEMMs multiply per-tensor E4M3 codes of the input and the weight (cuBLASLt's fp8 GEMM; the weights re-quantized per
 * tensor at load, see models' Fp8ComputeWeights). Here: when the flag is refused, and its memory.
 *
 * <p>Measured on an NVIDIA H200 (one run, the s5-fp8 branch's device call; {@code wanlora bench --task t2v-14B
 * --resolution 384x208 --frames 45 --fp8_scaled --steps 3 --warmup 1}, no swap): 0.624 s/it without, 0.543 s/it with
 * the flag (1.15×); a 3744×5120×5120 Linear forward 247.8 µs (bf16 gemm) vs 145.0 µs (gemmFp8), ffn.0 672 vs 377 µs;
 * the per-call input quantization costs 32.5 ms per step and the backward's dequantization 10.4 ms. Numerics on the
 * wan-tiny goldens (GPU, bf16 activations): prediction relL2 1.78e-2 against musubi's fp8_scaled math (our bf16 path:
 * 5.5e-3) and 2.11e-2 against float32; LoRA gradients relL2 2.5e-2..1.2e-1, cosine ≥ 0.9939 (bf16 path: ≤ 1.7e-2,
 * ≥ 0.99988).
 */
public final class Fp8Compute {
    private Fp8Compute() {}

    /** The one-line startup note of the mode, with its numerics in brief. */
    public static final String NOTE = "--fp8_compute: block Linear forwards in per-tensor fp8 (E4M3 x E4M3 -> bf16, fp32"
            + " accumulation); the weights re-quantized per tensor at load, the backward multiplies by the same codes in bf16";

    /**
     * Refuses {@code --fp8_compute} without fp8 weights ({@code fix}: what to add) or on a GPU without fp8 tensor cores.
     * The CPU backend runs it: its reference defines the numbers (slowly).
     */
    public static void check(DeviceFacts device, Quantization quantization, String fix) {
        if (quantization == Quantization.NONE) {
            throw new UserError("--fp8_compute multiplies fp8 weights, but the block weights are bf16; " + fix
                    + " or drop --fp8_compute");
        }
        if (device.hasDeviceMemory() && !device.hasFp8TensorCores()) {
            throw new UserError("--fp8_compute: " + device.name() + " has no fp8 tensor cores (compute capability below 8.9);"
                    + " it needs an RTX 40xx, L4/L40, H100/H200 or newer; drop --fp8_compute");
        }
    }

    /**
     * The per-call fp8 codes of a Linear input, a memory plan item: {@code rows} (the most rows one Linear sees: B·L
     * tokens or B·512 text rows) × the widest input (the FFN's), one byte each.
     */
    public static MemoryPlan.Item inputCodes(WanDitConfig config, long rows) {
        return new MemoryPlan.Item("fp8 compute input codes", Math.multiplyExact(rows, (long) config.ffnDim()),
                "--fp8_compute: one Linear input as e4m3, " + rows + " x " + config.ffnDim());
    }
}
