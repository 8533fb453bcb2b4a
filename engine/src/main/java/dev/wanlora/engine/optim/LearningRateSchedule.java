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
 *
 * <p>The schedules musubi parameterises itself (trainer_base L335‑428): {@code cosine_with_min_lr} gets
 * num_cycles = lr_scheduler_num_cycles / 2 and min_lr_rate = {@code --lr_scheduler_min_lr_ratio} (required);
 * {@code warmup_stable_decay} gets num_decay_steps = {@code --lr_decay_steps} (a ratio truncated like the warm-up),
 * num_stable_steps = total − warmup − decay, num_cycles / 2 and min_lr_ratio (default 0), with transformers' default
 * linear warm-up and cosine decay; {@code inverse_sqrt} gets {@code --lr_scheduler_timescale} (default: the warm-up
 * steps, or 10 000 without warm-up); {@code rex} is musubi's own RexLR ({@code modules/lr_schedulers.py}) with
 * max_lr = lr, min_lr = lr·min_lr_ratio (default 0.01) and rex_alpha 0.1, rex_beta 0.9.
 *
 * @param decaySteps warmup_stable_decay's decay steps (0 for the others)
 * @param timescale inverse_sqrt's timescale, or 0 for transformers' default
 * @param minLrRatio {@code --lr_scheduler_min_lr_ratio}, or NaN when not given
 */
