package dev.wanlora.engine.memory;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalInt;
import java.util.function.IntFunction;

/**
 * A device memory plan (DESIGN.md §6, STYLE.md §8): the long-lived buffers of a run by category, sized from the
 * configuration before anything is allocated, so a run that cannot fit is refused at start-up with a remedy instead
 * of failing mid-step. Sizes are in bytes; the model that owns the buffers computes them next to its allocations.
 */
public record MemoryPlan(List<Item> items) {

    /** One category: what it holds, its bytes, and a short account of how they add up. */
    public record Item(String category, long bytes, String detail) {}

    public MemoryPlan {
        items = List.copyOf(items);
    }

    public long totalBytes() {
        long n = 0;
        for (Item i : items) n = Math.addExact(n, i.bytes());
        return n;
    }

    public boolean fits(long budgetBytes) { return totalBytes() <= budgetBytes; }

    /** The bytes of the category named {@code category} (0 when absent). */
    public long bytesOf(String category) {
        for (Item i : items) if (i.category().equals(category)) return i.bytes();
        return 0;
    }

    /**
     * The plan as printed at start-up: one line per category, then the total against the budget, e.g.
     * {@code "  weights resident      12.53 GiB  (…)"}. {@code budgetBytes} ≤ 0 prints the total alone.
     */
    public List<String> format(long budgetBytes) {
        int width = 0;
        for (Item i : items) width = Math.max(width, i.category().length());
        List<String> lines = new ArrayList<>();
        for (Item i : items) {
            lines.add(String.format(Locale.ROOT, "  %-" + width + "s  %10s  %s", i.category(), formatBytes(i.bytes()),
                    i.detail().isEmpty() ? "" : "(" + i.detail() + ")").stripTrailing());
        }
        String total = String.format(Locale.ROOT, "  %-" + width + "s  %10s", "total", formatBytes(totalBytes()));
        if (budgetBytes > 0) {
            total += " of " + formatBytes(budgetBytes) + (fits(budgetBytes) ? ", fits" : ", DOES NOT FIT");
        }
        lines.add(total);
        return lines;
    }

    /**
     * The smallest n in [min, max] whose plan fits the budget, trying them in order, or empty when none does. (Block
     * swapping's plan is not monotonic in the count: a ring of streaming slots costs memory as soon as one block is
     * swapped, so every count is tried.)
     */
    public static OptionalInt smallestFitting(int min, int max, IntFunction<MemoryPlan> plan, long budgetBytes) {
        for (int n = min; n <= max; n++) if (plan.apply(n).fits(budgetBytes)) return OptionalInt.of(n);
        return OptionalInt.empty();
    }

    /** "512.0 MiB", "13.09 GiB" (binary units; MiB below 1 GiB). */
    public static String formatBytes(long bytes) {
        double gib = bytes / (double) (1L << 30);
        if (gib >= 1) return String.format(Locale.ROOT, "%.2f GiB", gib);
        return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }

    /**
     * A size as users write it, binary units: "24G", "24GiB", "24gb", "22500M", "1.5T"; a bare number means GiB
     * ("24" = 24 GiB).
     *
     * @throws IllegalArgumentException naming {@code flag}, what was found and what is expected
     */
    public static long parseBytes(String flag, String text) {
        String t = text.strip().toUpperCase(Locale.ROOT);
        if (t.endsWith("IB")) t = t.substring(0, t.length() - 2);
        else if (t.endsWith("B")) t = t.substring(0, t.length() - 1);
        int shift = 30;
        if (!t.isEmpty()) {
            switch (t.charAt(t.length() - 1)) {
                case 'K' -> shift = 10;
                case 'M' -> shift = 20;
                case 'G' -> shift = 30;
                case 'T' -> shift = 40;
                default -> shift = -1;
            }
            if (shift >= 0) t = t.substring(0, t.length() - 1);
            else shift = 30;
        }
        double value;
        try {
            value = Double.parseDouble(t);
        } catch (NumberFormatException e) {
            value = Double.NaN;
        }
        if (!(value > 0) || Double.isInfinite(value) || t.isEmpty() || !t.matches("[0-9.]+")) {
            throw new IllegalArgumentException(flag + " " + text + ": not a memory size; expected a positive number with"
                    + " a binary unit, e.g. 24G, 24GiB or 22500M (a bare number means GiB)");
        }
        return (long) (value * (1L << shift));
    }
}
