package dev.wanlora.models.text;

import java.util.Locale;

/** A count with its noun in the right number for user-facing lines: "1 step", "2 steps", "1 batch", "9 batches". */
public final class Counts {
    private Counts() {}

    /** {@code n} and {@code singular}, with "s" appended unless n is 1. */
    public static String of(long n, String singular) {
        return of(n, singular, singular + "s");
    }

    public static String of(long n, String singular, String plural) {
        return String.format(Locale.ROOT, "%d %s", n, n == 1 ? singular : plural);
    }
}
