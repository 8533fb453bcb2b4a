package dev.wanlora.engine.cuda;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * CUDA-vs-CPU parity plumbing (STYLE.md §4): the same values on both backends, the comparison, and the one
 * self-describing line per case, e.g. {@code rmsNorm[cuda,bf16,x=(3,40)] maxAbs=3.1e-3 relL2=1.9e-3 (38% of 5.0e-3)}.
 *
 * <p><b>Bounds.</b> The CPU reference computes in double and rounds once on store; the kernels compute in fp32.
 * <ul>
 * <li>F32 outputs: a few fp32 roundings (u = 2⁻²⁴ ≈ 6e-8) per element, or an fp32 reduction over at most ~10⁴ terms
 * (error ≲ √n·u ≈ 6e-6 relative in the worst case, far less on average): relL2 ≤ {@link #F32} = 1e-5, elementwise
 * |a − b| ≤ 1e-5·(|b| + rms(b)).</li>
 * <li>BF16 outputs: both sides round to bf16 (u = 2⁻⁸); they differ only where the fp32 and double results straddle
 * a rounding boundary, by one bf16 ulp: relL2 ≤ {@link #BF16} = 5e-3, elementwise |a − b| ≤ 2⁻⁶·(|b| + rms(b))
 * (2 ulp, the rms term covering values near zero after cancellation).</li>
 * </ul>
 */
final class Parity {
    private Parity() {}

    static final double F32 = 1e-5, BF16 = 5e-3;
    static final CpuBackend CPU = new CpuBackend();

    /** The same tensor on both backends. */
    record Pair(Tensor cpu, CudaTensor cuda) {
        DType dtype() { return cpu.dtype(); }

        Shape shape() { return cpu.shape(); }

        /** A view of both at the same element range. */
        Pair view(long offset, Shape shape) { return new Pair(cpu.view(offset, shape), cuda.view(offset, shape)); }
    }

    static CudaBackend cuda() { return CudaTests.backend(); }

    /** Normal(0, scale²) values (seeded), rounded to dtype, on both backends. */
    static Pair random(DType dtype, Shape shape, long seed, double scale) {
        return of(dtype, shape, gaussian(Math.toIntExact(shape.numElements()), seed, scale));
    }

    static float[] gaussian(int n, long seed, double scale) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            // Box–Muller; SplittableRandom has no nextGaussian that is this fast for 10⁷ values.
            double u1 = 1 - r.nextDouble(), u2 = r.nextDouble();
            v[i] = (float) (scale * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
        }
        return v;
    }

    static Pair of(DType dtype, Shape shape, float[] values) {
        return new Pair(CPU.fromFloats(dtype, shape, values), cuda().fromFloats(dtype, shape, values));
    }

    /** Output buffers filled with NaN on the GPU (so an element a kernel forgets to write fails the check). */
    static Pair output(DType dtype, Shape shape) {
        Pair p = new Pair(CPU.allocate(dtype, shape), cuda().allocate(dtype, shape));
        if (dtype.isFloatingPoint()) cuda().fill(p.cuda, Float.NaN);
        return p;
    }

    /** Same as {@link #output} but zero-initialized on both (for accumulated outputs). */
    static Pair zeros(DType dtype, Shape shape) {
        return new Pair(CPU.allocate(dtype, shape), cuda().allocate(dtype, shape));
    }

    /** The relL2 bound of a comparison on an output of this dtype. */
    static double bound(DType out) { return out == DType.F32 ? F32 : BF16; }

    /** Compares the CUDA result to the CPU one with the dtype's bounds, prints the line and asserts. */
    static ErrorStats check(String label, Pair out) { return check(label, out, bound(out.dtype())); }

    static ErrorStats check(String label, Pair out, double relL2Bound) {
        float[] expected = CPU.toFloats(out.cpu), actual = cuda().toFloats(out.cuda);
        ErrorStats s = ErrorStats.compare(actual, expected);
        double rtol = out.dtype() == DType.F32 ? 1e-5 : 1.0 / 64;
        double rms = 0;
        for (float e : expected) rms += (double) e * e;
        rms = Math.sqrt(rms / Math.max(1, expected.length));
        int worst = -1;
        double worstExcess = 0;
        for (int i = 0; i < expected.length; i++) {
            boolean bothNaN = Float.isNaN(actual[i]) && Float.isNaN(expected[i]);
            if (bothNaN) continue;
            double excess = Math.abs(actual[i] - expected[i]) - rtol * (Math.abs(expected[i]) + rms);
            if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
                worst = i;
                worstExcess = excess;
            }
        }
        boolean ok = s.relL2() <= relL2Bound && worst < 0;
        System.out.println(label + " " + s.describe(relL2Bound) + (ok ? " OK" : " FAIL"));
        if (worst >= 0) {
            fail(label + ": element " + worst + " is " + actual[worst] + ", expected " + expected[worst] + " within "
                    + rtol + "·(|b| + rms " + rms + ")");
        }
        assertTrue(s.relL2() <= relL2Bound, label + ": relL2 " + s.relL2() + " above " + relL2Bound);
        return s;
    }

    /** Exact equality, element by element (pure data movement, or bit-for-bit reproducible math). */
    static void checkExact(String label, Pair out) {
        float[] expected = CPU.toFloats(out.cpu), actual = cuda().toFloats(out.cuda);
        int mismatches = 0, first = -1;
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(actual[i]) != Float.floatToIntBits(expected[i])) {
                if (first < 0) first = i;
                mismatches++;
            }
        }
        System.out.println(label + " exact: " + mismatches + " of " + expected.length + " differ" + (mismatches == 0 ? " OK" : " FAIL"));
        if (mismatches > 0) {
            fail(label + ": " + mismatches + " elements differ; first at " + first + ": " + actual[first] + " vs " + expected[first]);
        }
    }

    /** "op[cuda,bf16,x=(3,40)]". */
    static String label(String op, DType dtype, String name, Shape shape) {
        return op + "[cuda," + dtype.name().toLowerCase(java.util.Locale.ROOT) + "," + name + "=" + shape + "]";
    }

    static void closeAll(Pair... pairs) {
        for (Pair p : pairs) {
            if (p == null) continue;
            p.cpu.close();
            p.cuda.close();
        }
    }
}
