package dev.wanlora.engine.stream;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.backend.ProfilingBackend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.cuda.CudaOffloadMemory;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.memory.OffloadMemory;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Activation offload (issue 12, musubi's {@code --gradient_checkpointing_cpu_offload}): {@code numItems} activations
 * of one {@link BlockLayout} (e.g. the saved block inputs of gradient checkpointing), written once per step by the
 * forward and read back by the backward in reverse order. Items {@code 0 … numOffloaded − 1} live in host memory
 * (pinned on the GPU) and pass through a ring of {@code numSlots} device slots; the others have a device tensor of
 * their own for the object's life.
 *
 * <p>Use, per item: {@link #acquireForWrite} before the first op that writes it (returns a slot, ordered after any copy
 * still touching that slot); {@link #acquire} before the first op that reads it (loads it from the host unless it is
 * still in a slot, and orders compute after that copy); {@link #release} after the last op of that use (an item written
 * since its last store is then stored to the host, after the compute queued so far). {@link #prefetch} starts a load
 * early, so the copy overlaps the current compute. An item stays in its slot after release until the slot is reused,
 * so a backward that starts with the items the forward ended with copies nothing for them.
 *
 * <p>Which item is where is decided here, the same way on every backend; {@link OffloadMemory} only moves bytes
 * (synchronously on the CPU, on the copy stream with events on the GPU), so the CPU tests check the GPU's schedule.
 */
public final class ActivationOffload implements AutoCloseable {
    private final BlockLayout layout;
    private final int numItems;
    private final int numOffloaded;
    private final OffloadMemory memory; // null when nothing is offloaded
    /** Items numOffloaded … numItems − 1: their own device tensors, one per layout entry. */
    private final List<List<Tensor>> resident = new ArrayList<>();
    private final int[] slotItem;
    private final long[] slotLastUse;
    private final boolean[] isAcquired;
    /** Whether the slot holds contents written since the item's last store. */
    private final boolean[] isDirty;
    /** Per offloaded item: whether its host image holds its latest contents. */
    private final boolean[] isStored;
    private long clock;
    private long loads;
    private long stores;

    private ActivationOffload(Backend backend, BlockLayout layout, int numItems, int numOffloaded, int numSlots) {
        this.layout = layout;
        this.numItems = numItems;
        this.numOffloaded = numOffloaded;
        int slots = numOffloaded == 0 ? 0 : numSlots;
        this.slotItem = new int[slots];
        this.slotLastUse = new long[slots];
        this.isAcquired = new boolean[slots];
        this.isDirty = new boolean[slots];
        this.isStored = new boolean[numOffloaded];
        Arrays.fill(slotItem, -1);
        OffloadMemory m = null;
        try {
            if (numOffloaded > 0) m = memory(backend, layout, numOffloaded, slots);
            for (int i = numOffloaded; i < numItems; i++) {
                List<Tensor> item = new ArrayList<>();
                resident.add(item);
                for (BlockLayout.Entry e : layout.entries()) item.add(backend.allocate(e.dtype(), e.shape()));
            }
        } catch (RuntimeException e) {
            if (m != null) m.close();
            resident.forEach(item -> item.forEach(Tensor::close));
            throw e;
        }
        this.memory = m;
    }

    /**
     * {@code numItems} items of {@code layout} on {@code backend}, the first {@code numOffloaded} of them in host memory
     * through {@code numSlots} device slots (contents undefined until written).
     *
     * @throws IllegalArgumentException for numOffloaded outside [0, numItems] or, when offloading, numSlots &lt; 2 (a
     *                                  consumer reading one item while writing the next holds two)
     */
    public static ActivationOffload open(Backend backend, BlockLayout layout, int numItems, int numOffloaded, int numSlots) {
        if (numOffloaded < 0 || numOffloaded > numItems || (numOffloaded > 0 && numSlots < 2)) {
            throw new IllegalArgumentException("ActivationOffload: got " + numOffloaded + " offloaded of " + numItems
                    + " items and " + numSlots + " slot(s), expected 0 to " + numItems + " offloaded and at least 2 slots");
        }
        return new ActivationOffload(backend, layout, numItems, numOffloaded, numSlots);
    }

    private static OffloadMemory memory(Backend backend, BlockLayout layout, int numItems, int numSlots) {
        return switch (backend) {
            case CudaBackend cuda -> new CudaOffloadMemory(cuda, layout, numItems, numSlots);
            case CpuBackend cpu -> new HostOffloadMemory(cpu, layout, numItems, numSlots);
            case ProfilingBackend profiling -> memory(profiling.inner(), layout, numItems, numSlots);
            default -> throw new UnsupportedOperationException("ActivationOffload: no offload memory for backend "
                    + backend.name() + "; supported: cpu, cuda (or either behind a ProfilingBackend)");
        };
    }

    public int numItems() { return numItems; }

    public int numOffloaded() { return numOffloaded; }

    public int numSlots() { return slotItem.length; }

    /** Item i's tensors to write, for the use until {@link #release}(i). */
    public List<Tensor> acquireForWrite(int item) {
        checkItem("acquireForWrite", item);
        if (item >= numOffloaded) return resident.get(item - numOffloaded);
        int k = slotOf(item);
        if (k >= 0 && isAcquired[k]) throw alreadyAcquired(item, k);
        if (k < 0) {
            k = freeSlot(item);
            slotItem[k] = item;
        }
        memory.awaitCopies(k); // a store of the slot's previous item, or a load into it, may still be running
        isAcquired[k] = true;
        isDirty[k] = true;
        isStored[item] = false;
        slotLastUse[k] = ++clock;
        return memory.slot(k);
    }

    /**
     * Item i's tensors to read, for the use until {@link #release}(i): loaded from the host unless still in a slot.
     *
     * @throws IllegalStateException when i was never written, or is already acquired
     */
    public List<Tensor> acquire(int item) {
        checkItem("acquire", item);
        if (item >= numOffloaded) return resident.get(item - numOffloaded);
        int k = slotOf(item);
        if (k >= 0 && isAcquired[k]) throw alreadyAcquired(item, k);
        if (k < 0) {
            if (!isStored[item]) {
                throw new IllegalStateException("ActivationOffload.acquire: item " + item + " was never written");
            }
            k = freeSlot(item);
            load(item, k);
        }
        memory.awaitCopies(k);
        isAcquired[k] = true;
        slotLastUse[k] = ++clock;
        return memory.slot(k);
    }

    /** Ends the use of item i by the compute queued so far; an item written since its last store is stored now. */
    public void release(int item) {
        checkItem("release", item);
        if (item >= numOffloaded) return;
        int k = slotOf(item);
        if (k < 0 || !isAcquired[k]) throw new IllegalStateException("ActivationOffload.release: item " + item + " is not acquired");
        if (isDirty[k]) {
            memory.store(item, k);
            stores++;
            isDirty[k] = false;
            isStored[item] = true;
        }
        isAcquired[k] = false;
    }

    /**
     * Starts loading item i into a free slot now, so a later {@link #acquire}(i) finds it there. Does nothing for a
     * resident item, an item outside [0, numItems), one never stored, one already in a slot (except marking it recently
     * used), or when every slot is acquired.
     */
    public void prefetch(int item) {
        if (item < 0 || item >= numOffloaded) return;
        int k = slotOf(item);
        if (k >= 0) {
            slotLastUse[k] = ++clock;
            return;
        }
        if (!isStored[item]) return;
        k = leastRecentlyUsedFreeSlot();
        if (k < 0) return;
        load(item, k);
        slotLastUse[k] = ++clock;
    }

    /** Host→device item copies queued since creation. */
    public long loadCount() { return loads; }

    /** Device→host item copies queued since creation. */
    public long storeCount() { return stores; }

    public long hostBytes() { return memory == null ? 0 : memory.hostBytes(); }

    /** Device bytes: the slots and the resident items. */
    public long deviceBytes() {
        return deviceBytes(layout, numItems, numOffloaded, slotItem.length);
    }

    /**
     * Device bytes of {@link #open}(…, layout, numItems, numOffloaded, numSlots) (for the memory plan): each resident
     * item's entries as separate tensors, plus the slots (one aligned image each) when something is offloaded.
     */
    public static long deviceBytes(BlockLayout layout, int numItems, int numOffloaded, int numSlots) {
        long entries = 0;
        for (BlockLayout.Entry e : layout.entries()) entries += e.sizeBytes();
        long slots = numOffloaded == 0 ? 0 : Math.multiplyExact(layout.sizeBytes(), (long) numSlots);
        return Math.addExact(Math.multiplyExact(entries, (long) (numItems - numOffloaded)), slots);
    }

    /** Host bytes of {@link #open}(…, layout, numItems, numOffloaded, numSlots) (for the memory plan). */
    public static long hostBytes(BlockLayout layout, int numOffloaded) {
        return Math.multiplyExact(layout.sizeBytes(), (long) numOffloaded);
    }

    @Override
    public void close() {
        if (memory != null) memory.close();
        resident.forEach(item -> item.forEach(Tensor::close));
        resident.clear();
    }

    private void load(int item, int k) {
        memory.load(item, k);
        slotItem[k] = item;
        isDirty[k] = false;
        loads++;
    }

    /** A slot to reuse for item i: the least recently used one not acquired (free slots are never dirty). */
    private int freeSlot(int item) {
        int k = leastRecentlyUsedFreeSlot();
        if (k < 0) {
            throw new IllegalStateException("ActivationOffload: item " + item + " needs a slot but all " + slotItem.length
                    + " are acquired; release one first");
        }
        return k;
    }

    private int slotOf(int item) {
        for (int k = 0; k < slotItem.length; k++) if (slotItem[k] == item) return k;
        return -1;
    }

    /** Empty slots first (last use 0), else the least recently used; −1 when every slot is acquired. */
    private int leastRecentlyUsedFreeSlot() {
        int best = -1;
        for (int k = 0; k < slotItem.length; k++) {
            if (isAcquired[k]) continue;
            if (best < 0 || slotLastUse[k] < slotLastUse[best]) best = k;
        }
        return best;
    }

    private static IllegalStateException alreadyAcquired(int item, int k) {
        return new IllegalStateException("ActivationOffload: item " + item + " is already acquired (slot " + k
                + "); release it first");
    }

    private void checkItem(String op, int item) {
        if (item < 0 || item >= numItems) {
            throw new IndexOutOfBoundsException("ActivationOffload." + op + ": item " + item + " outside [0, " + numItems + ")");
        }
    }
}
