package dev.wanlora.engine.io;

import dev.wanlora.engine.memory.HostMemory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Reads checkpoint files front to back on one background thread while a loader reads their tensors, so that the disk
 * keeps reading where the loader pauses and the loader's positional reads mostly hit the page cache.
 *
 * <p>History and why it stays: it was added when the DiT loader walked the model (blocks 0, 1, 2, …) through files
 * that store tensors by name (blocks.0, blocks.1, blocks.10, …), to turn the loader's jumping reads into one stream.
 * The loader now reads tensors in file order (WanDitLoader), so this thread reads the same region a little ahead of
 * it rather than competing for another part of the disk; it is kept because it reads on through the loader's pauses
 * (the end of each tensor, where the loader's reader pool drains; synchronizing stores of streamed blocks; small
 * tensors read on one thread), and a page both read is read from the disk once. Whether it still pays is for the cold
 * e2e load to show (gpu-test.sh e2e, page cache dropped): if the loader alone matches dd, delete this class. The bytes
 * read here are thrown away (a reused 8 MiB buffer); only the page cache keeps them. So it runs only when the files
 * fit in half of the memory the OS reports available: otherwise the cache would evict pages before the loader reaches
 * them and the disk would read them twice. It is a hint: an I/O error stops it silently (the loader's own reads report
 * errors), and {@link #close} stops it.
 */
public final class FileReadAhead implements AutoCloseable {

    private static final int BUFFER_BYTES = 8 << 20;

    /**
     * Files claimed by an open read-ahead of this process: one background reader per file (the training run starts one
     * at its beginning, the loader asks again when it opens the file). A claim ends with its handle's {@link #close}.
     */
    private static final Set<Path> BEING_READ = ConcurrentHashMap.newKeySet();

    private final List<Path> files;
    private final Thread thread;
    private volatile boolean isStopped;
    private boolean isClaimed;

    private FileReadAhead(List<Path> files) {
        this.files = files.stream().map(f -> f.toAbsolutePath().normalize()).toList();
        thread = Thread.ofPlatform().daemon().name("wanlora-readahead").unstarted(() -> readAll(this.files));
    }

    /**
     * Starts reading {@code files} when their total size is at most half of {@code availableBytes} (0: unknown, then
     * nothing is read); returns a handle that {@link #close} stops either way.
     */
    public static FileReadAhead start(List<Path> files, long availableBytes) {
        FileReadAhead r = new FileReadAhead(files);
        long total = 0;
        for (Path f : files) {
            try {
                total += Files.size(f);
            } catch (IOException e) {
                return r; // the loader names the file
            }
        }
        if (availableBytes > 0 && total <= availableBytes / 2) {
            r.isClaimed = claim(r.files);
            if (r.isClaimed) r.thread.start();
        }
        return r;
    }

    /** Claims every file for this reader, or none when another open read-ahead of this process holds one of them. */
    private static synchronized boolean claim(List<Path> files) {
        for (Path f : files) if (BEING_READ.contains(f)) return false;
        BEING_READ.addAll(files);
        return true;
    }

    /** {@link #start(List, long)} with the memory /proc/meminfo reports available now. */
    public static FileReadAhead start(List<Path> files) {
        return start(files, HostMemory.availableBytes());
    }

    /** Whether the background read was started (for tests and the load summary). */
    public boolean isReading() {
        return thread.isAlive() || thread.getState() == Thread.State.TERMINATED;
    }

    private void readAll(List<Path> files) {
        ByteBuffer buffer = ByteBuffer.allocateDirect(BUFFER_BYTES);
        for (Path f : files) {
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                long position = 0;
                while (!isStopped) {
                    buffer.clear();
                    int n = ch.read(buffer, position);
                    if (n < 0) break;
                    position += n;
                }
            } catch (IOException e) {
                return;
            }
            if (isStopped) return;
        }
    }

    /** Stops the reading (at the next 8 MiB) and waits for the thread. Idempotent. */
    @Override
    public void close() {
        isStopped = true;
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            release();
        }
    }

    private void release() {
        if (isClaimed) unclaim(files);
        isClaimed = false;
    }

    private static synchronized void unclaim(List<Path> files) { BEING_READ.removeAll(files); }
}
