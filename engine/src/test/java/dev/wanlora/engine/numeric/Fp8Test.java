package dev.wanlora.engine.numeric;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.*;

/**
 * fp8 against hand-derived codes, an independent quantum-based reference over a sweep of float32 values, and the
 * wan-tiny golden fp8 weights made by musubi's quantizer with torch's cast.
 */
class Fp8Test {

    // ---------------------------------------------------------------- E4M3 (float8_e4m3fn)

    @ParameterizedTest(name = "e4m3 {0} -> {1}")
    @CsvSource({
            // value, code. Normal: (-1)^s · 2^(e-7) · (1 + m/8), code = s eeee mmm; subnormal: m · 2^-9.
            "1.0, 38",          // e=7, m=0
            "-1.5, BC",         // s=1, e=7, m=4
            "448.0, 7E",        // e=15, m=6: max; e=15, m=7 is NaN
            "0.25, 28",         // e=5
            "0.015625, 08",     // 2^-6 smallest normal
            "0.001953125, 01",  // 2^-9 smallest subnormal
            "0.013671875, 07",  // 7·2^-9 largest subnormal
            "0.0, 00",
            "-0.0, 80",
            "1.0625, 38",       // tie between 1 (m=0, even) and 1.125 (m=1): stays
            "1.1875, 3A",       // tie between 1.125 (m=1, odd) and 1.25 (m=2): up
            "1.0625001, 39",    // above the tie: up
            "0.0009765625, 00", // 2^-10, tie between 0 (even) and 2^-9
            "0.0009765626, 01", // above that tie
            "0.0029296875, 02", // 3·2^-10, tie between 2^-9 (odd) and 2·2^-9
            "0.0146484375, 08", // 7.5·2^-9, tie between the largest subnormal (odd) and 2^-6
            "300.0, 79",        // 300 = 2^8 · 1.171875; step 32: 288 (m=1) vs 320 (m=2), 300 is nearer 288
            "449.0, 7E",        // (448, 464]: rounds down to 448, not saturated by a clamp but by rounding
            "464.0, 7E",        // the midpoint 464: tie goes to 448 (m=6, even)
            "464.00003, 7F",    // just above the midpoint would round to 480 (e=15, m=7) = NaN in e4m3fn
            "479.0, 7F",
            "480.0, 7F",        // c10: f_bits >= 480 -> NaN directly
            "1.0E9, 7F",
            "-464.0, FE",
            "-465.0, FF",
            "Infinity, 7F",     // no infinities: NaN
            "-Infinity, FF",
            "NaN, 7F",
    })
    void e4m3Codes(float value, String code) {
        assertEquals(Integer.parseInt(code, 16), Fp8.e4m3FromFloat(value) & 0xff);
    }

    @Test
    void e4m3DecodesEveryCode() {
        for (int c = 0; c < 256; c++) {
            int e = (c >>> 3) & 15, m = c & 7;
            float v = Fp8.e4m3ToFloat((byte) c);
            if (e == 15 && m == 7) {
                assertTrue(Float.isNaN(v));
                assertEquals(c >>> 7, Float.floatToRawIntBits(v) >>> 31, "NaN sign of " + c);
                continue;
            }
            double magnitude = e == 0 ? m * 0x1p-9 : Math.scalb(1 + m / 8.0, e - 7);
            assertEquals((float) ((c & 0x80) != 0 ? -magnitude : magnitude), v, "code " + c);
            assertEquals(c, Fp8.e4m3FromFloat(v) & 0xff, "round trip of code " + c);
        }
    }

    @Test
    void e4m3MatchesReferenceOnASweep() {
        sweep(true);
    }

    // ---------------------------------------------------------------- E5M2 (float8_e5m2)

