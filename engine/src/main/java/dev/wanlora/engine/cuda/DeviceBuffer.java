package dev.wanlora.engine.cuda;

import java.util.concurrent.atomic.AtomicLong;

import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;

/**
 * One device allocation (cuMemAlloc) with exactly one owner (STYLE.md §8): {@link #close()} frees it and is
 * idempotent; nothing is ever freed by the garbage collector. Long-lived memory is a few of these carved into views
 * ({@link CudaTensor#view}); per-step scratch comes from a {@link DeviceArena}. cuMemAlloc aligns to at least 256
 * bytes, which every kernel's 16-byte vector loads rely on.
 */
public final class DeviceBuffer implements AutoCloseable {
    private static final AtomicLong ALLOCATIONS = new AtomicLong();
    /** Bytes held by open buffers, and the most they have held since the last {@link #resetPeakLiveBytes()}. */
    private static final AtomicLong LIVE_BYTES = new AtomicLong();
    private static final AtomicLong PEAK_LIVE_BYTES = new AtomicLong();

    private final CudaContext context;
    private final NativeHandles.DevicePointer pointer = new NativeHandles.DevicePointer();
    private final long sizeBytes;
    private final String label;
    private boolean closed;

    private DeviceBuffer(CudaContext context, long sizeBytes, String label) {
        this.context = context;
        this.sizeBytes = sizeBytes;
        this.label = label;
        context.makeCurrent();
        int r = cuMemAlloc(pointer, Math.max(sizeBytes, 1));
        if (r != 0) {
            throw new CudaException("cuMemAlloc", r, jcuda.driver.CUresult.stringFor(r),
                    String.format("allocating %s (%.1f MiB) with %.1f MiB free of %.1f MiB on %s", label, sizeBytes / 1048576.0,
                            context.freeMemoryBytes() / 1048576.0, context.totalMemoryBytes() / 1048576.0, context));
        }
        ALLOCATIONS.incrementAndGet();
        long live = LIVE_BYTES.addAndGet(sizeBytes);
        PEAK_LIVE_BYTES.accumulateAndGet(live, Math::max);
    }

    /** Allocates {@code sizeBytes} of device memory (contents undefined); {@code label} names it in errors. */
    public static DeviceBuffer allocate(CudaContext context, long sizeBytes, String label) {
        if (sizeBytes < 0) throw new IllegalArgumentException("DeviceBuffer: negative size; got " + sizeBytes + " for " + label);
        return new DeviceBuffer(context, sizeBytes, label);
    }

    /** How many cuMemAlloc calls have succeeded in this process (the no-allocation test watches this). */
    public static long allocationCount() { return ALLOCATIONS.get(); }

    /**
     * Bytes of device memory wanlora holds right now through open buffers, over every context of the process (what
     * torch calls memory_allocated; the driver's own use, the context and cuBLASLt's internals are not included).
     */
    public static long liveBytes() { return LIVE_BYTES.get(); }

    /** The high-water mark of {@link #liveBytes()} since the last {@link #resetPeakLiveBytes()} (torch's max_memory_allocated). */
    public static long peakLiveBytes() { return PEAK_LIVE_BYTES.get(); }

    /** Starts a new high-water mark at the current {@link #liveBytes()}. */
    public static void resetPeakLiveBytes() { PEAK_LIVE_BYTES.set(LIVE_BYTES.get()); }

    public CudaContext context() { return context; }

    public long sizeBytes() { return sizeBytes; }

    public String label() { return label; }

    public boolean isClosed() { return closed; }

    /** The device address of byte 0. */
    public long address() {
        checkOpen();
        return pointer.address();
    }

    /** A JCuda pointer {@code byteOffset} bytes in, for driver calls (memcpy, memset). */
    NativeHandles.DevicePointer pointer(long byteOffset) {
        checkOpen();
        return byteOffset == 0 ? pointer : new NativeHandles.DevicePointer(pointer, byteOffset);
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("DeviceBuffer " + label + " used after close");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        context.makeCurrent();
        CudaException.check(cuMemFree(pointer), "cuMemFree", label);
        LIVE_BYTES.addAndGet(-sizeBytes);
    }
}
