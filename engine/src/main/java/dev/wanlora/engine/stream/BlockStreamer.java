package dev.wanlora.engine.stream;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.ProfilingBackend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.cuda.CudaStreamMemory;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.memory.StreamMemory;
import dev.wanlora.engine.tensor.Tensor;

import java.util.List;

/**
 * Block streaming (DESIGN.md §6, {@code --blocks_to_swap}): frozen weights of {@code numBlocks} blocks live in host
 * memory (pinned, on the GPU) and are copied into a ring of {@code numSlots} device slots when a block is needed.
 * Frozen weights never change, so nothing is ever copied back.
 *
 * <p>Use: {@link #acquire}(b) before the first op that reads block b's weights (it returns the slot holding them and
 * orders compute after their copy); {@link #release}(b) after the last such op (it lets the slot be overwritten once
 * that work is done); {@link #prefetch}(b) as early as possible for a block needed soon, so its copy overlaps the
 * current compute. A block stays resident between release and a later acquire until its slot is reused, so a
 * backward pass that starts with the block the forward ended with copies nothing for it. The slot to reuse is the
 * least recently used one that is not acquired.
 *
 * <p>Which block is where is decided here, the same way on every backend; {@link StreamMemory} only moves bytes
 * (synchronously on the CPU, on the copy stream with events on the GPU).
 */
public final class BlockStreamer implements AutoCloseable {
    /** Slots in the ring unless told otherwise: one being computed on, one being filled. */
    public static final int DEFAULT_SLOTS = 2;

    private final BlockLayout layout;
    private final int numBlocks;
    private final StreamMemory memory;
    /** The block in each slot, or −1. */
    private final int[] slotBlock;
    /** When each slot was last acquired or prefetched (a counter), for least-recently-used reuse. */
    private final long[] slotLastUse;
    private final boolean[] isAcquired;
    private long clock;
    private long loads;

    private BlockStreamer(BlockLayout layout, int numBlocks, StreamMemory memory, int numSlots) {
        this.layout = layout;
        this.numBlocks = numBlocks;
        this.memory = memory;
        this.slotBlock = new int[numSlots];
        this.slotLastUse = new long[numSlots];
        this.isAcquired = new boolean[numSlots];
        java.util.Arrays.fill(slotBlock, -1);
    }

    /**
     * Host images for {@code numBlocks} blocks of {@code layout} and {@code numSlots} device slots on {@code backend}
     * (contents undefined until {@link #store}d).
     *
     * @throws IllegalArgumentException for numBlocks &lt; 1 or numSlots &lt; 2 (one slot could not overlap a copy with compute)
     */
    public static BlockStreamer open(Backend backend, BlockLayout layout, int numBlocks, int numSlots) {
        if (numBlocks < 1 || numSlots < 2) {
            throw new IllegalArgumentException("BlockStreamer: got " + numBlocks + " block(s) and " + numSlots
                    + " slot(s), expected at least 1 block and 2 slots");
        }
        return new BlockStreamer(layout, numBlocks, memory(backend, layout, numBlocks, numSlots), numSlots);
    }

    /** The backend's stream memory; a {@link ProfilingBackend} streams on the backend it wraps (copies are not ops). */
    private static StreamMemory memory(Backend backend, BlockLayout layout, int numBlocks, int numSlots) {
        return switch (backend) {
            case CudaBackend cuda -> new CudaStreamMemory(cuda, layout, numBlocks, numSlots);
            case CpuBackend cpu -> new HostStreamMemory(cpu, layout, numBlocks, numSlots);
            case ProfilingBackend profiling -> memory(profiling.inner(), layout, numBlocks, numSlots);
            default -> throw new UnsupportedOperationException("BlockStreamer: no stream memory for backend "
                    + backend.name() + "; supported: cpu, cuda (or either behind a ProfilingBackend)");
        };
    }

    public BlockLayout layout() { return layout; }

    public int numBlocks() { return numBlocks; }

    public int numSlots() { return slotBlock.length; }

