package dev.wanlora.engine.optim;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Hand-computed values of transformers' schedule lambdas. Tolerance 1e-15 absolute on factors in [0, 1]: the
 * formulas are evaluated in the same double operations as Python, so only the last bit of cos/pow may differ.
 */
class LearningRateScheduleTest {
    private static final double EPS = 1e-15;

    private static LearningRateSchedule schedule(String kind, long warmup, long total, int cycles, double power) {
        return new LearningRateSchedule(LearningRateSchedule.Kind.fromFlag(kind), 1e-3, warmup, total, cycles, power);
    }

    @Test
    void constantIsOneEverywhere() {
        var s = schedule("constant", 0, 100, 1, 1);
        assertEquals(1.0, s.factor(0), EPS);
        assertEquals(1.0, s.factor(1000), EPS);
        assertEquals(1e-3, s.learningRate(50), 0);
    }

    @Test
    void constantWithWarmupRampsLinearlyFromZero() {
        var s = schedule("constant_with_warmup", 4, 100, 1, 1);
        // step/4 for step < 4, then 1
        assertEquals(0.0, s.factor(0), EPS);
        assertEquals(0.25, s.factor(1), EPS);
        assertEquals(0.75, s.factor(3), EPS);
        assertEquals(1.0, s.factor(4), EPS);
        assertEquals(1.0, s.factor(99), EPS);
    }

    @Test
    void linearWarmsUpThenDecaysToZero() {
        var s = schedule("linear", 10, 110, 1, 1);
        assertEquals(0.5, s.factor(5), EPS);
        // after warmup: (110 - step)/100
        assertEquals(1.0, s.factor(10), EPS);
        assertEquals(0.6, s.factor(50), EPS);
        assertEquals(0.01, s.factor(109), EPS);
        assertEquals(0.0, s.factor(110), EPS);
        assertEquals(0.0, s.factor(200), EPS); // clamped at 0
    }

    @Test
    void cosineIsAHalfCosine() {
        var s = schedule("cosine", 0, 100, 1, 1);
        // 0.5·(1 + cos(π·progress)): progress 0 → 1, 0.25 → (1 + √2/2)/2, 0.5 → 0.5, 1 → 0
        assertEquals(1.0, s.factor(0), EPS);
        assertEquals((1 + Math.sqrt(0.5)) / 2, s.factor(25), EPS);
        assertEquals(0.5, s.factor(50), EPS);
        assertEquals(0.0, s.factor(100), EPS);
        var warm = schedule("cosine", 20, 120, 1, 1);
        assertEquals(0.5, warm.factor(10), EPS);
        assertEquals(0.5, warm.factor(70), EPS); // progress (70-20)/100 = 0.5
    }

    @Test
    void cosineWithRestartsRestartsEachCycle() {
        var s = schedule("cosine_with_restarts", 0, 100, 2, 1);
        // 0.5·(1 + cos(π·((2·progress) mod 1)))
        assertEquals(1.0, s.factor(0), EPS);
        assertEquals(0.5, s.factor(25), EPS);           // 2·0.25 = 0.5
        assertEquals(1.0, s.factor(50), EPS);           // restart: 2·0.5 mod 1 = 0
        assertEquals(0.5, s.factor(75), 1e-12);         // 1.5 mod 1 = 0.5
        assertEquals(0.0, s.factor(100), EPS);          // progress ≥ 1 → 0
        var one = schedule("cosine_with_restarts", 0, 100, 1, 1);
        assertEquals(schedule("cosine", 0, 100, 1, 1).factor(37), one.factor(37), EPS); // one cycle = plain cosine
    }

    @Test
    void polynomialDecaysToLrEnd() {
        var s = schedule("polynomial", 0, 100, 1, 2.0);
        // (lr − 1e-7)·(1 − step/100)² + 1e-7, divided by lr = 1e-3
        assertEquals(1.0, s.factor(0), EPS);
        assertEquals(((1e-3 - 1e-7) * 0.25 + 1e-7) / 1e-3, s.factor(50), EPS);
        assertEquals(1e-7 / 1e-3, s.factor(100), EPS);
        assertEquals(1e-7 / 1e-3, s.factor(150), EPS);
        var linearPower = schedule("polynomial", 10, 110, 1, 1.0);
        assertEquals(0.5, linearPower.factor(5), EPS);
        assertEquals(((1e-3 - 1e-7) * 0.5 + 1e-7) / 1e-3, linearPower.factor(60), EPS);
    }

