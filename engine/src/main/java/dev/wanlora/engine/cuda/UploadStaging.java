package dev.wanlora.engine.cuda;

import dev.wanlora.engine.io.ByteSource;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;

/**
 * The pinned staging ring behind {@link CudaBackend#write} and {@link CudaBackend#writeBytes}: the host encodes values into a region of one page-locked
 * buffer and an asynchronous copy on the compute stream moves them to the device, so an upload neither allocates nor
 * waits for the GPU. Regions are handed out in ring order (256-byte aligned); each queued copy records an event, and a
 * region is reused only after the events of the copies that read it have completed. Uploads of one step are a few MB
 * (latents and text contexts), so in steady state the ring never waits: a region comes round again only a whole
 * ring later.
 *
 * <p>The buffer grows (synchronizing once) when one upload is larger than the ring; that happens at warm-up, for
 * the largest batch shape, never in a steady-state step.
 *
 * <p>{@link #uploadFrom} (checkpoint loading) moves a source in {@link #CHUNK_BYTES} chunks, each read into the ring
 * as {@link #PIECE_BYTES} pieces by a small pool of reader threads and copied as soon as it is complete, with up to
 * {@link #CHUNKS_AHEAD} chunks being read at once: a cold disk sees up to 32 reads of 4 MiB in flight (what it needs
 * to reach its sequential speed), a warm page cache is copied by several cores, and the device copies of earlier
 * chunks, and the conversion kernels queued after them, run while later chunks are read. The ring is then at least
 * {@link #LOAD_RING_BYTES}: the chunks being read plus the one being reserved must fit in it (5 × 32 MiB ≤ 256 MiB),
 * because {@link #reserve} only waits for queued copies, not for regions still being read.
 */
final class UploadStaging implements AutoCloseable {
    private static final long ALIGN = 256;
    /** First capacity: a 14B batch at 81 frames (latents 8 MB F32) plus a few 4 MB contexts fits with room to spare. */
    private static final long INITIAL_BYTES = 64L << 20;

    /** A queued copy that reads staging bytes [start, end) until {@code done} completes. */
    private record InFlight(long start, long end, CudaEvent done) {}

    /** Bytes per device copy of {@link #uploadFrom}. */
    static final long CHUNK_BYTES = 32L << 20;
    /** Bytes per read task of {@link #uploadFrom}. */
    static final long PIECE_BYTES = 4L << 20;
    /** Chunks of {@link #uploadFrom} being read at once. */
    static final int CHUNKS_AHEAD = 4;
    /** Smallest ring {@link #uploadFrom} works with (see the class comment). */
    static final long LOAD_RING_BYTES = dev.wanlora.engine.memory.HostMemory.LOAD_STAGING_BYTES;
    /** Reader threads of {@link #uploadFrom}: 8 (or fewer cores) keep an NVMe disk busy and copy cached pages fast. */
    private static final int READERS = Math.max(1, Math.min(8, Runtime.getRuntime().availableProcessors()));

    private final CudaContext context;
    private ExecutorService readers;
    private final ArrayDeque<InFlight> inFlight = new ArrayDeque<>();
    private final ArrayDeque<CudaEvent> idleEvents = new ArrayDeque<>();
    private PinnedHostBuffer buffer;
    private long head;

    UploadStaging(CudaContext context) { this.context = context; }

    /**
     * Copies {@code sizeBytes} bytes, which {@code fill} writes into the given host segment, to device address
     * {@code dst} on the compute stream. The segment is valid only during {@code fill}.
     */
    void upload(NativeHandles.DevicePointer dst, long sizeBytes, java.util.function.Consumer<MemorySegment> fill) {
        if (sizeBytes == 0) return;
        long start = reserve(sizeBytes);
        fill.accept(buffer.segment().asSlice(start, sizeBytes));
        context.makeCurrent();
        CudaException.check(cuMemcpyHtoDAsync(dst, buffer.pointer(start), sizeBytes, context.computeStream()),
                "cuMemcpyHtoDAsync", "write of " + sizeBytes + " bytes through the staging ring");
        CudaEvent done = idleEvents.isEmpty() ? context.newEvent(false) : idleEvents.pop();
        done.recordOnCompute();
        inFlight.addLast(new InFlight(start, start + align(sizeBytes), done));
    }

