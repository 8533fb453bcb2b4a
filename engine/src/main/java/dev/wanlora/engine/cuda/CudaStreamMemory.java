package dev.wanlora.engine.cuda;

import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.memory.StreamMemory;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

import static jcuda.driver.JCudaDriver.cuCtxSynchronize;

/**
 * {@link StreamMemory} on one GPU (DESIGN.md §6). Block images live in a few large pinned host chunks
 * ({@link #CHUNK_TARGET_BYTES} each, whole blocks only), each block's image contiguous, so a block moves with one
 * {@link CudaBackend#copyToDeviceAsync} on the context's copy stream. Each slot is one device allocation seen as typed
 * views at the layout's offsets.
 *
 * <p>Ordering, per slot k, with two events: a load makes the copy stream wait for {@code released[k]} (recorded on
 * the compute stream by {@link #release}) and then records {@code loaded[k]} on the copy stream; {@link #awaitLoad}
 * makes the compute stream wait for {@code loaded[k]}. A wait on an event never recorded returns at once (driver
 * semantics), which covers a slot's first load. No host synchronization happens after load time.
 */
public final class CudaStreamMemory implements StreamMemory {
    /** Pinned chunk size to aim for: few enough allocations (7 for 39 swapped 14B fp8 blocks), none too large to pin. */
    static final long CHUNK_TARGET_BYTES = 2L << 30;

    private final CudaBackend backend;
    private final CudaContext context;
    private final BlockLayout layout;
    private final int numBlocks;
    private final int blocksPerChunk;
    private final List<PinnedHostBuffer> chunks = new ArrayList<>();
    /** Each slot's whole image, (block bytes) U8: the owner of the slot's allocation and the target of a load. */
    private final List<CudaTensor> slotImages = new ArrayList<>();
    private final List<List<Tensor>> slots = new ArrayList<>();
    private final List<CudaEvent> loaded = new ArrayList<>();
    private final List<CudaEvent> released = new ArrayList<>();

    public CudaStreamMemory(CudaBackend backend, BlockLayout layout, int numBlocks, int numSlots) {
        this.backend = backend;
        this.context = backend.context();
        this.layout = layout;
        this.numBlocks = numBlocks;
        long blockBytes = layout.sizeBytes();
        this.blocksPerChunk = (int) Math.max(1, Math.min(numBlocks, CHUNK_TARGET_BYTES / blockBytes));
        try {
            for (int first = 0; first < numBlocks; first += blocksPerChunk) {
                int n = Math.min(blocksPerChunk, numBlocks - first);
                chunks.add(backend.allocatePinned(n * blockBytes, "streamed blocks " + first + ".." + (first + n - 1)));
            }
            for (int k = 0; k < numSlots; k++) {
                CudaTensor image = backend.allocateUninitialized(DType.U8, Shape.of(blockBytes));
                slotImages.add(image);
                List<Tensor> views = new ArrayList<>();
                for (int e = 0; e < layout.numEntries(); e++) {
                    BlockLayout.Entry entry = layout.entry(e);
                    views.add(new CudaTensor(backend, image.buffer(), layout.offsetBytes(e), entry.dtype(), entry.shape(),
                            false, null, 0));
                }
                slots.add(List.copyOf(views));
                loaded.add(context.newEvent(false));
                released.add(context.newEvent(false));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    @Override
    public List<Tensor> slot(int k) { return slots.get(k); }

    @Override
    public void store(int block, int entry, Tensor value) {
        if (!(value instanceof CudaTensor t) || t.cudaBackend().context() != context) {
            throw new IllegalArgumentException("CudaStreamMemory.store: got " + value + ", expected a tensor of " + context);
        }
        // The value may come from a synchronous upload from pageable memory (fromBytes), whose DMA can still be in
        // flight when cuMemcpyHtoD returns and which the non-blocking compute stream does not wait for: wait for all
        // work of the context first (load time only).
        context.makeCurrent();
        CudaException.check(cuCtxSynchronize(), "cuCtxSynchronize", "before storing entry " + entry + " of streamed block " + block);
        backend.copyToHostAsync(chunks.get(chunkOf(block)), offsetInChunk(block) + layout.offsetBytes(entry), t);
        context.synchronize();
    }

    @Override
    public void load(int block, int k) {
        released.get(k).waitOnCopy();
        backend.copyToDeviceAsync(slotImages.get(k), chunks.get(chunkOf(block)), offsetInChunk(block));
        loaded.get(k).recordOnCopy();
    }

    @Override
    public void awaitLoad(int k) { loaded.get(k).waitOnCompute(); }

    @Override
    public void release(int k) { released.get(k).recordOnCompute(); }

    @Override
    public long hostBytes() {
        long n = 0;
        for (PinnedHostBuffer c : chunks) n += c.sizeBytes();
        return n;
    }

    @Override
    public long deviceBytes() { return slotImages.size() * layout.sizeBytes(); }

    private int chunkOf(int block) {
        if (block < 0 || block >= numBlocks) {
            throw new IndexOutOfBoundsException("CudaStreamMemory: block " + block + " outside [0, " + numBlocks + ")");
        }
        return block / blocksPerChunk;
    }

    /** Byte offset of block b's image in its chunk. */
    private long offsetInChunk(int block) { return (block % blocksPerChunk) * layout.sizeBytes(); }

    @Override
    public void close() {
        context.synchronize(); // no copy or kernel may still touch a slot or a chunk
        loaded.forEach(CudaEvent::close);
        released.forEach(CudaEvent::close);
        slotImages.forEach(CudaTensor::close);
        chunks.forEach(PinnedHostBuffer::close);
        loaded.clear();
        released.clear();
        slotImages.clear();
        slots.clear();
        chunks.clear();
    }
}
