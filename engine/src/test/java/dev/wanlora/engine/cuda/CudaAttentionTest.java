package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * CUDA flash attention vs {@code CpuBackend.attention/attentionBackward} (double arithmetic, exact softmax) on the
 * same bf16 inputs: ragged tiny shapes (Lq = 77, Lk = 77 and 13, and B = 2 with Lq = 100, Lk = 130, so every
 * ragged-tile path runs), the real width N·D = 40·128 at L = 512 in full, and the real sizes L = 3744 (self) and
 * 3744×512 (cross) on sampled query rows (attention is row-wise, so the CPU computes exactly those rows).
 *
 * <p><b>Bounds</b> (u = 2⁻⁸, bf16 unit roundoff). bf16 outputs (out, dq, dk, dv): the GPU rounds P (and dS) to bf16
 * before the second GEMMs, a relative error ≤ u per term that averages out over ≥ 13 keys, and rounds the result to
 * bf16 (rms relative error ≤ u/√3 ≈ 2.3e-3); the CPU rounds its double result to bf16 too; dq/dk/dv also use
 * delta = rowsum(dOut∘out) from the bf16 out (a relative error ~u/√D in delta). Measured against float64 on an H200,
 * out/dq/dk/dv land at relL2 2.0–2.6e-3, the same as PyTorch's FlashAttention-2 (kernels/dev/attention/NOTES.md), so
 * relL2 ≤ 5e-3 per output, elementwise |a − b| ≤ 2⁻⁶·(|b| + rms(b)) (4u: a few ulp; the rms term covers values near 0).
 * lse is F32 without bf16 rounding in its path: fp32 sums of ≤ 3744 terms and ex2.approx (2⁻²²) keep it within
 * ~1e-5 absolute (measured ≤ 2e-6); bound 1e-4 absolute.
 *
 * <p>Paths: this class runs the device's default kernels (the Hopper ones on compute capability 9.0 unless
 * WANLORA_KERNELS=portable, else the portable ones); {@link CudaAttentionPortableTest} runs every test again with the
 * portable kernels forced, so one Hopper card tests both, and {@link CudaAttentionFusedTest} again with the Hopper
 * path's fused backward forced at every shape. The Hopper kernels compute the same function with the
 * same roundings (bf16 P and dS operands, fp32 sums, bf16 outputs); only the fp32 summation order and the tile
 * width of the forward's running max (128 keys instead of 64) differ, so the bounds above hold for both (measured
 * against float64 in kernels/dev/attention/NOTES.md: the same error levels as v3 and FlashAttention-2).
 */
@RequiresCuda
class CudaAttentionTest {
    private static final CpuBackend CPU = new CpuBackend();
    private static final int D = CudaAttention.HEAD_DIM;
    private static final double BF16_REL_L2 = 5e-3, BF16_RTOL = 1.0 / 64, LSE_ABS = 1e-4;

    private final CudaBackend cuda = CudaTests.backend();
    private CudaAttention.Path defaultPath;
    private CudaAttention.Backward defaultBackward;

    /** The forward path to force, or null for the device's default. */
    CudaAttention.Path forcedPath() { return null; }

    /** The Hopper backward to force, or null for the default (ignored on the portable path). */
    CudaAttention.Backward forcedBackward() { return null; }

    @BeforeEach
    void selectPath() {
        defaultPath = cuda.attentionKernels().path();
        defaultBackward = cuda.attentionKernels().backward();
        if (forcedPath() != null) cuda.attentionKernels().usePath(forcedPath());
        if (forcedBackward() != null) cuda.attentionKernels().useBackward(forcedBackward());
        System.out.println("attention path under test: " + cuda.attentionKernels().path() + ", backward "
                + cuda.attentionKernels().backward() + " (" + cuda.name() + ")");
    }

    @AfterEach
    void restorePath() {
        cuda.attentionKernels().usePath(defaultPath);
        cuda.attentionKernels().useBackward(defaultBackward);
    }