    @ParameterizedTest(name = "e5m2 {0} -> {1}")
    @CsvSource({
            // value, code. Normal: 2^(e-15) · (1 + m/4), code = s eeeee mm; subnormal: m · 2^-16.
            "1.0, 3C",
            "57344.0, 7B",      // max: e=30, m=3
            "61439.996, 7B",    // below the midpoint to 65536
            "61440.0, 7C",      // midpoint: 57344's m=3 is odd, the tie goes up to 65536 = Inf
            "65536.0, 7C",
            "-1.0E9, FC",
            "Infinity, 7C",
            "-Infinity, FC",
            "NaN, 7F",
            "1.125, 3C",        // tie between 1 (m=0) and 1.25 (m=1)
            "1.375, 3E",        // tie between 1.25 (m=1) and 1.5 (m=2)
            "1.52587890625E-5, 01", // 2^-16 smallest subnormal
            "6.103515625E-5, 04",   // 2^-14 smallest normal
            "-0.0, 80",
    })
    void e5m2Codes(float value, String code) {
        assertEquals(Integer.parseInt(code, 16), Fp8.e5m2FromFloat(value) & 0xff);
    }

    @Test
    void e5m2DecodesEveryCodeAsTheTopByteOfAHalf() {
        // E5M2 is IEEE half with the low 8 mantissa bits dropped, so Fp16 is an independent decoder.
        for (int c = 0; c < 256; c++) {
            float v = Fp8.e5m2ToFloat((byte) c);
            float half = Fp16.toFloat((short) (c << 8));
            if (Float.isNaN(half)) {
                assertTrue(Float.isNaN(v));
                assertEquals(c >>> 7, Float.floatToRawIntBits(v) >>> 31, "NaN sign of " + c);
                continue;
            }
            assertEquals(half, v, "code " + c);
            assertEquals(c, Fp8.e5m2FromFloat(v) & 0xff, "round trip of code " + c);
        }
    }

    @Test
    void e5m2MatchesReferenceOnASweep() {
        sweep(false);
    }

    // ---------------------------------------------------------------- reference

    /**
     * Reference rounding written from the format definition, independent of Fp8's table search: a finite x lies in
     * binade 2^e (e clamped below at the smallest normal exponent, which makes the subnormal step uniform), where
     * the format's step is q = 2^(e - mantissa bits); x/q is exact in double and Math.rint rounds it half-to-even.
     * Overflow follows c10: e4m3fn gives NaN from a rounded 480 (or |x| ≥ 480), e5m2 gives Inf from 65536.
     */
    private static int reference(float x, boolean e4m3) {
        int manBits = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
        int sign = Float.floatToRawIntBits(x) < 0 ? 0x80 : 0;
        if (Float.isNaN(x)) return sign | 0x7f;
        double a = Math.abs((double) x);
        double overflow = e4m3 ? 480 : 65536;
        int overflowCode = e4m3 ? 0x7f : 0x7c;
        if (a >= overflow) return sign | overflowCode;
        int e = Math.max(a == 0 ? -1000 : Math.getExponent(a), 1 - bias);
        double q = Math.scalb(1.0, e - manBits);
        double r = Math.rint(a / q) * q;
        if (r >= overflow) return sign | overflowCode;
        if (r == 0) return sign;
        int re = Math.getExponent(r);
        if (re < 1 - bias) return sign | (int) (r / Math.scalb(1.0, 1 - bias - manBits)); // subnormal: m · 2^(1-bias-manBits)
        int m = (int) ((r / Math.scalb(1.0, re) - 1) * (1 << manBits));
        return sign | (re + bias) << manBits | m;
    }

