package dev.wanlora.engine.numeric;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * bf16 narrowing against hand-derived bit patterns. bf16 is the top half of a float32, so rounding looks only at
 * the low 16 bits: below 0x8000 truncates, above rounds up, exactly 0x8000 is a tie that goes to the even (lsb 0)
 * neighbour (torch's round_to_nearest_even, c10/util/BFloat16.h).
 */
class Bf16Test {

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
            // float32 bits, bf16 bits
            "3F800000, 3F80", // 1.0
            "40490FDB, 4049", // pi: low half 0x0FDB < 0x8000 truncates to 3.140625
            "3F808000, 3F80", // 1 + 2^-8: tie, 0x3F80 is even, stays
            "3F818000, 3F82", // tie between 0x3F81 (odd) and 0x3F82: goes up to the even one
            "3F808001, 3F81", // just above the tie rounds up
            "3F807FFF, 3F80", // just below the tie rounds down
            "BF808001, BF81", // sign is kept, magnitude rounds the same way
            "00000000, 0000",
            "80000000, 8000", // -0
            "00010000, 0001", // smallest bf16 subnormal 2^-133
            "00008000, 0000", // half of it: tie to even 0
            "00018000, 0002", // 1.5 subnormal steps: tie between 1 (odd) and 2, goes to 2
            "007F8000, 0080", // largest float subnormal region rounds up into the smallest normal 2^-126
            "7F7F7FFF, 7F7F", // just below the tie above bf16 max (0x7F7F ≈ 3.3895e38) stays
            "7F7F8000, 7F80", // tie above max: 0x7F7F is odd, rounds up to +Inf (IEEE overflow)
            "7F7FFFFF, 7F80", // float max overflows to +Inf
            "7F800000, 7F80", // +Inf
            "FF800000, FF80", // -Inf
    })
    void roundsToNearestEven(String floatBits, String bf16Bits) {
        float f = Float.intBitsToFloat(Integer.parseUnsignedInt(floatBits, 16));
        assertEquals(Integer.parseInt(bf16Bits, 16), Bf16.fromFloat(f) & 0xffff);
    }

    @Test
    void nanStaysNan() {
        // A NaN whose payload is only in the low 16 bits would truncate to Inf (0x7F80); the quiet bit prevents it.
        for (int bits : new int[] {0x7FC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0xFFC00000}) {
            short h = Bf16.fromFloat(Float.intBitsToFloat(bits));
            assertTrue(Float.isNaN(Bf16.toFloat(h)), Integer.toHexString(bits));
            assertEquals(bits >>> 31, (h >>> 15) & 1, "sign kept for " + Integer.toHexString(bits));
        }
    }

    @Test
    void widensExactlyAndRoundTripsEveryPattern() {
        assertEquals(3.140625f, Bf16.toFloat((short) 0x4049));
        assertEquals(-2f, Bf16.toFloat((short) 0xC000));
        // Every non-NaN bf16 widens to a float that narrows back to the same bits.
        for (int h = 0; h < 0x10000; h++) {
            float f = Bf16.toFloat((short) h);
            if (Float.isNaN(f)) continue;
            assertEquals(h, Bf16.fromFloat(f) & 0xffff, Integer.toHexString(h));
        }
    }

    @Test
    void roundMatchesTheBitRule() {
        float[] a = {1.00390625f, 1.01171875f, -7.3f};
        Bf16.roundInPlace(a);
        // 1 + 2^-8 (tie) -> 1; 1 + 3·2^-8 (tie between 1+2^-7 and 1+2^-6) -> 1 + 2^-6 = 1.015625
        assertArrayEquals(new float[] {1f, 1.015625f, Bf16.round(-7.3f)}, a);
        assertEquals(-7.3125f, Bf16.round(-7.3f)); // 7.3 = 1.825·4; mantissa step 4·2^-7 = 1/32; 7.3·32 = 233.6 -> 234/32
    }
}
