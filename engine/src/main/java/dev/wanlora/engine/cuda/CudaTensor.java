package dev.wanlora.engine.cuda;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

/**
 * A dense row-major tensor in device memory: a {@link DeviceBuffer} plus a byte offset, a dtype and a shape.
 * A tensor either owns its buffer (closing it frees the memory) or is a view (closing it does nothing). Tensors
 * carved from a {@link DeviceArena} remember the arena's generation; touching one after the arena was reset throws
 * {@link IllegalStateException}, so a view from an earlier step can never read another step's scratch.
 */
public final class CudaTensor implements Tensor {
    private final CudaBackend backend;
    private final DeviceBuffer buffer;
    private final long byteOffset;
    private final DType dtype;
    private final Shape shape;
    private final boolean ownsBuffer;
    private final DeviceArena arena; // null when not arena memory
    private final long generation;

    CudaTensor(CudaBackend backend, DeviceBuffer buffer, long byteOffset, DType dtype, Shape shape, boolean ownsBuffer,
               DeviceArena arena, long generation) {
        long end = Math.addExact(byteOffset, Math.multiplyExact(shape.numElements(), dtype.sizeBytes()));
        if (byteOffset < 0 || end > buffer.sizeBytes()) {
            throw new IllegalArgumentException("CudaTensor: " + dtype + shape + " at byte " + byteOffset
                    + " does not fit in " + buffer.label() + " of " + buffer.sizeBytes() + " bytes");
        }
        this.backend = backend;
        this.buffer = buffer;
        this.byteOffset = byteOffset;
        this.dtype = dtype;
        this.shape = shape;
        this.ownsBuffer = ownsBuffer;
        this.arena = arena;
        this.generation = generation;
    }

    @Override
    public Shape shape() { return shape; }

    @Override
    public DType dtype() { return dtype; }

    @Override
    public String backendName() { return backend.name(); }

    /** The CudaBackend this tensor belongs to. */
    public CudaBackend cudaBackend() { return backend; }

    /** The device address of element 0 (what a kernel receives). Throws if closed or from a reset arena. */
    public long address() {
        checkLive();
        return buffer.address() + byteOffset;
    }

    /** A JCuda pointer to element 0 for driver calls (memcpy, memset). */
    NativeHandles.DevicePointer pointer() {
        checkLive();
        return buffer.pointer(byteOffset);
    }

    DeviceBuffer buffer() { return buffer; }

    @Override
    public CudaTensor view(long offsetElements, Shape shape) {
        checkLive();
        long count = shape.numElements();
        if (offsetElements < 0 || Math.addExact(offsetElements, count) > numElements()) {
            throw new IndexOutOfBoundsException("view: elements [" + offsetElements + ", " + (offsetElements + count)
                    + ") outside " + this.shape + " (" + numElements() + " elements)");
        }
        return new CudaTensor(backend, buffer, byteOffset + offsetElements * dtype.sizeBytes(), dtype, shape, false, arena,
                generation);
    }

    @Override
    public CudaTensor reshape(Shape shape) { return (CudaTensor) Tensor.super.reshape(shape); }

    @Override
    public CudaTensor slice(long i) { return (CudaTensor) Tensor.super.slice(i); }

    private void checkLive() {
        if (buffer.isClosed()) throw new IllegalStateException("CudaTensor " + dtype + shape + " used after its memory was closed");
        if (arena != null && arena.generation() != generation) {
            throw new IllegalStateException("CudaTensor " + dtype + shape + " from arena generation " + generation
                    + " used after the arena was reset (now generation " + arena.generation() + ")");
        }
    }

    @Override
    public void close() {
        if (ownsBuffer) buffer.close();
    }

    @Override
    public String toString() { return "CudaTensor" + shape + " " + dtype; }
}
