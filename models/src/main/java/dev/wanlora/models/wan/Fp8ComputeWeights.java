package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.List;

/**
 * The block Linear weights of {@code --fp8_compute} (issue 11): each re-quantized at load to per-tensor E4M3 codes and
 * one F32 scale ({@code Backend.quantizeFp8Tensor}), the format cuBLASLt's fp8 GEMM scales (see the engine's
 * CudaFp8Gemm for why per tensor). The source is the weight the bf16 path computes with: musubi's
 * {@code --fp8_scaled} block codes dequantized exactly as {@code dequantizeFp8} does before each bf16 GEMM (or the
 * plain {@code --fp8_base} cast, or a scaled fp8 file's weight), so the fp8 path starts from the same numbers and adds
 * one more e4m3 rounding at a coarser scale.
 *
 * <p>Memory: only this copy is kept (1 byte per weight element plus 4 bytes per Linear, about half of musubi's block
 * codes plus bf16 scales, which are 1 + 2/64 bytes per element); the backward's bf16 weight (dx = dy·W) is this copy
 * dequantized ({@code dequantizeFp8Tensor}), so with {@code --fp8_compute} the backward multiplies by the fp8-compute
 * weight, not by musubi's block-dequantized one: the training gradient and its forward use the same weight.
 */
final class Fp8ComputeWeights {
    private Fp8ComputeWeights() {}

    /**
     * {codes (O, I) F8_E4M3, scale (1) F32} of a block Linear weight held as {@code held}: {weight} in the compute dtype,
     * or {codes, block scale (O, I/64, 1)}. The inputs are freed (and dropped from {@code owned}); the outputs are added.
     */
    static Tensor[] requantize(Backend backend, Tensor[] held, DType computeDType, List<Tensor> owned) {
        Tensor dense;
        if (held.length == 1) {
            dense = held[0];
        } else {
            dense = backend.allocate(computeDType, held[0].shape());
            backend.dequantizeFp8(dense, held[0], held[1]);
        }
        Tensor codes = backend.allocate(DType.F8_E4M3, dense.shape());
        owned.add(codes);
        Tensor scale = backend.allocate(DType.F32, Shape.of(1));
        owned.add(scale);
        backend.quantizeFp8Tensor(codes, scale, dense);
        if (dense != held[0]) dense.close();
        for (Tensor t : held) {
            owned.remove(t);
            t.close();
        }
        return new Tensor[] {codes, scale};
    }

    /** The one-line refusal of {@code --fp8_compute} without fp8 weights (the flag multiplies fp8 codes). */
    static IllegalArgumentException needsFp8Weights(String what) {
        return new IllegalArgumentException("--fp8_compute needs fp8 block weights, but " + what + " is loaded without"
                + " --fp8_base; add --fp8_base (and --fp8_scaled for a bf16 checkpoint) or drop --fp8_compute");
    }
}
