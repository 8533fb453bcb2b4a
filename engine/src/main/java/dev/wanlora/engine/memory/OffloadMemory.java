package dev.wanlora.engine.memory;

import dev.wanlora.engine.tensor.Tensor;

import java.util.List;

/**
 * Where the bytes of an {@code ActivationOffload} (engine.stream) live and how they move, for one backend: a host image
 * per offloaded item and a ring of device slots the compute reads and writes. Unlike {@link StreamMemory} (frozen weights, host→device
 * only) the bytes go both ways: an item written by the forward is stored to the host and loaded back for the backward.
 *
 * <p>Ordering contract (what makes offloading invisible to the numbers): a {@link #store} or {@link #load} on slot k
 * starts only after every compute op queued before it has finished (the store reads what the compute wrote; the load
 * overwrites what the compute read), and compute ops queued after {@link #awaitCopies}(k) start only after the latest
 * store from or load into slot k has finished. A synchronous backend meets both by copying at once.
 */
public interface OffloadMemory extends AutoCloseable {

    /** Slot k's tensors, one per layout entry with the entry's dtype and shape; the same objects for the slot's life. */
    List<Tensor> slot(int k);

    /** Queues item i's host image ← slot k, after the compute queued so far. */
    void store(int item, int k);

    /** Queues slot k ← item i's host image, after the compute queued so far. */
    void load(int item, int k);

    /** Makes compute queued from now on wait for the latest store from or load into slot k. */
    void awaitCopies(int k);

    /** Bytes of host memory held (every offloaded item's image). */
    long hostBytes();

    /** Bytes of device memory held (the slots). */
    long deviceBytes();

    @Override
    void close();
}
