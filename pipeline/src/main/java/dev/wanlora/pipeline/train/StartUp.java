package dev.wanlora.pipeline.train;

import dev.wanlora.engine.Backends;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.AtomicFiles;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.DatasetConfig;
import dev.wanlora.models.musubi.DatasetException;
import dev.wanlora.pipeline.UserError;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;

/**
 * What a run does in its output folder before anything else, once it holds the folder's {@link OutputLock}: report a
 * stale lock it took over, and clean up what a killed run's saves left (a state folder's temporary copy is as large
 * as the state: ~1.8 GB for a 14B rank-32 LoRA). Also opening the backend and reading the dataset's caches, and the one
 * line for a Java heap exhausted by the run's sizes.
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
    static String heapAdvice(String phase, Integer networkDim) {
        return "out of Java heap memory (" + MemoryPlan.formatBytes(Runtime.getRuntime().maxMemory()) + ") while " + phase
                + "; lower --network_dim" + (networkDim == null ? "" : " (" + networkDim + ")") + ", the resolution,"
                + " frame count or batch_size in the dataset config, or give Java more memory (WANLORA_JAVA_OPTS=-Xmx...)";
    }

    /** The backend of --backend auto|cpu|cuda (auto: the GPU when one is usable, else the CPU, with an info line). */
    static Backend openBackend(String choice, PrintWriter out) {
        String reason = choice.equals("cpu") ? null : Backends.gpuUnavailableReason();
        if (choice.equals("cuda") && reason != null) {
            throw new UserError("--backend cuda: no usable GPU (" + reason + "); use --backend cpu or run on a machine"
                    + " with an NVIDIA GPU and driver");
        }
        Backend b;
        try {
            b = Backends.create(choice.equals("cpu") || reason != null ? "cpu" : "cuda");
        } catch (UnsupportedOperationException e) {
            throw new UserError(e.getMessage(), e);
        }
        if (choice.equals("auto") && reason != null) out.println("info: no usable GPU (" + reason + "); training on the CPU");
        out.println("backend: " + b.name());
        if (Backends.attentionPath(b) != null) out.println(Backends.attentionPath(b));
        return b;
    }

    /** The caches of the dataset config {@code config}, its and their warnings printed. */
    static CacheDataset discover(Path config, boolean skipBadItems, PrintWriter out) {
        try {
            DatasetConfig dc = DatasetConfig.load(config);
            dc.warnings().forEach(w -> out.println("warning: " + w));
            CacheDataset d = CacheDataset.discover(dc, new CacheDataset.Options(skipBadItems));
            d.warnings().forEach(w -> out.println("warning: " + w));
            return d;
        } catch (DatasetException e) {
            throw new UserError(e.getMessage(), e);
        }
    }
}