public record LearningRateSchedule(Kind kind, double peakLearningRate, long warmupSteps, long trainingSteps,
                                   int numCycles, double power, long decaySteps, long timescale, double minLrRatio) {

    /** RexLR's defaults (musubi passes no rex_alpha/rex_beta unless --lr_scheduler_args, which wanlora refuses). */
    static final double REX_ALPHA = 0.1, REX_BETA = 0.9, REX_DEFAULT_MIN_LR_RATIO = 0.01;

    /** transformers' polynomial schedule default end lr (musubi does not pass lr_end). */
    static final double POLYNOMIAL_LR_END = 1e-7;

    /** The supported {@code --lr_scheduler} values. */
    public enum Kind {
        CONSTANT("constant"),
        CONSTANT_WITH_WARMUP("constant_with_warmup"),
        LINEAR("linear"),
        COSINE("cosine"),
        COSINE_WITH_RESTARTS("cosine_with_restarts"),
        POLYNOMIAL("polynomial"),
        INVERSE_SQRT("inverse_sqrt"),
        COSINE_WITH_MIN_LR("cosine_with_min_lr"),
        WARMUP_STABLE_DECAY("warmup_stable_decay"),
        REX("rex");

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

    /** A schedule that uses none of decay steps, timescale and minimum-lr ratio. */
    public LearningRateSchedule(Kind kind, double peakLearningRate, long warmupSteps, long trainingSteps, int numCycles,
                                double power) {
        this(kind, peakLearningRate, warmupSteps, trainingSteps, numCycles, power, 0, 0, Double.NaN);
    }

    public LearningRateSchedule {
        if (decaySteps < 0 || timescale < 0) {
            throw new IllegalArgumentException("--lr_decay_steps/--lr_scheduler_timescale: negative; got decay=" + decaySteps
                    + " timescale=" + timescale + ", expected ≥ 0");
        }
        if (kind == Kind.COSINE_WITH_MIN_LR && Double.isNaN(minLrRatio)) {
            // transformers: "One of min_lr or min_lr_rate should be set"
            throw new IllegalArgumentException("--lr_scheduler cosine_with_min_lr: needs --lr_scheduler_min_lr_ratio, e.g. 0.1"
                    + " (the final lr as a ratio of --learning_rate)");
        }
        if (!Double.isNaN(minLrRatio) && !(minLrRatio >= 0 && minLrRatio <= 1)) {
            throw new IllegalArgumentException("--lr_scheduler_min_lr_ratio: got " + minLrRatio + ", expected a ratio in [0, 1]");
        }
        if (kind == Kind.REX && warmupSteps > trainingSteps) {
            // RexLR: "num_warmup_steps must be less than or equal to num_steps"
            throw new IllegalArgumentException("--lr_warmup_steps: rex needs warm-up ≤ the training steps; got " + warmupSteps
                    + " > " + trainingSteps);
        }
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

    /** This schedule with the flags only some schedules read; {@code minLrRatio} NaN when not given, timescale 0 likewise. */
    public LearningRateSchedule with(long decaySteps, long timescale, double minLrRatio) {
        return new LearningRateSchedule(kind, peakLearningRate, warmupSteps, trainingSteps, numCycles, power, decaySteps,
                timescale, minLrRatio);
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
        if (kind == Kind.REX) return rexLearningRate(step);
        return peakLearningRate * factor(step);
    }

    /** The lambda λ(step) of the transformers schedule (for rex: its learning rate / peak). */
    public double factor(long step) {
        if (kind == Kind.CONSTANT) return 1;
        if (kind == Kind.REX) return rexLearningRate(step) / peakLearningRate;
        if (kind == Kind.WARMUP_STABLE_DECAY) return warmupStableDecayFactor(step);
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
            case INVERSE_SQRT -> {
                // get_inverse_sqrt_schedule: timescale defaults to num_warmup_steps or 10_000
                long t = timescale != 0 ? timescale : warmupSteps != 0 ? warmupSteps : 10_000;
                yield 1.0 / Math.sqrt((double) (step + (t - warmupSteps)) / (double) t);
            }
            case COSINE_WITH_MIN_LR -> {
                // musubi passes num_cycles = lr_scheduler_num_cycles / 2 (a float)
                double factor = 0.5 * (1.0 + Math.cos(Math.PI * (numCycles / 2.0) * 2.0 * progress));
                yield Math.max(0, factor * (1 - minLrRatio) + minLrRatio);
            }
            case REX, WARMUP_STABLE_DECAY -> throw new IllegalStateException("unreachable: " + kind);
        };
    }

    /**
     * _get_wsd_scheduler_lambda with warmup_type linear, decay_type cosine, num_cycles = lr_scheduler_num_cycles / 2,
     * num_stable_steps = total − warmup − decay (negative when warm-up and decay overlap, as in musubi).
     */
    private double warmupStableDecayFactor(long step) {
        double ratio = Double.isNaN(minLrRatio) ? 0.0 : minLrRatio;
        long stableSteps = trainingSteps - warmupSteps - decaySteps;
        if (step < warmupSteps) {
            double progress = (double) step / (double) Math.max(1, warmupSteps);
            return Math.max(0.0, progress * (1.0 - ratio) + ratio);
        }
        if (step < warmupSteps + stableSteps) return 1.0;
        if (step < warmupSteps + stableSteps + decaySteps) {
            double progress = (double) (step - warmupSteps - stableSteps) / (double) Math.max(1, decaySteps);
            double factor = 0.5 * (1.0 + Math.cos(Math.PI * (numCycles / 2.0) * 2.0 * progress));
            return Math.max(0.0, factor * (1.0 - ratio) + ratio);
        }
        return ratio;
    }

    /**
     * musubi's RexLR.get_lr at last_epoch = step (the scheduler's constructor already stepped once, so the first
     * update uses last_epoch 0). Warm-up runs from min_lr at last_epoch 1 to max_lr; at last_epoch 0 with more than one
     * warm-up step the post-warm-up branch runs with a negative step and Python's non-negative modulo, as upstream.
     */
    private double rexLearningRate(long step) {
        double maxLr = peakLearningRate;
        double minLr = peakLearningRate * (Double.isNaN(minLrRatio) ? REX_DEFAULT_MIN_LR_RATIO : minLrRatio);
        if (warmupSteps == 1 && step == 1) return minLr;
        if (warmupSteps > 1 && step >= 1 && step <= warmupSteps - 1) {
            return minLr + (maxLr - minLr) * (double) (step - 1) / (double) (warmupSteps - 1);
        }
        long stepAfter = step - warmupSteps;
        long remaining = trainingSteps - warmupSteps;
        if (stepAfter >= remaining || stepAfter == -1 || remaining <= 0) return minLr;
        double z = (double) (remaining - Math.floorMod(stepAfter, remaining)) / (double) remaining;
        double factor = minLr / maxLr + (1.0 - minLr / maxLr) * (z / (REX_ALPHA + REX_BETA * z));
        return peakLearningRate * factor;
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
