package dev.wanlora.engine.cuda;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.Iterator;

import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;

/**
 * The pinned staging ring behind {@link CudaBackend#write}: the host encodes values into a region of one page-locked
 * buffer and an asynchronous copy on the compute stream moves them to the device, so an upload neither allocates nor
 * waits for the GPU. Regions are handed out in ring order (256-byte aligned); each queued copy records an event, and a
 * region is reused only after the events of the copies that read it have completed. Uploads of one step are a few MB
 * (latents and text contexts), so in steady state the ring never waits: a region comes round again only a whole
 * ring later.
 *
 * <p>The buffer grows (synchronizing once) when one upload is larger than the ring; that happens at warm-up, for
 * the largest batch shape, never in a steady-state step.
 */
final class UploadStaging implements AutoCloseable {
    private static final long ALIGN = 256;
    /** First capacity: a 14B batch at 81 frames (latents 8 MB F32) plus a few 4 MB contexts fits with room to spare. */
    private static final long INITIAL_BYTES = 64L << 20;

    /** A queued copy that reads staging bytes [start, end) until {@code done} completes. */
    private record InFlight(long start, long end, CudaEvent done) {}

    private final CudaContext context;
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
        idleEvents.forEach(CudaEvent::close);
        idleEvents.clear();
    }
}