    /**
     * Copies every byte of {@code source} to device address {@code dst} on the compute stream, through the ring in
     * chunks read on the reader threads (see the class comment). The source has been read completely when this
     * returns; the copies may still be in flight.
     */
    void uploadFrom(NativeHandles.DevicePointer dst, ByteSource source) {
        long size = source.byteSize();
        if (size == 0) return;
        if (buffer == null || buffer.sizeBytes() < LOAD_RING_BYTES) grow(LOAD_RING_BYTES);
        if (size <= PIECE_BYTES) { // one small read: on this thread, no hand-off
            long start = reserve(size);
            source.read(0, buffer.segment().asSlice(start, size));
            queueCopy(dst, 0, start, size, "writeBytes of " + source.describe());
            return;
        }
        if (readers == null) {
            readers = Executors.newFixedThreadPool(READERS, r -> {
                Thread t = new Thread(r, "wanlora-upload-reader");
                t.setDaemon(true);
                return t;
            });
        }
        record Chunk(long sourceOffset, long ringStart, long size, List<Future<?>> reads) {}
        ArrayDeque<Chunk> reading = new ArrayDeque<>();
        try {
            for (long offset = 0; offset < size || !reading.isEmpty(); ) {
                if (offset < size && reading.size() < CHUNKS_AHEAD) {
                    long n = Math.min(CHUNK_BYTES, size - offset);
                    long start = reserve(n);
                    MemorySegment region = buffer.segment().asSlice(start, n);
                    List<Future<?>> reads = new ArrayList<>();
                    for (long p = 0; p < n; p += PIECE_BYTES) {
                        long from = offset + p, pieceStart = p, pieceSize = Math.min(PIECE_BYTES, n - p);
                        reads.add(readers.submit(() -> source.read(from, region.asSlice(pieceStart, pieceSize))));
                    }
                    reading.addLast(new Chunk(offset, start, n, reads));
                    offset += n;
                    continue;
                }
                Chunk c = reading.getFirst(); // removed only once every read is done: a failure waits for the rest below
                for (Future<?> f : c.reads()) await(f);
                reading.removeFirst();
                queueCopy(dst, c.sourceOffset(), c.ringStart(), c.size(), "writeBytes of " + source.describe());
            }
        } catch (RuntimeException e) {
            // Reads still running write into the ring: let them finish before anyone reuses it.
            for (Chunk c : reading) for (Future<?> f : c.reads()) {
                try {
                    f.get();
                } catch (ExecutionException ignored) {
                    // the first failure is the one rethrown
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
            throw e;
        }
    }

    private static void await(Future<?> read) {
        try {
            read.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while reading a checkpoint", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            throw new IllegalStateException(e.getCause());
        }
    }

    /** Queues ring bytes [start, start + size) → dst + dstOffset on the compute stream and remembers the copy. */
    private void queueCopy(NativeHandles.DevicePointer dst, long dstOffset, long start, long size, String what) {
        context.makeCurrent();
        CudaException.check(cuMemcpyHtoDAsync(new NativeHandles.DevicePointer(dst, dstOffset), buffer.pointer(start), size,
                context.computeStream()), "cuMemcpyHtoDAsync", what);
        CudaEvent done = idleEvents.isEmpty() ? context.newEvent(false) : idleEvents.pop();
        done.recordOnCompute();
        inFlight.addLast(new InFlight(start, start + align(size), done));
    }

    /** Capacity of the ring in bytes (0 before the first upload). */
    long capacityBytes() { return buffer == null ? 0 : buffer.sizeBytes(); }

    /** The start of a free region of at least {@code sizeBytes}, waiting for earlier copies that still read it. */
    private long reserve(long sizeBytes) {
        long size = align(sizeBytes);
        if (buffer == null || size > buffer.sizeBytes()) grow(size);
        if (head + size > buffer.sizeBytes()) head = 0;
        long start = head, end = head + size;
        // Copies complete in stream order: waiting for the newest overlapping one retires it and everything older.
        InFlight newestOverlap = null;
        for (InFlight f : inFlight) if (f.start() < end && start < f.end()) newestOverlap = f;
        if (newestOverlap != null) {
            newestOverlap.done().synchronize();
            for (Iterator<InFlight> it = inFlight.iterator(); it.hasNext(); ) {
                InFlight f = it.next();
                it.remove();
                idleEvents.push(f.done());
                if (f == newestOverlap) break;
            }
        }
        head = end;
        return start;
    }

    private void grow(long atLeast) {
        long capacity = Math.max(INITIAL_BYTES, Long.highestOneBit(atLeast - 1) << 1);
        if (buffer != null) {
            context.synchronize(); // queued copies may still read the old buffer
            buffer.close();
        }
        retireAll();
        buffer = PinnedHostBuffer.allocate(context, capacity, "upload staging ring");
        head = 0;
    }

    private void retireAll() {
        for (InFlight f : inFlight) idleEvents.push(f.done());
        inFlight.clear();
    }

    private static long align(long bytes) { return (bytes + ALIGN - 1) / ALIGN * ALIGN; }

    @Override
    public void close() {
        if (buffer != null) {
            context.synchronize();
            buffer.close();
            buffer = null;
        }
        retireAll();
        if (readers != null) readers.shutdownNow();
        idleEvents.forEach(CudaEvent::close);
        idleEvents.clear();
    }
}
