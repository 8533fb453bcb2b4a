package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cuda.Parity.Pair;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static dev.wanlora.engine.cuda.Parity.*;
import static dev.wanlora.engine.tensor.DType.BF16;
import static dev.wanlora.engine.tensor.DType.F32;
import static dev.wanlora.engine.tensor.DType.F8_E4M3;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The fp8 compute path ({@code --fp8_compute}): our per-tensor quantize/dequantize kernels against CpuFp8Gemm (bit for
 * bit: the amax is exact, the scale one IEEE division, each code one IEEE division and one round-to-nearest-even cast)
 * and cuBLASLt's fp8 GEMM against the CPU's exact sum on the <b>same codes</b> (the test of the kernel, not of the
 * format; STYLE.md §4's fp8 row). Tolerance of the GEMM: both sides start from identical e4m3 codes whose products are
 * exact; the CPU sums them exactly (double), cuBLASLt in fp32 with Hopper's fp8 MMA partial sums promoted to fp32
 * (≲ 2⁻¹⁴ relative per promoted chunk, ≲ 1e-4 over K = 13824 even without cancellation), then both multiply by the
 * same two scales and round to bf16 (u = 2⁻⁸): results differ by at most one bf16 ulp where they straddle a rounding
 * boundary, so Parity's BF16 bounds (relL2 5e-3, 2 ulp elementwise) hold with room. The real-size GEMMs are a 14B
 * block's Linears at L = 3744 (384x208x45): the GPU computes all rows, the CPU 64 of them.
 */
@RequiresCuda
class CudaFp8GemmParityTest {

    /** Codes and scale bit for bit, for a ragged tiny x and a 14B activation, bf16 and f32. */
    @Test
    void quantizeIsBitExact() {
        Shape[] shapes = {Shape.of(3, 40), Shape.of(3744, 5120), Shape.of(512, 13824)};
        for (DType t : new DType[] {BF16, F32}) {
            for (Shape s : shapes) {
                Pair x = random(t, s, 41, 3);
                Pair codes = output(F8_E4M3, s), scale = output(F32, Shape.of(1));
                CPU.quantizeFp8Tensor(codes.cpu(), scale.cpu(), x.cpu());
                cuda().quantizeFp8Tensor(codes.cuda(), scale.cuda(), x.cuda());
                checkExact(label("quantizeFp8Tensor.scale", t, "x", s), scale);
                checkExact(label("quantizeFp8Tensor.codes", t, "x", s), codes);
                Pair back = output(t, s);
                CPU.dequantizeFp8Tensor(back.cpu(), codes.cpu(), scale.cpu());
                cuda().dequantizeFp8Tensor(back.cuda(), codes.cuda(), scale.cuda());
                checkExact(label("dequantizeFp8Tensor", t, "codes", s), back);
                closeAll(x, codes, scale, back);
            }
        }
    }

    /** An all-zero tensor gets scale 1 and zero codes (the kernel's amax = 0 branch). */
    @Test
    void zerosQuantizeWithUnitScale() {
        Pair x = zeros(BF16, Shape.of(5, 48)), codes = output(F8_E4M3, Shape.of(5, 48)), scale = output(F32, Shape.of(1));
        CPU.quantizeFp8Tensor(codes.cpu(), scale.cpu(), x.cpu());
        cuda().quantizeFp8Tensor(codes.cuda(), scale.cuda(), x.cuda());
        checkExact(label("quantizeFp8Tensor.scale(zeros)", BF16, "x", x.shape()), scale);
        checkExact(label("quantizeFp8Tensor.codes(zeros)", BF16, "x", x.shape()), codes);
        closeAll(x, codes, scale);
    }

    /** A tiny problem with and without bias (M = 3: fewer rows than any tile). */
    @Test
    void tinyGemm() {
        if (!hasFp8TensorCores()) return;
        for (boolean withBias : new boolean[] {false, true}) {
            Operands o = Operands.of(3, 64, 48, withBias, 51);
            Pair y = output(BF16, Shape.of(3, 48));
            CPU.gemmFp8(y.cpu(), o.x.cpu(), o.xs.cpu(), o.w.cpu(), o.ws.cpu(), o.bias == null ? null : o.bias.cpu());
            cuda().gemmFp8(y.cuda(), o.x.cuda(), o.xs.cuda(), o.w.cuda(), o.ws.cuda(), o.bias == null ? null : o.bias.cuda());
            check(label("gemmFp8" + (withBias ? "+bias" : ""), BF16, "x", o.x.shape()), y);
            o.close();
            closeAll(y);
        }
    }

    /** q/k/v/o, ffn.0 and ffn.2 of a Wan2.1-14B block at L = 3744, and cross-attention k/v over 512 text rows. */
    @Test
    void realBlockShapes() {
        if (!hasFp8TensorCores()) return;
        long[][] mkn = {{3744, 5120, 5120}, {3744, 5120, 13824}, {3744, 13824, 5120}, {512, 5120, 5120}};
        long rows = 64;
        for (long[] s : mkn) {
            long m = s[0], k = s[1], n = s[2];
            Operands o = Operands.of(m, k, n, true, 61);
            CudaTensor yAll = cuda().allocate(BF16, Shape.of(m, n));
            cuda().gemmFp8(yAll, o.x.cuda(), o.xs.cuda(), o.w.cuda(), o.ws.cuda(), o.bias.cuda());
            Pair y = output(BF16, Shape.of(rows, n));
            cuda().copy(y.cuda(), yAll.view(0, Shape.of(rows, n)));
            CPU.gemmFp8(y.cpu(), o.x.cpu().view(0, Shape.of(rows, k)), o.xs.cpu(), o.w.cpu(), o.ws.cpu(), o.bias.cpu());
            check(label("gemmFp8+bias(first " + rows + " rows)", BF16, "x", Shape.of(m, k)) + ",w=" + Shape.of(n, k), y);
            yAll.close();
            o.close();
            closeAll(y);
        }
    }

    /** Below compute capability 8.9 the GEMM refuses with the supported list (and the parity cases above are not run). */
    private static boolean hasFp8TensorCores() {
        if (cuda().context().computeCapability() >= CudaFp8Gemm.MIN_COMPUTE_CAPABILITY) return true;
        Operands o = Operands.of(16, 16, 16, false, 1);
        CudaTensor y = cuda().allocate(BF16, Shape.of(16, 16));
        var e = assertThrows(UnsupportedOperationException.class,
                () -> cuda().gemmFp8(y, o.x.cuda(), o.xs.cuda(), o.w.cuda(), o.ws.cuda(), null));
        System.out.println("gemmFp8 on " + cuda().name() + ": refused as expected (" + e.getMessage() + ")");
        y.close();
        o.close();
        return false;
    }

    /**
     * x (M, K) ~ N(0, 1) and w (N, K) ~ N(0, 1/K) in bf16 (Wan's Linear input and xavier-sized weight), each quantized
     * per tensor on the CPU and uploaded, so both backends multiply the very same codes; bias ~ N(0, 0.1²) bf16.
     */
    private record Operands(Pair x, Pair xs, Pair w, Pair ws, Pair bias) {
        static Operands of(long m, long k, long n, boolean withBias, long seed) {
            Pair[] xq = quantized(Shape.of(m, k), seed, 1);
            Pair[] wq = quantized(Shape.of(n, k), seed + 1, 1 / Math.sqrt(k));
            return new Operands(xq[0], xq[1], wq[0], wq[1], withBias ? random(BF16, Shape.of(n), seed + 2, 0.1) : null);
        }

        private static Pair[] quantized(Shape shape, long seed, double std) {
            var values = CPU.fromFloats(BF16, shape, gaussian(Math.toIntExact(shape.numElements()), seed, std));
            var codes = CPU.allocate(F8_E4M3, shape);
            var scale = CPU.allocate(F32, Shape.of(1));
            CPU.quantizeFp8Tensor(codes, scale, values);
            values.close();
            Pair c = Parity.of(F8_E4M3, shape, CPU.toFloats(codes)), s = Parity.of(F32, Shape.of(1), CPU.toFloats(scale));
            codes.close();
            scale.close();
            return new Pair[] {c, s};
        }

        void close() { closeAll(x, xs, w, ws, bias); }
    }
}
