package dev.wanlora.engine.backend;

import java.util.Arrays;

/** A {@link Timeline} on the host clock, for a backend whose ops have finished when they return (the CPU). */
public final class HostTimeline implements Timeline {
    private long[] nanos = new long[64];
    private int size;

    @Override
    public int mark() {
        if (size == nanos.length) nanos = Arrays.copyOf(nanos, 2 * size);
        nanos[size] = System.nanoTime();
        return size++;
    }

    @Override
    public int size() { return size; }

    @Override
    public double millisBetween(int from, int to) {
        if (from < 0 || from > to || to >= size) {
            throw new IndexOutOfBoundsException("millisBetween: points " + from + ".." + to + " outside the " + size
                    + " recorded; expected 0 ≤ from ≤ to < " + size);
        }
        return (nanos[to] - nanos[from]) / 1e6;
    }

    @Override
    public void reset() { size = 0; }

    @Override
    public void close() {}
}