    /**
     * Every 127th float bit pattern from 0 up to past the overflow (≈ 9 M values, both signs), plus every midpoint
     * between neighbouring codes and the floats just beside it, where a wrong tie rule would show.
     */
    private static void sweep(boolean e4m3) {
        int limit = Float.floatToRawIntBits(e4m3 ? 600f : 70000f);
        int checked = 0;
        for (int bits = 0; bits <= limit; bits += 127) {
            checkBoth(Float.intBitsToFloat(bits), e4m3);
            checked++;
        }
        for (int c = 0; c < 0x7b; c++) {
            float lo = e4m3 ? Fp8.e4m3ToFloat((byte) c) : Fp8.e5m2ToFloat((byte) c);
            float hi = e4m3 ? Fp8.e4m3ToFloat((byte) (c + 1)) : Fp8.e5m2ToFloat((byte) (c + 1));
            if (Float.isNaN(hi) || Float.isInfinite(hi)) break;
            float mid = (lo + hi) / 2; // exact: neighbouring fp8 values differ in few bits
            for (float x : new float[] {mid, Math.nextUp(mid), Math.nextDown(mid), lo, hi}) checkBoth(x, e4m3);
            checked += 5;
        }
        System.out.println((e4m3 ? "e4m3" : "e5m2") + ": " + checked + " values x 2 signs agree with the reference");
    }

    private static void checkBoth(float x, boolean e4m3) {
        for (float v : new float[] {x, -x}) {
            int got = (e4m3 ? Fp8.e4m3FromFloat(v) : Fp8.e5m2FromFloat(v)) & 0xff;
            int want = reference(v, e4m3);
            if (got != want) {
                fail((e4m3 ? "e4m3" : "e5m2") + "(" + v + " = 0x" + Integer.toHexString(Float.floatToRawIntBits(v))
                        + "): got 0x" + Integer.toHexString(got) + ", expected 0x" + Integer.toHexString(want));
            }
        }
    }

    // ---------------------------------------------------------------- golden

    @Test
    void goldenFp8WeightsRoundTrip() {
        try (SafeTensors st = SafeTensors.open(Golden.dir("wan-tiny").resolve("fp8.safetensors"))) {
            long bytes = 0;
            for (String key : st.keys()) {
                if (!key.startsWith("fp8.")) continue;
                MemorySegment s = st.data(key);
                for (long i = 0; i < s.byteSize(); i++) {
                    byte b = s.get(ValueLayout.JAVA_BYTE, i);
                    float v = Fp8.e4m3ToFloat(b);
                    assertFalse(Float.isNaN(v), key + " byte " + i + " is NaN");
                    assertEquals(b, Fp8.e4m3FromFloat(v), key + " byte " + i);
                }
                bytes += s.byteSize();
            }
            assertEquals(1_572_864, bytes); // 2 blocks × (8·256² + 2·256·512) weights of the tiny config
        }
    }

    /**
     * Recomputes musubi's block quantization (spec §3.2) from the BF16 weights and BF16 scales of the golden files:
     * W_q = e4m3(clamp(W / scale, ±448)) with the division in float32. Every byte must equal the golden one: this
     * checks the encoder's rounding on 1.5 M real values, including the ≈ 43 % of blocks where the clamp acts.
     */
    @Test
    void goldenFp8MatchesMusubiQuantizer() {
        try (SafeTensors model = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"));
             SafeTensors fp8 = SafeTensors.open(Golden.dir("wan-tiny").resolve("fp8.safetensors"))) {
            int tensors = 0;
            for (String key : fp8.keys()) {
                if (!key.startsWith("fp8.")) continue;
                String weightKey = key.substring(4);
                String scaleKey = "fp8scale." + weightKey.substring(0, weightKey.length() - ".weight".length()) + ".scale_weight";
                float[] w = model.floats(weightKey);
                float[] scale = fp8.floats(scaleKey); // (out, in/64, 1)
                MemorySegment q = fp8.data(key);
                for (int i = 0; i < w.length; i++) {
                    float x = Math.clamp(w[i] / scale[i / 64], -448f, 448f);
                    assertEquals(q.get(ValueLayout.JAVA_BYTE, i), Fp8.e4m3FromFloat(x), key + "[" + i + "]");
                }
                tensors++;
            }
            assertEquals(20, tensors);
        }
    }
}
