package dev.wanlora.engine.random;

/**
 * A counter-based pseudo-random generator for host-side training decisions (timesteps, stratified buckets).
 * Draw i of seed s is SplitMix64's output for (s, i): {@code mix64(s + (i + 1)·0x9E3779B97F4A7C15)} (Steele, Lea
 * and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014; Java's
 * {@code java.util.SplittableRandom} uses the same mix). The whole state is the pair (seed, counter), so
 * {@link #state()} / {@link #restore(State)} resume a run bit for bit (--save_state / --resume).
 *
 * <p>Not thread-safe: one instance per stream of decisions.
 */
public final class RandomSource {
    private static final long GOLDEN_GAMMA = 0x9E3779B97F4A7C15L;
    /** 2⁻²⁴: the spacing of {@link #nextFloat()}'s values. */
    private static final float FLOAT_UNIT = 0x1.0p-24f;
    /** 2⁻⁵³: the spacing of {@link #nextDouble()}'s values. */
    private static final double DOUBLE_UNIT = 0x1.0p-53;

    private final long seed;
    private long counter;

    /** The saveable state: the seed and how many 64-bit draws have been made. */
    public record State(long seed, long counter) {}

    public RandomSource(long seed) {
        this(seed, 0);
    }

    private RandomSource(long seed, long counter) {
        this.seed = seed;
        this.counter = counter;
    }

    /** A generator that continues exactly where the one that produced {@code state} was. */
    public static RandomSource restore(State state) {
        return new RandomSource(state.seed(), state.counter());
    }

    public State state() {
        return new State(seed, counter);
    }

    /** The next 64 uniformly distributed bits. */
    public long nextLong() {
        counter++;
        long z = seed + counter * GOLDEN_GAMMA;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** Uniform on [0, 1) with 24 random bits, the grid of torch.rand in float32. */
    public float nextFloat() {
        return (nextLong() >>> 40) * FLOAT_UNIT;
    }

    /** Uniform on [0, 1) with 53 random bits (Python's random.random grid). */
    public double nextDouble() {
        return (nextLong() >>> 11) * DOUBLE_UNIT;
    }

    /** Uniform on [a, b) as Python's random.uniform: a + (b − a)·u. */
    public double nextUniform(double a, double b) {
        return a + (b - a) * nextDouble();
    }

    /**
     * Standard normal by Box–Muller from two fresh draws (no cached second value, so the state stays the counter):
     * z = √(−2 ln u₁)·cos(2π u₂) with u₁ ∈ (0, 1], u₂ ∈ [0, 1).
     */
    public double nextGaussian() {
        double u1 = ((nextLong() >>> 11) + 1) * DOUBLE_UNIT;
        double u2 = nextDouble();
        return Math.sqrt(-2.0 * Math.log(u1)) * Math.cos(2.0 * Math.PI * u2);
    }

    /** Uniform integer in [0, bound) without modulo bias: draws below 2⁶⁴ mod bound are rejected. */
    public int nextInt(int bound) {
        if (bound <= 0) throw new IllegalArgumentException("nextInt: bound must be positive; got " + bound);
        long threshold = Long.remainderUnsigned(-bound, bound); // 2^64 mod bound; [threshold, 2^64) has a multiple of bound values
        while (true) {
            long r = nextLong();
            if (Long.compareUnsigned(r, threshold) >= 0) return (int) Long.remainderUnsigned(r, bound);
        }
    }

    /** Fisher–Yates shuffle in place (the permutation Python's random.shuffle draws, with our generator). */
    public void shuffle(int[] a) {
        for (int i = a.length - 1; i > 0; i--) {
            int j = nextInt(i + 1);
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
    }
}
