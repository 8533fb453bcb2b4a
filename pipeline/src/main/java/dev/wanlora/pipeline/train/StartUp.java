package dev.wanlora.pipeline.train;

import dev.wanlora.engine.io.AtomicFiles;
import dev.wanlora.engine.memory.MemoryPlan;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;

/**
 * What a run does in its output folder before anything else, once it holds the folder's {@link OutputLock}: report a
 * stale lock it took over, and clean up what a killed run's saves left (a state folder's temporary copy is as large
 * as the state: ~1.8 GB for a 14B rank-32 LoRA). Also the one line for a Java heap exhausted by the run's sizes.
 */
final class StartUp {
    private StartUp() {}

    /**
     * Locks {@code dir} for this run ({@link OutputLock}), says so if an ended run's lock was taken over, and removes
     * the leftovers of interrupted saves there (safe now: the lock keeps other runs out of the folder).
     */
    static OutputLock lockOutput(Path dir, PrintWriter out) {
        OutputLock lock = OutputLock.acquire(dir);
        try {
            lock.staleHolder().ifPresent(h -> out.println("info: " + dir.resolve(OutputLock.FILE_NAME) + " named a run"
                    + " that has ended (" + h + ") without releasing it; taking it over"));
            removeLeftovers(dir, out);
            return lock;
        } catch (RuntimeException e) {
            lock.close();
            throw e;
        }
    }

    private static void removeLeftovers(Path dir, PrintWriter out) {
        Map<Path, Long> removed = AtomicFiles.removeLeftovers(dir);
        if (removed.isEmpty()) return;
        long bytes = removed.values().stream().mapToLong(Long::longValue).sum();
        out.println("info: removed " + removed.size() + " leftover(s) of interrupted saves in " + dir + " ("
                + MemoryPlan.formatBytes(bytes) + "): " + String.join(", ",
                removed.keySet().stream().map(p -> p.getFileName().toString()).toList()));
    }

    /** The out-of-heap line: the host ran out while doing {@code phase}; what makes the run smaller. */
    static String heapAdvice(String phase, TrainOptions o) {
        return "out of Java heap memory (" + MemoryPlan.formatBytes(Runtime.getRuntime().maxMemory()) + ") while " + phase
                + "; lower --network_dim" + (o.network_dim == null ? "" : " (" + o.network_dim + ")") + ", the resolution,"
                + " frame count or batch_size in the dataset config, or give Java more memory (WANLORA_JAVA_OPTS=-Xmx...)";
    }
}