    /**
     * Copies {@code value} into entry e of block b's host image (load time; may synchronize).
     *
     * @throws IllegalArgumentException when value's dtype or shape differs from the layout's entry e
     */
    public void store(int block, int entry, Tensor value) {
        checkBlock("store", block);
        BlockLayout.Entry expected = layout.entry(entry);
        if (value.dtype() != expected.dtype() || !value.shape().equals(expected.shape())) {
            throw new IllegalArgumentException("BlockStreamer.store: entry " + entry + " of block " + block + " got "
                    + value.dtype() + value.shape() + ", expected " + expected.dtype() + expected.shape());
        }
        memory.store(block, entry, value);
    }

    /**
     * Makes block b resident (copying it into the least recently used free slot unless it is already in one), orders
     * compute queued from now on after that copy, and pins the slot until {@link #release}(b). Returns the slot.
     *
     * @throws IllegalStateException when b is already acquired or every slot is acquired
     */
    public int acquire(int block) {
        checkBlock("acquire", block);
        int k = slotOf(block);
        if (k >= 0 && isAcquired[k]) {
            throw new IllegalStateException("BlockStreamer.acquire: block " + block + " is already acquired (slot " + k
                    + "); release it first");
        }
        if (k < 0) {
            k = leastRecentlyUsedFreeSlot();
            if (k < 0) {
                throw new IllegalStateException("BlockStreamer.acquire: block " + block + " needs a slot but all "
                        + slotBlock.length + " are acquired; release one first");
            }
            load(block, k);
        }
        memory.awaitLoad(k);
        isAcquired[k] = true;
        slotLastUse[k] = ++clock;
        return k;
    }

    /** The tensors of slot k (one per layout entry), holding the block acquired there. */
    public List<Tensor> slot(int k) { return memory.slot(k); }

    /** Ends the use of block b's slot by the compute queued so far (the slot may be refilled once that work is done). */
    public void release(int block) {
        checkBlock("release", block);
        int k = slotOf(block);
        if (k < 0 || !isAcquired[k]) {
            throw new IllegalStateException("BlockStreamer.release: block " + block + " is not acquired");
        }
        memory.release(k);
        isAcquired[k] = false;
    }

    /**
     * Starts copying block b into a free slot now, so a later {@link #acquire}(b) finds it there. Does nothing when b
     * is resident (except marking it recently used) or every slot is acquired.
     */
    public void prefetch(int block) {
        checkBlock("prefetch", block);
        int k = slotOf(block);
        if (k < 0) {
            k = leastRecentlyUsedFreeSlot();
            if (k < 0) return;
            load(block, k);
        }
        slotLastUse[k] = ++clock;
    }

    /** Host→device block copies queued since creation (a resident block costs none). */
    public long loadCount() { return loads; }

    public long hostBytes() { return memory.hostBytes(); }

    public long deviceBytes() { return memory.deviceBytes(); }

    /** Device bytes of {@code numSlots} slots for {@code layout} (for the memory plan, before anything is allocated). */
    public static long deviceBytes(BlockLayout layout, int numSlots) {
        return Math.multiplyExact(layout.sizeBytes(), numSlots);
    }

    @Override
    public void close() { memory.close(); }

    private void load(int block, int k) {
        memory.load(block, k);
        slotBlock[k] = block;
        loads++;
    }

    private int slotOf(int block) {
        for (int k = 0; k < slotBlock.length; k++) if (slotBlock[k] == block) return k;
        return -1;
    }

    /** Empty slots first (last use 0), else the least recently used; −1 when every slot is acquired. */
    private int leastRecentlyUsedFreeSlot() {
        int best = -1;
        for (int k = 0; k < slotBlock.length; k++) {
            if (isAcquired[k]) continue;
            if (best < 0 || slotLastUse[k] < slotLastUse[best]) best = k;
        }
        return best;
    }

    private void checkBlock(String op, int block) {
        if (block < 0 || block >= numBlocks) {
            throw new IndexOutOfBoundsException("BlockStreamer." + op + ": block " + block + " outside [0, " + numBlocks + ")");
        }
    }
}