    @Test
    void warmupFlagFollowsMusubiIntOrFloat() {
        assertEquals(0, LearningRateSchedule.warmupSteps("0", 1000));
        assertEquals(100, LearningRateSchedule.warmupSteps("100", 1000));
        assertEquals(100, LearningRateSchedule.warmupSteps("100.0", 1000)); // integral float ≥ 1 → int
        assertEquals(1, LearningRateSchedule.warmupSteps("1", 1000));
        assertEquals(50, LearningRateSchedule.warmupSteps("0.05", 1000));   // ratio → int(0.05·1000)
        assertEquals(33, LearningRateSchedule.warmupSteps("0.1", 333));     // int(33.3) truncates
        assertEquals(100, LearningRateSchedule.warmupSteps("10%", 1000));
        assertEquals(2500, LearningRateSchedule.warmupSteps("2.5", 1000));  // non-integral ≥ 1 is also a ratio
        var e = assertThrows(IllegalArgumentException.class, () -> LearningRateSchedule.warmupSteps("ten", 10));
        assertTrue(e.getMessage().startsWith("--lr_warmup_steps: not a number; got 'ten'"), e.getMessage());
    }

    @Test
    void badFlagsEndInOneLine() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> LearningRateSchedule.fromFlags("constant", 1e-4, "10", 100, 1, 1));
        assertEquals("--lr_warmup_steps: constant does not use warmup; got 10 steps, expected 0."
                + " hint: use --lr_scheduler constant_with_warmup", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> LearningRateSchedule.fromFlags("piecewise_constant", 1e-4, "0", 100, 1, 1));
        assertEquals("--lr_scheduler: unsupported value; got 'piecewise_constant', expected one of constant,"
                + " constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial, inverse_sqrt, cosine_with_min_lr,"
                + " warmup_stable_decay, rex", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> LearningRateSchedule.fromFlags("cosine_with_min_lr", 1e-4, "0", 100, 1, 1));
        assertEquals("--lr_scheduler cosine_with_min_lr: needs --lr_scheduler_min_lr_ratio, e.g. 0.1 (the final lr as a"
                + " ratio of --learning_rate)", e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> LearningRateSchedule.fromFlags("rex", 1e-4, "200", 100, 1, 1));
        assertEquals("--lr_warmup_steps: rex needs warm-up ≤ the training steps; got 200 > 100", e.getMessage());
        assertEquals(0.5, LearningRateSchedule.fromFlags("linear", 2e-4, "0.5", 100, 1, 1).factor(25), EPS);
    }

    private static LearningRateSchedule schedule(String kind, long warmup, long total, int cycles, long decay, long timescale,
                                                 double minLrRatio) {
        return new LearningRateSchedule(LearningRateSchedule.Kind.fromFlag(kind), 1e-3, warmup, total, cycles, 1, decay,
                timescale, minLrRatio);
    }

    @Test
    void inverseSqrtDecaysFromTheTimescale() {
        // timescale defaults to the warm-up (4): warm-up step/4, then 1/sqrt((step + 4 − 4)/4)
        var s = schedule("inverse_sqrt", 4, 1000, 1, 0, 0, Double.NaN);
        assertEquals(0.5, s.factor(2), EPS);
        assertEquals(1.0, s.factor(4), EPS);
        assertEquals(0.5, s.factor(16), EPS);
        assertEquals(0.2, s.factor(100), EPS);
        // --lr_scheduler_timescale 10 without warm-up: 1/sqrt((step + 10)/10)
        var t = schedule("inverse_sqrt", 0, 1000, 1, 0, 10, Double.NaN);
        assertEquals(1.0, t.factor(0), EPS);
        assertEquals(0.5, t.factor(30), EPS);
        // neither: transformers' 10 000
        var d = schedule("inverse_sqrt", 0, 1000, 1, 0, 0, Double.NaN);
        assertEquals(0.5, d.factor(30_000), EPS);
    }

    @Test
    void cosineWithMinLrEndsAtTheRatio() {
        // num_cycles = 1/2: 0.5·(1 + cos(π·progress))·(1 − 0.1) + 0.1
        var s = schedule("cosine_with_min_lr", 0, 100, 1, 0, 0, 0.1);
        assertEquals(1.0, s.factor(0), EPS);
        assertEquals(0.55, s.factor(50), EPS);
        assertEquals(0.1, s.factor(100), EPS);
        var warm = schedule("cosine_with_min_lr", 10, 110, 1, 0, 0, 0.1);
        assertEquals(0.5, warm.factor(5), EPS); // the warm-up starts at 0, not at the ratio
        // --lr_scheduler_num_cycles 2 → num_cycles 1: a full cosine, at its minimum halfway
        var two = schedule("cosine_with_min_lr", 0, 100, 2, 0, 0, 0.1);
        assertEquals(0.55, two.factor(25), EPS);
        assertEquals(0.1, two.factor(50), EPS);
    }

    @Test
    void warmupStableDecayHasThreePhases() {
        // warm-up 10, decay 20, stable 100 − 10 − 20 = 70, min ratio 0.1
        var s = schedule("warmup_stable_decay", 10, 100, 1, 20, 0, 0.1);
        assertEquals(0.1, s.factor(0), EPS);   // the warm-up starts at the ratio
        assertEquals(0.55, s.factor(5), EPS);  // 0.5·0.9 + 0.1
        assertEquals(1.0, s.factor(10), EPS);
        assertEquals(1.0, s.factor(79), EPS);
        assertEquals(1.0, s.factor(80), EPS);  // decay progress 0
        assertEquals(0.55, s.factor(90), EPS); // progress 1/2: cos(π/2) = 0 → 0.5·0.9 + 0.1
        assertEquals(0.1, s.factor(100), EPS);
        assertEquals(0.1, s.factor(150), EPS);
        var noRatio = schedule("warmup_stable_decay", 0, 100, 1, 20, 0, Double.NaN);
        assertEquals(0.5, noRatio.factor(90), EPS);
        assertEquals(0.0, noRatio.factor(100), EPS);
    }

    @Test
    void rexFollowsMusubisRexLr() {
        // no warm-up, min_lr = 0.01·lr: factor = 0.01 + 0.99·z/(0.1 + 0.9·z), z = (100 − step)/100
        var s = schedule("rex", 0, 100, 1, 0, 0, Double.NaN);
        assertEquals(1e-3, s.learningRate(0), 1e-18);
        assertEquals(1e-3 * (0.01 + 0.99 * 0.5 / 0.55), s.learningRate(50), 1e-18);
        assertEquals(1e-3 * (0.01 + 0.99 * 0.1 / 0.19), s.learningRate(90), 1e-18);
        assertEquals(1e-5, s.learningRate(100), 1e-18);
        // warm-up 5 of 105: step 0 takes the post-warm-up branch with (−5 mod 100) = 95, so z = 0.05; steps 1..4 ramp
        // linearly from min_lr; step 5 is the peak
        var warm = schedule("rex", 5, 105, 1, 0, 0, Double.NaN);
        assertEquals(1e-3 * (0.01 + 0.99 * 0.05 / (0.1 + 0.9 * 0.05)), warm.learningRate(0), 1e-18);
        assertEquals(1e-5, warm.learningRate(1), 1e-18);
        assertEquals(1e-5 + (1e-3 - 1e-5) * 2 / 4, warm.learningRate(3), 1e-18);
        assertEquals(1e-3, warm.learningRate(5), 1e-18);
        // one warm-up step: min_lr at steps 0 and 1; an explicit ratio
        var one = schedule("rex", 1, 101, 1, 0, 0, 0.5);
        assertEquals(5e-4, one.learningRate(0), 1e-18);
        assertEquals(5e-4, one.learningRate(1), 1e-18);
        assertEquals(1e-3 * (0.5 + 0.5 * 0.99 / (0.1 + 0.9 * 0.99)), one.learningRate(2), 1e-18);
    }
}
