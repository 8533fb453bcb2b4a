package dev.wanlora.models.sampling;

import dev.wanlora.engine.random.CounterRng;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * UniPC's elementwise loops run in parallel chunks; the result is the sequential loop's, bit for bit: a latent of
 * 2·CHUNK + 3 elements (three tasks, a ragged last one) stepped 20 times gives, at the chunks' first and last elements,
 * exactly what a solver stepping just those elements (one sequential task) gives, in float32 and float64.
 */
class UniPcFlowSolverChunksTest {

    @Test
    void chunkedStepsEqualTheSequentialLoop() {
        int c = UniPcFlowSolver.CHUNK, n = 2 * c + 3;
        int[] picked = {0, c - 1, c, 2 * c - 1, 2 * c, n - 1};
        for (SolverPrecision precision : SolverPrecision.values()) {
            UniPcFlowSolver whole = new UniPcFlowSolver(20, 14.5, precision);
            UniPcFlowSolver few = new UniPcFlowSolver(20, 14.5, precision);
            float[] x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float) CounterRng.normal(1, i);
            float[] xFew = pick(x, picked);
            for (int k = 0; k < 20; k++) {
                float[] v = new float[n];
                for (int i = 0; i < n; i++) v[i] = (float) CounterRng.normal(100 + k, i);
                x = whole.step(v, x);
                xFew = few.step(pick(v, picked), xFew);
                for (int j = 0; j < picked.length; j++) {
                    assertEquals(Float.floatToRawIntBits(xFew[j]), Float.floatToRawIntBits(x[picked[j]]),
                            precision + " step " + k + " element " + picked[j]);
                }
            }
        }
    }

    private static float[] pick(float[] a, int[] indices) {
        float[] out = new float[indices.length];
        for (int j = 0; j < indices.length; j++) out[j] = a[indices[j]];
        return out;
    }
}
