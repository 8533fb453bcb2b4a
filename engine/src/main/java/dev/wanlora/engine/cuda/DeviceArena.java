package dev.wanlora.engine.cuda;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

/**
 * A bump allocator over one {@link DeviceBuffer} for per-step scratch (STYLE.md §8): {@link #allocate} hands out
 * 256-byte-aligned tensors in order, {@link #reset()} at step start makes the whole buffer free again and bumps the
 * generation, so any tensor handed out before the reset throws when used. Allocation never calls the driver.
 */
public final class DeviceArena implements AutoCloseable {
    private static final long ALIGNMENT = 256;

    private final CudaBackend backend;
    private final DeviceBuffer buffer;
    private long usedBytes;
    private long peakBytes;
    private long generation;

    DeviceArena(CudaBackend backend, DeviceBuffer buffer) {
        this.backend = backend;
        this.buffer = buffer;
    }

    /** A tensor of undefined contents from the arena; throws IllegalStateException when the arena is full. */
    public CudaTensor allocate(DType dtype, Shape shape) {
        long bytes = Math.multiplyExact(shape.numElements(), dtype.sizeBytes());
        long start = (usedBytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        if (start + bytes > buffer.sizeBytes()) {
            throw new IllegalStateException("DeviceArena " + buffer.label() + ": out of space for " + dtype + shape + " ("
                    + bytes + " bytes); used " + start + " of " + buffer.sizeBytes() + " bytes. hint: the memory plan must size this arena for the largest step");
        }
        usedBytes = start + bytes;
        peakBytes = Math.max(peakBytes, usedBytes);
        return new CudaTensor(backend, buffer, start, dtype, shape, false, this, generation);
    }

    /** Frees everything handed out so far; earlier tensors become unusable. */
    public void reset() {
        usedBytes = 0;
        generation++;
    }

    public long generation() { return generation; }

    public long usedBytes() { return usedBytes; }

    /** The most bytes in use at once since creation (for the memory report). */
    public long peakBytes() { return peakBytes; }

    public long capacityBytes() { return buffer.sizeBytes(); }

    @Override
    public void close() { buffer.close(); }
}
