package dev.wanlora.engine.memory;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class MemoryPlanTest {

    @Test
    void parsesSizesInBinaryUnits() {
        assertEquals(24L << 30, MemoryPlan.parseBytes("--max_vram", "24G"));
        assertEquals(24L << 30, MemoryPlan.parseBytes("--max_vram", "24GiB"));
        assertEquals(24L << 30, MemoryPlan.parseBytes("--max_vram", "24gb"));
        assertEquals(24L << 30, MemoryPlan.parseBytes("--max_vram", "24"));
        assertEquals(22500L << 20, MemoryPlan.parseBytes("--max_vram", "22500M"));
        assertEquals(3L << 29, MemoryPlan.parseBytes("--max_vram", "1.5G"));
        for (String bad : List.of("", "G", "-3G", "24X", "lots", "0")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MemoryPlan.parseBytes("--max_vram", bad));
            assertEquals("--max_vram " + bad + ": not a memory size; expected a positive number with a binary unit, e.g. 24G,"
                    + " 24GiB or 22500M (a bare number means GiB)", e.getMessage());
        }
    }

    @Test
    void formatsOneLinePerCategoryAndTheTotal() {
        MemoryPlan plan = new MemoryPlan(List.of(new MemoryPlan.Item("weights", 3L << 30, "all of them"),
                new MemoryPlan.Item("scratch", 512L << 20, "")));
        assertEquals(List.of(
                "  weights    3.00 GiB  (all of them)",
                "  scratch   512.0 MiB",
                "  total      3.50 GiB of 4.00 GiB, fits"), plan.format(4L << 30));
        assertEquals("  total      3.50 GiB of 3.00 GiB, DOES NOT FIT", plan.format(3L << 30).getLast());
        assertEquals(512L << 20, plan.bytesOf("scratch"));
    }

    @Test
    void smallestFittingTriesEveryCount() {
        // 10 − n, except n = 1 which costs more (as one swapped block plus a two-slot ring does)
        var plan = (java.util.function.IntFunction<MemoryPlan>) n -> new MemoryPlan(List.of(
                new MemoryPlan.Item("x", n == 1 ? 11 : 10 - n, "")));
        assertEquals(0, MemoryPlan.smallestFitting(0, 9, plan, 10).getAsInt());
        assertEquals(2, MemoryPlan.smallestFitting(0, 9, plan, 8).getAsInt());
        assertTrue(MemoryPlan.smallestFitting(0, 9, plan, 0).isEmpty());
    }
}
