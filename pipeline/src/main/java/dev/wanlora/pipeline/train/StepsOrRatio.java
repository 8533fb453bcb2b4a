package dev.wanlora.pipeline.train;

/**
 * Steps ({@code 10}) or a ratio of the training steps ({@code 0.05}, {@code 5%}), as musubi's {@code _int_or_float}
 * ({@code --lr_warmup_steps}, {@code --lr_decay_steps}).
 */
public record StepsOrRatio(long steps, double ratio, boolean isRatio) {

    /** The step count for a run of {@code trainingSteps} steps: musubi's int(ratio · total) for ratios. */
    public long resolve(long trainingSteps) {
        return isRatio ? (long) (ratio * trainingSteps) : steps;
    }

    @Override
    public String toString() {
        return isRatio ? Double.toString(ratio) : Long.toString(steps);
    }

    /**
     * musubi's rule: "5%" is 0.05; a value ≥ 1 with no fraction is a step count; anything else a ratio.
     *
     * @throws IllegalArgumentException when {@code value} is no number
     */
    public static StepsOrRatio parse(String value) {
        try {
            if (value.endsWith("%")) {
                return new StepsOrRatio(0, Double.parseDouble(value.substring(0, value.length() - 1)) / 100.0, true);
            }
            double v = Double.parseDouble(value);
            if (v >= 1 && v == Math.rint(v)) return new StepsOrRatio((long) v, 0, false);
            if (v == 0) return new StepsOrRatio(0, 0, false);
            return new StepsOrRatio(0, v, true);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + value + "' is not a step count or a ratio (e.g. 100, 0.05 or 5%)");
        }
    }
}
