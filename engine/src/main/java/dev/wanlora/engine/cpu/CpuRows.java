package dev.wanlora.engine.cpu;

import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * The CPU reference's only form of parallelism (STYLE.md §3): independent rows run on the common ForkJoin pool.
 * Each row is computed by exactly one thread in a fixed order, so results do not depend on the thread count.
 */
final class CpuRows {
    private CpuRows() {}

    /** Below this many scalar operations in total, forking costs more than it saves. */
    private static final long PARALLEL_THRESHOLD = 1 << 16;

    /** Elements per chunk when a flat elementwise op is cut into rows. Fixed, so chunked reductions are deterministic. */
    static final int CHUNK = 4096;

    /** Runs body(r) for r in [0, rows), in parallel when rows·workPerRow is large enough. */
    static void forEach(long rows, long workPerRow, IntConsumer body) {
        int n = Math.toIntExact(rows);
        if (n > 1 && (double) n * workPerRow >= PARALLEL_THRESHOLD) {
            IntStream.range(0, n).parallel().forEach(body);
        } else {
            for (int r = 0; r < n; r++) body.accept(r);
        }
    }

    /** A body over the element range [from, to). */
    interface Range {
        void run(int from, int to);
    }

    /** Cuts [0, n) into chunks of {@link #CHUNK} elements and runs them as rows. Returns the chunk count. */
    static int forEachChunk(long n, Range body) {
        int count = numChunks(n);
        int size = Math.toIntExact(n);
        forEach(count, CHUNK, c -> body.run(c * CHUNK, Math.min(size, (c + 1) * CHUNK)));
        return count;
    }

    static int numChunks(long n) {
        return Math.toIntExact((n + CHUNK - 1) / CHUNK);
    }
}