    @Test
    void theDefaultPathIsHopperExactlyOnComputeCapability90() {
        boolean portableForced = "portable".equals(System.getenv(CudaAttention.KERNELS_ENV));
        CudaAttention.Path expected = cuda.context().computeCapability() == 90 && !portableForced
                ? CudaAttention.Path.HOPPER : CudaAttention.Path.PORTABLE;
        System.out.println(cuda.attentionPath());
        assertEquals(expected, defaultPath, cuda.attentionPath());
    }

    @Test
    void raggedTinyShapes() {
        compareAll(1, 77, 77, 2, 11);
        compareAll(1, 77, 13, 2, 12);
        compareAll(2, 100, 130, 3, 13);
    }

    @Test
    void realWidthAtL512() { compareAll(1, 512, 512, 40, 14); }

    @Test
    void realSizeSelfAttentionSampledRows() { compareSampledRows(3744, 3744, 24, 15); }

    @Test
    void realSizeCrossAttentionSampledRows() { compareSampledRows(3744, 512, 24, 16); }

    @Test
    void backwardIsBitwiseDeterministicAndAllocatesNothingOnceReserved() {
        int b = 1, l = 512, n = 40;
        Inputs in = new Inputs(b, l, l, n, 17);
        try (Owned t = new Owned()) {
            CudaTensor q = t.add(gpu(in.q, b, l, n)), k = t.add(gpu(in.k, b, l, n)), v = t.add(gpu(in.v, b, l, n));
            CudaTensor dOut = t.add(gpu(in.dOut, b, l, n)), out = t.add(cuda.allocate(DType.BF16, q.shape()));
            CudaTensor lse = t.add(cuda.allocate(DType.F32, Shape.of(b, n, l))), dq = t.add(cuda.allocate(DType.BF16, q.shape()));
            CudaTensor dk = t.add(cuda.allocate(DType.BF16, k.shape())), dv = t.add(cuda.allocate(DType.BF16, v.shape()));
            cuda.reserveAttentionWorkspace(b, n, l);
            long allocations = DeviceBuffer.allocationCount();
            cuda.attention(out, lse, q, k, v, n);
            cuda.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, n);
            assertEquals(allocations, DeviceBuffer.allocationCount(), "a reserved workspace means no allocation in the step");
            float[][] first = {cuda.toFloats(dq), cuda.toFloats(dk), cuda.toFloats(dv)};
            cuda.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, n);
            float[][] second = {cuda.toFloats(dq), cuda.toFloats(dk), cuda.toFloats(dv)};
            String[] names = {"dq", "dk", "dv"};
            for (int g = 0; g < 3; g++) {
                int differ = 0;
                for (int i = 0; i < first[g].length; i++) {
                    if (Float.floatToRawIntBits(first[g][i]) != Float.floatToRawIntBits(second[g][i])) differ++;
                }
                System.out.println("attentionBackward[cuda,bf16,L=512,N=40] " + names[g] + " rerun: " + differ + " of "
                        + first[g].length + " differ" + (differ == 0 ? " OK" : " FAIL"));
                assertEquals(0, differ, names[g] + " must be bitwise reproducible");
            }
        }
    }

    @Test
    void rejectsWhatTheKernelsDoNotCover() {
        try (Owned t = new Owned()) {
            CudaTensor q = t.add(cuda.allocate(DType.BF16, Shape.of(1, 8, 128))), out = t.add(cuda.allocate(DType.BF16, Shape.of(1, 8, 128)));
            CudaTensor lse = t.add(cuda.allocate(DType.F32, Shape.of(1, 2, 8))), lse1 = t.add(cuda.allocate(DType.F32, Shape.of(1, 1, 8)));
            CudaTensor q32 = t.add(cuda.allocate(DType.F32, Shape.of(1, 8, 128))), out32 = t.add(cuda.allocate(DType.F32, Shape.of(1, 8, 128)));
            var e = assertThrows(UnsupportedOperationException.class, () -> cuda.attention(out, lse, q, q, q, 2));
            assertEquals("attention (cuda): no kernel for head dim 64 (2 heads of width 128); supported: head dim 128, bf16 activations",
                    e.getMessage());
            e = assertThrows(UnsupportedOperationException.class, () -> cuda.attention(out32, lse1, q32, q32, q32, 1));
            assertEquals("attention (cuda): no kernel for out=F32; supported: bf16 out, q, k, v with F32 lse, head dim 128",
                    e.getMessage());
        }
    }

    /** Every output of forward and backward, every row and head, against the CPU. */
    private void compareAll(int b, int lq, int lk, int n, long seed) {
        Inputs in = new Inputs(b, lq, lk, n, seed);
        String shape = "B=" + b + ",Lq=" + lq + ",Lk=" + lk + ",N=" + n;
        try (Owned t = new Owned()) {
            Tensor cq = t.add(cpu(in.q, b, lq, n)), ck = t.add(cpu(in.k, b, lk, n)), cv = t.add(cpu(in.v, b, lk, n));
            Tensor cdOut = t.add(cpu(in.dOut, b, lq, n)), cOut = t.add(CPU.allocate(DType.BF16, cq.shape()));
            Tensor cLse = t.add(CPU.allocate(DType.F32, Shape.of(b, n, lq))), cdq = t.add(CPU.allocate(DType.BF16, cq.shape()));
            Tensor cdk = t.add(CPU.allocate(DType.BF16, ck.shape())), cdv = t.add(CPU.allocate(DType.BF16, cv.shape()));
            CudaTensor q = t.add(gpu(in.q, b, lq, n)), k = t.add(gpu(in.k, b, lk, n)), v = t.add(gpu(in.v, b, lk, n));
            CudaTensor dOut = t.add(gpu(in.dOut, b, lq, n)), out = t.add(poisoned(DType.BF16, q.shape()));
            CudaTensor lse = t.add(poisoned(DType.F32, cLse.shape())), dq = t.add(poisoned(DType.BF16, q.shape()));
            CudaTensor dk = t.add(poisoned(DType.BF16, k.shape())), dv = t.add(poisoned(DType.BF16, v.shape()));
            CPU.attention(cOut, cLse, cq, ck, cv, n);
            CPU.attentionBackward(cdq, cdk, cdv, cdOut, cq, ck, cv, cOut, cLse, n);
            cuda.attention(out, lse, q, k, v, n);
            cuda.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, n);
            checkBf16("attention.out[cuda,bf16," + shape + "]", cuda.toFloats(out), CPU.toFloats(cOut));
            checkLse("attention.lse[cuda,f32," + shape + "]", cuda.toFloats(lse), CPU.toFloats(cLse));
            checkBf16("attentionBackward.dq[cuda,bf16," + shape + "]", cuda.toFloats(dq), CPU.toFloats(cdq));
            checkBf16("attentionBackward.dk[cuda,bf16," + shape + "]", cuda.toFloats(dk), CPU.toFloats(cdk));
            checkBf16("attentionBackward.dv[cuda,bf16," + shape + "]", cuda.toFloats(dv), CPU.toFloats(cdv));
        }
    }

    /**
     * B = 1, N = 40 on the GPU in full; the CPU computes out, lse and dq of {@code rows} random query rows only (with
     * all keys), which is exact because each query row's outputs depend on that row and all of k, v.
     */
    private void compareSampledRows(int lq, int lk, int rows, long seed) {
        int n = 40, width = n * D;
        Inputs in = new Inputs(1, lq, lk, n, seed);
        int[] picked = new SplittableRandom(seed).ints(0, lq).distinct().limit(rows).sorted().toArray();
        float[] qRows = new float[rows * width], dOutRows = new float[rows * width];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(in.q, picked[r] * width, qRows, r * width, width);
            System.arraycopy(in.dOut, picked[r] * width, dOutRows, r * width, width);
        }
        String shape = "Lq=" + lq + ",Lk=" + lk + ",N=" + n + "," + rows + " rows";
        try (Owned t = new Owned()) {
            Tensor cq = t.add(cpu(qRows, 1, rows, n)), ck = t.add(cpu(in.k, 1, lk, n)), cv = t.add(cpu(in.v, 1, lk, n));
            Tensor cdOut = t.add(cpu(dOutRows, 1, rows, n)), cOut = t.add(CPU.allocate(DType.BF16, cq.shape()));
            Tensor cLse = t.add(CPU.allocate(DType.F32, Shape.of(1, n, rows))), cdq = t.add(CPU.allocate(DType.BF16, cq.shape()));
            Tensor cdk = t.add(CPU.allocate(DType.BF16, ck.shape())), cdv = t.add(CPU.allocate(DType.BF16, cv.shape()));
            CudaTensor q = t.add(gpu(in.q, 1, lq, n)), k = t.add(gpu(in.k, 1, lk, n)), v = t.add(gpu(in.v, 1, lk, n));
            CudaTensor dOut = t.add(gpu(in.dOut, 1, lq, n)), out = t.add(poisoned(DType.BF16, q.shape()));
            CudaTensor lse = t.add(poisoned(DType.F32, Shape.of(1, n, lq))), dq = t.add(poisoned(DType.BF16, q.shape()));
            CudaTensor dk = t.add(poisoned(DType.BF16, k.shape())), dv = t.add(poisoned(DType.BF16, v.shape()));
            CPU.attention(cOut, cLse, cq, ck, cv, n);
            CPU.attentionBackward(cdq, cdk, cdv, cdOut, cq, ck, cv, cOut, cLse, n); // cdk, cdv cover only the sampled rows
            cuda.attention(out, lse, q, k, v, n);
            cuda.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, n);
            float[] gOut = cuda.toFloats(out), gLse = cuda.toFloats(lse), gdq = cuda.toFloats(dq);
            float[] sOut = new float[rows * width], sLse = new float[n * rows], sdq = new float[rows * width];
            for (int r = 0; r < rows; r++) {
                System.arraycopy(gOut, picked[r] * width, sOut, r * width, width);
                System.arraycopy(gdq, picked[r] * width, sdq, r * width, width);
                for (int h = 0; h < n; h++) sLse[h * rows + r] = gLse[h * lq + picked[r]];
            }
            checkBf16("attention.out[cuda,bf16," + shape + "]", sOut, CPU.toFloats(cOut));
            checkLse("attention.lse[cuda,f32," + shape + "]", sLse, CPU.toFloats(cLse));
            checkBf16("attentionBackward.dq[cuda,bf16," + shape + "]", sdq, CPU.toFloats(cdq));
            checkDvColumnSums("Lq=" + lq + ",Lk=" + lk + ",N=" + n + ",all rows", cuda.toFloats(dv), in.dOut, lq, lk, width);
            assertFinite("attentionBackward.dk[cuda,bf16," + shape + "]", cuda.toFloats(dk));
        }
    }

    /**
     * dv = Pᵀ·dOut and every row of P sums to 1, so Σ_j dv[j] = Σ_i dOut[i] per (head, d): a full-size check of dv
     * (every key block, every head) in O(L). Each dv element carries ≲ u relative error (bf16 P operands, bf16
     * output), uncorrelated across the Lk terms, so the column sums differ by ≲ u·‖dv column‖ ≪ 5e-3 of ‖Σ dOut‖.
     */
    private void checkDvColumnSums(String shape, float[] dv, float[] dOut, int lq, int lk, int width) {
        float[] sumDv = new float[width], sumDOut = new float[width];
        double[] acc = new double[width];
        for (int j = 0; j < lk; j++) for (int c = 0; c < width; c++) acc[c] += dv[j * width + c];
        for (int c = 0; c < width; c++) sumDv[c] = (float) acc[c];
        acc = new double[width];
        for (int i = 0; i < lq; i++) for (int c = 0; c < width; c++) acc[c] += dOut[i * width + c];
        for (int c = 0; c < width; c++) sumDOut[c] = (float) acc[c];
        ErrorStats s = ErrorStats.compare(sumDv, sumDOut);
        boolean ok = s.relL2() <= BF16_REL_L2 && s.nonFinite() == 0;
        System.out.println("attentionBackward.dv column sums[cuda,bf16," + shape + "] " + s.describe(BF16_REL_L2) + (ok ? " OK" : " FAIL"));
        assertTrue(ok, "Σ_j dv[j] must equal Σ_i dOut[i]");
    }

    private static void checkBf16(String label, float[] actual, float[] expected) {
        ErrorStats s = ErrorStats.compare(actual, expected);
        double rms = 0;
        for (float e : expected) rms += (double) e * e;
        rms = Math.sqrt(rms / Math.max(1, expected.length));
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.length; i++) {
            double excess = Math.abs(actual[i] - expected[i]) - BF16_RTOL * (Math.abs(expected[i]) + rms);
            if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) { // NaN (an unwritten element) counts
                worst = i;
                worstExcess = excess;
            }
        }
        boolean ok = s.relL2() <= BF16_REL_L2 && worst < 0 && s.nonFinite() == 0;
        System.out.println(label + " " + s.describe(BF16_REL_L2) + (ok ? " OK" : " FAIL"));
        if (worst >= 0) {
            fail(label + ": element " + worst + " is " + actual[worst] + ", expected " + expected[worst] + " within "
                    + BF16_RTOL + "·(|b| + rms " + rms + ")");
        }
        assertTrue(ok, label + ": relL2 " + s.relL2() + " above " + BF16_REL_L2);
    }

    private static void checkLse(String label, float[] actual, float[] expected) {
        ErrorStats s = ErrorStats.compare(actual, expected);
        boolean ok = s.maxAbs() <= LSE_ABS && s.nonFinite() == 0;
        System.out.println(label + " maxAbs=" + String.format("%.2e (%.0f%% of %.0e)", s.maxAbs(), 100 * s.maxAbs() / LSE_ABS, LSE_ABS)
                + (s.nonFinite() > 0 ? " nonFinite=" + s.nonFinite() : "") + (ok ? " OK" : " FAIL"));
        assertTrue(ok, label + ": max |lse error| " + s.maxAbs() + " above " + LSE_ABS);
    }

    private static void assertFinite(String label, float[] values) {
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) fail(label + ": element " + i + " is " + values[i] + " (unwritten or overflow)");
        }
    }

    /** Closes every tensor added to it, last first. */
    private static final class Owned implements AutoCloseable {
        private final java.util.ArrayDeque<Tensor> tensors = new java.util.ArrayDeque<>();

        <T extends Tensor> T add(T t) {
            tensors.push(t);
            return t;
        }

        @Override
        public void close() {
            while (!tensors.isEmpty()) tensors.pop().close();
        }
    }

    /** Seeded normal inputs rounded to bf16: q, k, v ~ N(0, 1) give scores of spread ~1 after the 1/√128 scale. */
    private record Inputs(float[] q, float[] k, float[] v, float[] dOut) {
        Inputs(int b, int lq, int lk, int n, long seed) {
            this(gaussian(b * lq * n * D, seed), gaussian(b * lk * n * D, seed + 100),
                    gaussian(b * lk * n * D, seed + 200), gaussian(b * lq * n * D, seed + 300));
        }
    }

    private static float[] gaussian(int count, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[count];
        for (int i = 0; i < count; i++) {
            double u1 = 1 - r.nextDouble(), u2 = r.nextDouble();
            v[i] = Bf16.toFloat(Bf16.fromFloat((float) (Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2))));
        }
        return v;
    }

    private static Tensor cpu(float[] values, int b, int l, int n) { return CPU.fromFloats(DType.BF16, Shape.of(b, l, n * D), values); }

    private CudaTensor gpu(float[] values, int b, int l, int n) { return cuda.fromFloats(DType.BF16, Shape.of(b, l, n * D), values); }

    /** An output filled with NaN, so an element the kernels forget to write fails the comparison. */
    private CudaTensor poisoned(DType dtype, Shape shape) {
        CudaTensor t = cuda.allocateUninitialized(dtype, shape);
        cuda.fill(t, Float.NaN);
        return t;
    }
}
