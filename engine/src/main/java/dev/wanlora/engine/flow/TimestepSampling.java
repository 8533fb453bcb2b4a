package dev.wanlora.engine.flow;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The {@code --timestep_sampling} modes wanlora implements (spec §4.2; musubi's other modes — flux_shift,
 * qwen_shift, logsnr, qinglong_* — are for other architectures).
 */
public enum TimestepSampling {
    /** musubi's CLI default: a discrete timestep 1000 − idx, idx uniform in [min, max); σ = timestep/1000. */
    SIGMA("sigma"),
    /** t ~ U[0, 1). */
    UNIFORM("uniform"),
    /** t = sigmoid(sigmoid_scale·z), z ~ N(0, 1). */
    SIGMOID("sigmoid"),
    /** t = sigmoid(sigmoid_scale·z), then t ← s·t/(1 + (s − 1)·t) with s = discrete_flow_shift. */
    SHIFT("shift");

    private final String flagValue;

    TimestepSampling(String flagValue) {
        this.flagValue = flagValue;
    }

    /** The value as written after {@code --timestep_sampling}. */
    public String flagValue() {
        return flagValue;
    }

    /** Parses a {@code --timestep_sampling} value; an unknown value ends in one line listing the supported ones. */
    public static TimestepSampling fromFlag(String value) {
        for (TimestepSampling m : values()) {
            if (m.flagValue.equals(value.toLowerCase(Locale.ROOT))) return m;
        }
        throw new IllegalArgumentException("--timestep_sampling: unsupported value; got '" + value + "', expected one of "
                + Arrays.stream(values()).map(TimestepSampling::flagValue).collect(Collectors.joining(", "))
                + ". hint: musubi's flux_shift, qwen_shift, logsnr and qinglong_* modes are for other architectures");
    }
}
