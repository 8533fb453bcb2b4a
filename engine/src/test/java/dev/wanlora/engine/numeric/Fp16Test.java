package dev.wanlora.engine.numeric;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.*;

/** IEEE half narrowing (round to nearest even) against hand-derived bit patterns. */
class Fp16Test {

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource({
            // value (exact in float), half bits
            "1.0, 3C00",
            "-2.0, C000",
            "65504.0, 7BFF",              // max half
            "65519.0, 7BFF",              // below the midpoint 65520 to the next step (65536, unrepresentable)
            "65520.0, 7C00",              // the midpoint: 0x7BFF is odd, ties up, which overflows to +Inf
            "1.00048828125, 3C00",        // 1 + 2^-11: tie between 0x3C00 (even) and 0x3C01
            "1.00146484375, 3C02",        // 1 + 3·2^-11: tie between 0x3C01 (odd) and 0x3C02
            "5.9604644775390625E-8, 0001", // 2^-24, smallest subnormal
            "2.98023223876953125E-8, 0000", // 2^-25: tie between 0 (even) and 0x0001
            "8.94069671630859375E-8, 0002", // 3·2^-25: tie between 0x0001 and 0x0002 (even)
            "6.103515625E-5, 0400",       // 2^-14, smallest normal
            "-0.0, 8000",
            "Infinity, 7C00",
            "-Infinity, FC00",
    })
    void roundsToNearestEven(float value, String halfBits) {
        assertEquals(Integer.parseInt(halfBits, 16), Fp16.fromFloat(value) & 0xffff);
    }

    @Test
    void nanAndRoundTrip() {
        assertTrue(Float.isNaN(Fp16.toFloat(Fp16.fromFloat(Float.NaN))));
        for (int h = 0; h < 0x10000; h++) {
            float f = Fp16.toFloat((short) h);
            if (Float.isNaN(f)) continue;
            assertEquals(h, Fp16.fromFloat(f) & 0xffff, Integer.toHexString(h));
            assertEquals(f, Fp16.round(f));
        }
    }
}
