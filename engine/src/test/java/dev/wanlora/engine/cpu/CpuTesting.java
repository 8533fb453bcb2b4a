package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Shared pieces of the CPU op tests: tensor construction, seeded random data, the central finite-difference
 * gradient check and the self-describing comparison line of STYLE.md §4.
 */
final class CpuTesting {
    private CpuTesting() {}

    static final CpuBackend CPU = new CpuBackend();

    /**
     * Finite-difference step. Inputs are O(1) (standard normal), so with h = 1e-2 the central difference's
     * truncation error h²/6·|f'''| is ~2e-5 for our smooth ops; the rounding error of the F32 outputs behind the
     * double-accumulated loss Σ G·out is about √n·2⁻²⁴·|G·out| ≈ 1e-6 for n ≤ 1000 outputs, i.e. 5e-5 after dividing
     * by 2h. Both stay well below {@link #GRAD_RELL2} relative to gradients of norm ≥ 1.
     */
    static final double FD_STEP = 1e-2;

    /** Bound for analytic vs finite-difference gradients: ~10× the error budget of {@link #FD_STEP}. */
    static final double GRAD_RELL2 = 1e-3;

    static CpuTensor tensor(DType dtype, float[] values, long... dims) {
        return CPU.fromFloats(dtype, Shape.of(dims), values);
    }

    static CpuTensor f32(float[] values, long... dims) {
        return tensor(DType.F32, values, dims);
    }

    static CpuTensor zeros(DType dtype, long... dims) {
        return CPU.allocate(dtype, Shape.of(dims));
    }

    static CpuTensor randn(long seed, DType dtype, long... dims) {
        return tensor(dtype, gaussian(seed, (int) Shape.of(dims).numElements()), dims);
    }

    static float[] gaussian(long seed, int n) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    static float[] values(Tensor t) {
        return CPU.toFloats(t);
    }

    /** Σ out·g in double: the scalar whose gradient w.r.t. out is g. */
    static double dotLoss(Tensor out, float[] g) {
        float[] o = values(out);
        double s = 0;
        for (int i = 0; i < o.length; i++) s += (double) o[i] * g[i];
        return s;
    }

    /** A scalar loss evaluated from scratch (runs the forward). */
    interface Loss {
        double eval();
    }

    /**
     * Central differences of loss w.r.t. every element of the F32 tensor x. The divisor is the perturbation actually
     * stored (x ± h rounded to float), not 2h. On return x is unchanged and the forward has run on it once more.
     */
    static double[] numericGradient(CpuTensor x, Loss loss) {
        float[] data = x.data();
        double[] grad = new double[x.size()];
        for (int i = 0; i < x.size(); i++) {
            int at = x.offset() + i;
            float saved = data[at];
            float plus = (float) (saved + FD_STEP), minus = (float) (saved - FD_STEP);
            data[at] = plus;
            double lPlus = loss.eval();
            data[at] = minus;
            double lMinus = loss.eval();
            data[at] = saved;
            grad[i] = (lPlus - lMinus) / ((double) plus - minus);
        }
        loss.eval(); // leave the forward's outputs (and saved statistics) as they are for the unperturbed x
        return grad;
    }

    /** Asserts relL2(actual, expected) ≤ bound and prints the STYLE.md §4 line. */
    static ErrorStats assertClose(String label, float[] actual, double[] expected, double bound) {
        float[] e = new float[expected.length];
        for (int i = 0; i < e.length; i++) e[i] = (float) expected[i];
        return assertClose(label, actual, e, bound);
    }

    static ErrorStats assertClose(String label, float[] actual, float[] expected, double bound) {
        ErrorStats s = ErrorStats.compare(actual, expected);
        boolean ok = s.relL2() <= bound && s.nonFinite() == 0;
        System.out.println(label + " " + s.describe(bound) + (ok ? " OK" : " FAIL"));
        assertEquals(0, s.nonFinite(), label + ": non-finite values");
        assertTrue(s.relL2() <= bound, label + ": relL2 " + s.relL2() + " > " + bound);
        return s;
    }

    /** Analytic gradient vs central differences, printed and asserted with {@link #GRAD_RELL2}. */
    static void assertGradient(String label, Tensor analytic, CpuTensor x, Loss loss) {
        assertClose(label, values(analytic), numericGradient(x, loss), GRAD_RELL2);
    }

    /** Exact equality, for layout ops and hand values that are exact in float. */
    static void assertValues(float[] expected, Tensor actual) {
        assertArrayEquals(expected, values(actual), 0f);
    }

    /** Asserts that the call throws IllegalArgumentException with exactly this message. */
    static void assertMessage(String expected, Runnable call) {
        var e = assertThrows(IllegalArgumentException.class, call::run);
        assertEquals(expected, e.getMessage());
    }
}
