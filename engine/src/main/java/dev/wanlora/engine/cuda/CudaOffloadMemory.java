package dev.wanlora.engine.cuda;

import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.memory.OffloadMemory;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;

/**
 * {@link OffloadMemory} on one GPU: item images live in a few large pinned host chunks (whole items only, each image
 * contiguous), so an item moves either way with one asynchronous copy on the context's copy stream, overlapping the
 * compute stream's work. Each slot is one device allocation seen as typed views at the layout's offsets.
 *
 * <p>Ordering, per slot k, with two events: a store or load first records {@code computed[k]} on the compute stream
 * and makes the copy stream wait for it (the copy reads what the compute queued so far wrote, or overwrites what it
 * read), then records {@code copied[k]} on the copy stream after the copy; {@link #awaitCopies} makes the compute
 * stream wait for {@code copied[k]}. A wait on an event never recorded returns at once (driver semantics). No host
 * synchronization happens in a step.
 */
public final class CudaOffloadMemory implements OffloadMemory {
    private final CudaBackend backend;
    private final CudaContext context;
    private final BlockLayout layout;
    private final int numItems;
    private final int itemsPerChunk;
    private final List<PinnedHostBuffer> chunks = new ArrayList<>();
    /** Each slot's whole image, (item bytes) U8: the owner of the slot's allocation, source of a store, target of a load. */
    private final List<CudaTensor> slotImages = new ArrayList<>();
    private final List<List<Tensor>> slots = new ArrayList<>();
    private final List<CudaEvent> computed = new ArrayList<>();
    private final List<CudaEvent> copied = new ArrayList<>();

    public CudaOffloadMemory(CudaBackend backend, BlockLayout layout, int numItems, int numSlots) {
        this.backend = backend;
        this.context = backend.context();
        this.layout = layout;
        this.numItems = numItems;
        long itemBytes = layout.sizeBytes();
        this.itemsPerChunk = (int) Math.max(1, Math.min(numItems, CudaStreamMemory.CHUNK_TARGET_BYTES / itemBytes));
        try {
            for (int first = 0; first < numItems; first += itemsPerChunk) {
                int n = Math.min(itemsPerChunk, numItems - first);
                chunks.add(backend.allocatePinned(n * itemBytes, "offloaded activations " + first + ".." + (first + n - 1)));
            }
            for (int k = 0; k < numSlots; k++) {
                CudaTensor image = backend.allocateUninitialized(DType.U8, Shape.of(itemBytes));
                slotImages.add(image);
                List<Tensor> views = new ArrayList<>();
                for (int e = 0; e < layout.numEntries(); e++) {
                    BlockLayout.Entry entry = layout.entry(e);
                    views.add(new CudaTensor(backend, image.buffer(), layout.offsetBytes(e), entry.dtype(), entry.shape(),
                            false, null, 0));
                }
                slots.add(List.copyOf(views));
                computed.add(context.newEvent(false));
                copied.add(context.newEvent(false));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    @Override
    public List<Tensor> slot(int k) { return slots.get(k); }

    @Override
    public void store(int item, int k) {
        afterCompute(k);
        CudaTensor src = slotImages.get(k);
        context.makeCurrent();
        CudaException.check(cuMemcpyDtoHAsync(chunks.get(chunkOf(item)).pointer(offsetInChunk(item)), src.pointer(),
                src.sizeBytes(), context.copyStream()), "cuMemcpyDtoHAsync", "offload slot " + k + " -> pinned item " + item);
        copied.get(k).recordOnCopy();
    }

    @Override
    public void load(int item, int k) {
        afterCompute(k);
        backend.copyToDeviceAsync(slotImages.get(k), chunks.get(chunkOf(item)), offsetInChunk(item));
        copied.get(k).recordOnCopy();
    }

    @Override
    public void awaitCopies(int k) { copied.get(k).waitOnCompute(); }

    /** Makes the copy stream wait for the compute queued so far. */
    private void afterCompute(int k) {
        computed.get(k).recordOnCompute();
        computed.get(k).waitOnCopy();
    }

    @Override
    public long hostBytes() {
        long n = 0;
        for (PinnedHostBuffer c : chunks) n += c.sizeBytes();
        return n;
    }

    @Override
    public long deviceBytes() { return slotImages.size() * layout.sizeBytes(); }

    private int chunkOf(int item) {
        if (item < 0 || item >= numItems) {
            throw new IndexOutOfBoundsException("CudaOffloadMemory: item " + item + " outside [0, " + numItems + ")");
        }
        return item / itemsPerChunk;
    }

    private long offsetInChunk(int item) { return (item % itemsPerChunk) * layout.sizeBytes(); }

    @Override
    public void close() {
        context.synchronize(); // no copy or kernel may still touch a slot or a chunk
        computed.forEach(CudaEvent::close);
        copied.forEach(CudaEvent::close);
        slotImages.forEach(CudaTensor::close);
        chunks.forEach(PinnedHostBuffer::close);
        computed.clear();
        copied.clear();
        slotImages.clear();
        slots.clear();
        chunks.clear();
    }
}
