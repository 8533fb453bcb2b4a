package dev.wanlora.engine.optim;

import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * musubi's {@code --lr_scheduler} choices, computed exactly as transformers' {@code get_scheduler} lambdas that
 * musubi calls (musubi {@code training/trainer_base.py} L279‑429 at 30c658c4; transformers
 * {@code src/transformers/optimization.py} at 005edacb, the {@code _get_*_lr_lambda} functions), in double precision
 * like Python. torch's LambdaLR multiplies the optimizer's initial lr by the lambda of the current step; the first
 * optimizer update uses step 0, and the scheduler steps once after every update.
 *
 * <p>Warmup: {@code --lr_warmup_steps} is musubi's {@code _int_or_float}: an integer ≥ 1 is a step count, any other
 * number (e.g. 0.1, or "10%") is a ratio of the training steps, truncated: int(ratio·total) (L300‑302).
 * Total steps = max_train_steps × num_processes.
 */
public record LearningRateSchedule(Kind kind, double peakLearningRate, long warmupSteps, long trainingSteps,
                                   int numCycles, double power) {

    /** transformers' polynomial schedule default end lr (musubi does not pass lr_end). */
    static final double POLYNOMIAL_LR_END = 1e-7;

    /** The supported {@code --lr_scheduler} values. */
    public enum Kind {
        CONSTANT("constant"),
        CONSTANT_WITH_WARMUP("constant_with_warmup"),
        LINEAR("linear"),
        COSINE("cosine"),
        COSINE_WITH_RESTARTS("cosine_with_restarts"),
        POLYNOMIAL("polynomial");

        private final String flagValue;

        Kind(String flagValue) {
            this.flagValue = flagValue;
        }

        public String flagValue() {
            return flagValue;
        }

        public static Kind fromFlag(String value) {
            for (Kind k : values()) {
                if (k.flagValue.equals(value)) return k;
            }
            throw new IllegalArgumentException("--lr_scheduler: unsupported value; got '" + value + "', expected one of "
                    + Arrays.stream(values()).map(Kind::flagValue).collect(Collectors.joining(", ")));
        }
    }

    public LearningRateSchedule {
        if (warmupSteps < 0 || trainingSteps < 0) {
            throw new IllegalArgumentException("--lr_warmup_steps: negative step count; got warmup=" + warmupSteps
                    + " total=" + trainingSteps + ", expected ≥ 0");
        }
        if (kind == Kind.CONSTANT && warmupSteps != 0) {
            // musubi's wrap_check_needless_num_warmup_steps (trainer_base L308‑311)
            throw new IllegalArgumentException("--lr_warmup_steps: constant does not use warmup; got " + warmupSteps
                    + " steps, expected 0. hint: use --lr_scheduler constant_with_warmup");
        }
        if (kind == Kind.POLYNOMIAL && !(peakLearningRate > POLYNOMIAL_LR_END)) {
            throw new IllegalArgumentException("--learning_rate: polynomial decays to lr_end=1e-7; got " + peakLearningRate
                    + ", expected a learning rate above 1e-7");
        }
    }

    /**
     * Builds the schedule from musubi's flags. {@code warmupFlag} is the text after {@code --lr_warmup_steps}
     * ("0", "100", "0.05", "5%"); {@code totalSteps} = max_train_steps × num_processes.
     */
    public static LearningRateSchedule fromFlags(String scheduler, double learningRate, String warmupFlag,
                                                 long totalSteps, int numCycles, double power) {
        return new LearningRateSchedule(Kind.fromFlag(scheduler), learningRate, warmupSteps(warmupFlag, totalSteps),
                totalSteps, numCycles, power);
    }

    /** musubi's _int_or_float (parser_common L20‑32) followed by int(ratio·total) for a ratio (trainer_base L300‑302). */
    public static long warmupSteps(String flag, long totalSteps) {
        String text = flag.strip();
        double value;
        try {
            value = text.endsWith("%") ? Double.parseDouble(text.substring(0, text.length() - 1)) / 100.0 : Double.parseDouble(text);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--lr_warmup_steps: not a number; got '" + flag
                    + "', expected an integer step count, a ratio below 1 or a percentage such as 5%");
        }
        if (!Double.isFinite(value) || value < 0) {
            throw new IllegalArgumentException("--lr_warmup_steps: got '" + flag + "', expected a non-negative finite number");
        }
        boolean isInteger = !text.endsWith("%") && value >= 1 && value == Math.rint(value);
        return isInteger ? (long) value : (long) (value * totalSteps); // Python int() truncates toward zero
    }

    /** The learning rate of the update made at 0-based optimizer step {@code step}: peak·λ(step). */
    public double learningRate(long step) {
        return peakLearningRate * factor(step);
    }

    /** The lambda λ(step) of the transformers schedule. */
    public double factor(long step) {
        if (kind == Kind.CONSTANT) return 1;
        if (step < warmupSteps) return (double) step / (double) Math.max(1, warmupSteps);
        double progress = (double) (step - warmupSteps) / (double) Math.max(1, trainingSteps - warmupSteps);
        return switch (kind) {
            case CONSTANT, CONSTANT_WITH_WARMUP -> 1.0;
            case LINEAR -> Math.max(0.0, (double) (trainingSteps - step) / (double) Math.max(1, trainingSteps - warmupSteps));
            // transformers' cosine default num_cycles = 0.5 (musubi passes none): a half cosine from 1 to 0
            case COSINE -> Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * 0.5 * 2.0 * progress)));
            case COSINE_WITH_RESTARTS -> progress >= 1.0 ? 0.0
                    : Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * ((numCycles * progress) % 1.0))));
            case POLYNOMIAL -> polynomialFactor(step);
        };
    }

    /** _get_polynomial_decay_schedule_with_warmup_lr_lambda after warmup, lr_end = 1e-7. */
    private double polynomialFactor(long step) {
        if (step > trainingSteps) return POLYNOMIAL_LR_END / peakLearningRate;
        long decaySteps = trainingSteps - warmupSteps;
        if (decaySteps == 0) {
            throw new IllegalStateException("polynomial schedule: warmup covers all " + trainingSteps
                    + " steps, so the decay has zero length (Python raises ZeroDivisionError here)");
        }
        double lrRange = peakLearningRate - POLYNOMIAL_LR_END;
        double pctRemaining = 1 - (double) (step - warmupSteps) / decaySteps;
        double decay = lrRange * Math.pow(pctRemaining, power) + POLYNOMIAL_LR_END;
        return decay / peakLearningRate;
    }
}
