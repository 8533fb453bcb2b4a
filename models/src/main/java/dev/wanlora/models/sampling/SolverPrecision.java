package dev.wanlora.models.sampling;

/**
 * The arithmetic a {@link FlowSolver} runs in. Samples go in and out as float32 either way.
 * <ul>
 * <li>{@link #FLOAT64}: every scalar and element in double, one rounding to float32 at the end of a step (the
 *     oracle; spec §10.4 measures this at ≤ 2.5e-7 from musubi).</li>
 * <li>{@link #FLOAT32}: musubi's arithmetic: scalars from float32 sigmas, each scalar and elementwise op rounded to
 *     float32 as torch does. A double result of one +, −, × or ÷ of two floats rounded once to float is exactly the
 *     float32 result (53 ≥ 2·24 + 2 bits), so this path is float32 math, not an approximation of it.</li>
 * </ul>
 */
public enum SolverPrecision {
    FLOAT64, FLOAT32;

    /** Rounds an intermediate to this precision (identity for FLOAT64). */
    double round(double v) {
        return this == FLOAT32 ? (float) v : v;
    }
}
