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
 * Reads checkpoint files front to back on background threads while a loader reads their tensors, so that the disk
 * keeps reading where the loader pauses and the loader's positional reads mostly hit the page cache.
 *
 * <p>History and why it stays: it was added when the DiT loader walked the model (blocks 0, 1, 2, …) through files
 * that store tensors by name (blocks.0, blocks.1, blocks.10, …), to turn the loader's jumping reads into one stream.
 * The loader now reads tensors in file order (WanDitLoader), so these threads read the same region a little ahead of
 * it rather than competing for another part of the disk; it is kept because it reads on through the loader's pauses
 * (the end of each tensor, where the loader's reader pool drains; synchronizing stores of streamed blocks; small
 * tensors read on one thread), and a page both read is read from the disk once. Whether it still pays is for the cold
 * e2e load to show (gpu-test.sh e2e, page cache dropped): if the loader alone matches dd, delete this class. The bytes
 * read here are thrown away (one reused buffer per reader, {@link #READERS} × {@link #CHUNK_BYTES}); only the page
 * cache keeps them. So it runs only when the files fit in half of the memory the OS reports available: otherwise the
 * cache would evict pages before the loader reaches them and the disk would read them twice. It is a hint: an I/O error stops it silently (the loader's own reads report
 * errors), and {@link #close} stops it.
 */
public final class FileReadAhead implements AutoCloseable {

    /**
     * Four readers, each with one 32 MiB request in flight, over interleaved chunks (reader r reads chunks r, r + 4, …).
     * Measured on the H200 machine's virtio disk (gpu-test.sh e2e, page cache dropped before each cold run): one reader
     * of 8 MiB requests held the load at 1.67 and 1.72 GB/s in two calls, while `dd bs=64M` read the same file at 1.66
     * and 2.09 GB/s; the loader alone reads 8.3–8.9 GB/s from the page cache, so the reading was the limit. In one call
     * (dd 17.24 s, 1.7 GB/s) two readers loaded the 26.6 GiB file in 17.5 s (1.63 GB/s; start → end of step 1 22.7 s,
     * 1.32× dd) and four in 14.7 s (1.94 GB/s, faster than dd's single stream; step 1 at 20.2 s, 1.17× dd): the virtio
     * disk serves parallel requests faster than one. The buffers (128 MiB of direct memory) live only while the reading
     * runs. {@code -Dwanlora.readAheadReaders=N} (1..8) sets another count: for the e2e step's A/B of the cold load.
     */
    static final int READERS = Math.clamp(Integer.getInteger("wanlora.readAheadReaders", 4), 1, 8);
    static final int CHUNK_BYTES = 32 << 20;

    /**
     * Files claimed by an open read-ahead of this process: one read-ahead per file (the training run starts one
     * at its beginning, the loader asks again when it opens the file). A claim ends with its handle's {@link #close}.
     */
    private static final Set<Path> BEING_READ = ConcurrentHashMap.newKeySet();

    private final List<Path> files;
    private final List<Thread> threads;
    private volatile boolean isStopped;
    private boolean isClaimed;

    private FileReadAhead(List<Path> files) {
        this.files = files.stream().map(f -> f.toAbsolutePath().normalize()).toList();
        threads = java.util.stream.IntStream.range(0, READERS).mapToObj(r -> Thread.ofPlatform().daemon()
                .name("wanlora-readahead-" + r).unstarted(() -> readAll(this.files, r))).toList();
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
            if (r.isClaimed) r.threads.forEach(Thread::start);
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
        Thread t = threads.getFirst();
        return t.isAlive() || t.getState() == Thread.State.TERMINATED;
    }

    /** Reader {@code reader}'s share: chunks reader, reader + READERS, … of each file, front to back. */
    private void readAll(List<Path> files, int reader) {
        ByteBuffer buffer = ByteBuffer.allocateDirect(CHUNK_BYTES);
        for (Path f : files) {
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                long size = ch.size();
                for (long chunk = reader; !isStopped && chunk * CHUNK_BYTES < size; chunk += READERS) {
                    long position = chunk * CHUNK_BYTES;
                    buffer.clear();
                    buffer.limit((int) Math.min(CHUNK_BYTES, size - position));
                    while (buffer.hasRemaining() && !isStopped) {
                        if (ch.read(buffer, position + buffer.position()) < 0) break;
                    }
                }
            } catch (IOException e) {
                return;
            }
            if (isStopped) return;
        }
    }

    /** Stops the reading (at the next chunk) and waits for the threads. Idempotent. */
    @Override
    public void close() {
        isStopped = true;
        try {
            for (Thread t : threads) t.join();
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
