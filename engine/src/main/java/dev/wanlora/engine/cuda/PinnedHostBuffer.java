package dev.wanlora.engine.cuda;

import java.lang.foreign.MemorySegment;

import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemHostAlloc;

/**
 * Page-locked host memory (cuMemHostAlloc, portable): the staging area for asynchronous host↔device copies and the
 * permanent home of swapped block weights (DESIGN.md §6). Seen from Java as a native {@link MemorySegment}. One owner;
 * {@link #close()} frees it and is idempotent, after which the segment must not be touched.
 */
public final class PinnedHostBuffer implements AutoCloseable {
    private static final int CU_MEMHOSTALLOC_PORTABLE = 0x01;

    private final CudaContext context;
    private final NativeHandles.HostPointer pointer = new NativeHandles.HostPointer();
    private final MemorySegment segment;
    private boolean closed;

    private PinnedHostBuffer(CudaContext context, long sizeBytes, String label) {
        this.context = context;
        context.makeCurrent();
        CudaException.check(cuMemHostAlloc(pointer, Math.max(sizeBytes, 1), CU_MEMHOSTALLOC_PORTABLE), "cuMemHostAlloc",
                String.format("allocating %s (%.1f MiB) of pinned host memory", label, sizeBytes / 1048576.0));
        segment = MemorySegment.ofAddress(pointer.address()).reinterpret(sizeBytes);
    }

    /** Allocates {@code sizeBytes} of pinned host memory (contents undefined). */
    public static PinnedHostBuffer allocate(CudaContext context, long sizeBytes, String label) {
        return new PinnedHostBuffer(context, sizeBytes, label);
    }

    /** The memory as a native segment of exactly {@link #sizeBytes()} bytes. */
    public MemorySegment segment() {
        if (closed) throw new IllegalStateException("PinnedHostBuffer used after close");
        return segment;
    }

    public long sizeBytes() { return segment.byteSize(); }

    /** A JCuda pointer {@code byteOffset} bytes in, for async copies. */
    NativeHandles.HostPointer pointer(long byteOffset) {
        if (closed) throw new IllegalStateException("PinnedHostBuffer used after close");
        return new NativeHandles.HostPointer(pointer.address() + byteOffset);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        context.makeCurrent();
        CudaException.check(cuMemFreeHost(pointer), "cuMemFreeHost");
    }
}
