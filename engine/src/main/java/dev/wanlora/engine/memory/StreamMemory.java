package dev.wanlora.engine.memory;

import dev.wanlora.engine.tensor.Tensor;

import java.util.List;

/**
 * Where the bytes of a {@code BlockStreamer} (engine.stream) live and how they move, for one backend: a host image of
 * every streamed block, written once at load time, and a ring of device slots the compute reads from. It decides
 * which block goes into which slot and when; implementations only move bytes and order the two sides.
 *
 * <p>Ordering contract (what makes streaming invisible to the numbers): a {@link #load} into slot k starts only after
 * every compute op queued before the latest {@link #release}(k) has finished (use-before-overwrite), and compute ops
 * queued after {@link #awaitLoad}(k) start only after the latest load into k has finished (copy-before-use). A
 * synchronous backend meets both by doing the copy at once.
 */
public interface StreamMemory extends AutoCloseable {

    /** Slot k's tensors, one per layout entry with the entry's dtype and shape; the same objects for the slot's life. */
    List<Tensor> slot(int k);

    /**
     * Copies {@code value} (a tensor of the backend, with entry e's dtype and shape) into block b's host image. For
     * load time: it may synchronize the backend.
     */
    void store(int block, int entry, Tensor value);

    /** Queues block b's host image into slot k, after the compute work released from k (see the class contract). */
    void load(int block, int k);

    /** Makes compute queued from now on wait for the latest load into slot k. */
    void awaitLoad(int k);

    /** Marks the compute work queued so far as the last reader of slot k's current contents. */
    void release(int k);

    /** Bytes of host memory held (every block's image). */
    long hostBytes();

    /** Bytes of device memory held (the slots). */
    long deviceBytes();

    @Override
    void close();
}
