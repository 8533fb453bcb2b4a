package dev.wanlora.engine.random;

/**
 * The counter-based standard normal generator behind {@code Backend.gaussianNoise}. Element i of a draw with
 * (seed, offset) is {@link #normal normal(seed, offset + i)}: a pure function of (seed, counter), so every backend,
 * thread count and chunking gives the same values. The CUDA kernel reproduces this definition exactly:
 *
 * <ol>
 * <li><b>Philox4x32-10</b> (Salmon et al., SC'11; Random123) with key (k0, k1) = (seed & 0xffffffff, seed >>> 32) and
 * counter (c0, c1, c2, c3) = (c & 0xffffffff, c >>> 32, 0, 0), c = offset + i (a 64-bit two's-complement sum).
 * One round, all arithmetic on unsigned 32-bit words:
 * {@code (hi0, lo0) = M0·c0, (hi1, lo1) = M1·c2} (64-bit products), then
 * {@code (c0, c1, c2, c3) ← (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)}. Ten rounds; round r uses the key
 * {@code (k0 + r·W0, k1 + r·W1) mod 2^32}, r = 0..9. Constants M0 = 0xD2511F53, M1 = 0xCD9E8D57,
 * W0 = 0x9E3779B9, W1 = 0xBB67AE85.</li>
 * <li>Take the first two output words r0, r1 as unsigned integers and map them into (0, 1) in double:
 * u1 = (r0 + 0.5)/2^32, u2 = (r1 + 0.5)/2^32 (never 0 or 1, so the logarithm is finite).</li>
 * <li>Box–Muller, cosine branch, in double: z = sqrt(−2·ln u1)·cos(2π·u2), with 2π the double nearest 2π.</li>
 * <li>The caller rounds z to the output dtype (double → float → bf16, round to nearest even each time).</li>
 * </ol>
 *
 * <p>Java evaluates ln and cos with {@link StrictMath} (fdlibm, correctly rounded in practice); CUDA's double
 * {@code log}/{@code cos} are within 1 ulp, so the double z may differ in its last bits and the stored value flips only
 * when z lies within a few double ulps of a float rounding boundary (probability about 2^−27 per element).
 */
public final class CounterRng {
    private CounterRng() {}

    static final int M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    private static final double TWO_POW_32 = 4294967296.0;

    /** The standard normal value for (seed, counter) as defined in the class comment, in double. */
    public static double normal(long seed, long counter) {
        int[] r = philox(new int[] {(int) counter, (int) (counter >>> 32), 0, 0}, (int) seed, (int) (seed >>> 32));
        double u1 = (Integer.toUnsignedLong(r[0]) + 0.5) / TWO_POW_32;
        double u2 = (Integer.toUnsignedLong(r[1]) + 0.5) / TWO_POW_32;
        return StrictMath.sqrt(-2 * StrictMath.log(u1)) * StrictMath.cos(2 * Math.PI * u2);
    }

    /** Philox4x32-10 of {@code ctr} (4 words, overwritten and returned) under the key (k0, k1). */
    static int[] philox(int[] ctr, int k0, int k1) {
        for (int round = 0; round < 10; round++) {
            long p0 = Integer.toUnsignedLong(M0) * Integer.toUnsignedLong(ctr[0]);
            long p1 = Integer.toUnsignedLong(M1) * Integer.toUnsignedLong(ctr[2]);
            int hi0 = (int) (p0 >>> 32), lo0 = (int) p0, hi1 = (int) (p1 >>> 32), lo1 = (int) p1;
            int c1 = ctr[1], c3 = ctr[3];
            ctr[0] = hi1 ^ c1 ^ k0;
            ctr[1] = lo1;
            ctr[2] = hi0 ^ c3 ^ k1;
            ctr[3] = lo0;
            k0 += W0;
            k1 += W1;
        }
        return ctr;
    }
}
