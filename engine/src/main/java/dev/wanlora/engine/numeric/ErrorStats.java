package dev.wanlora.engine.numeric;

/**
 * Comparison statistics of an actual against an expected array (STYLE.md §4): relL2 = ‖a−b‖/‖b‖ is the primary
 * metric (scale-invariant); maxAbs and maxRel catch local bugs; cosine measures direction (gradients).
 * Computed in double.
 */
public record ErrorStats(long count, double maxAbs, double maxRel, double relL2, double cosine, int nonFinite) {

    public static ErrorStats compare(float[] actual, float[] expected) {
        if (actual.length != expected.length) {
            throw new IllegalArgumentException("ErrorStats: lengths differ; got " + actual.length + ", expected " + expected.length);
        }
        double diff2 = 0, ref2 = 0, act2 = 0, dot = 0, maxAbs = 0, maxRel = 0;
        int nonFinite = 0;
        for (int i = 0; i < actual.length; i++) {
            double a = actual[i], b = expected[i];
            if (!Double.isFinite(a) || !Double.isFinite(b)) { nonFinite++; continue; }
            double d = a - b;
            diff2 += d * d;
            ref2 += b * b;
            act2 += a * a;
            dot += a * b;
            maxAbs = Math.max(maxAbs, Math.abs(d));
            if (b != 0) maxRel = Math.max(maxRel, Math.abs(d) / Math.abs(b));
        }
        double relL2 = ref2 == 0 ? Math.sqrt(diff2) : Math.sqrt(diff2 / ref2);
        double cos = (act2 == 0 || ref2 == 0) ? (act2 == ref2 ? 1 : 0) : dot / Math.sqrt(act2 * ref2);
        return new ErrorStats(actual.length, maxAbs, maxRel, relL2, cos, nonFinite);
    }

    /** "maxAbs=3.1e-3 relL2=1.9e-3 (38% of 5.0e-3) cos=0.99999" — the self-describing line of STYLE.md §4. */
    public String describe(double relL2Bound) {
        return String.format("maxAbs=%.2e relL2=%.2e (%.0f%% of %.1e) cos=%.6f%s", maxAbs, relL2,
                100 * relL2 / relL2Bound, relL2Bound, cosine, nonFinite > 0 ? " nonFinite=" + nonFinite : "");
    }
}
