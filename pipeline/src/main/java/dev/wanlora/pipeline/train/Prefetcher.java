package dev.wanlora.pipeline.train;

import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * Reads a sequence's items on a background thread, at most {@code depth} ahead of the consumer (DESIGN.md §4: the next
 * batch's caches are read while the GPU works on this one; the trainer's sequence runs across epochs, so an epoch's
 * first batch is read during the previous epoch's last step). {@link #next} hands the results back in order,
 * exactly as the reader made them; a read that failed rethrows its exception, unchanged, on the consumer's thread when
 * its item is asked for (so a bad cache stops the run with the same one-line error as a read on the main thread, and a
 * bad item never asked for — the run stopped first — is never reported). {@link #close} cancels the reads still
 * pending and waits for the thread to end.
 *
 * @param <I> the items (batches)
 * @param <R> what the reader makes of one (its caches in host memory)
 */
public final class Prefetcher<I, R> implements AutoCloseable {
    /** How long {@link #close} waits for a cancelled read to notice (reads of a cache file take milliseconds). */
    private static final long CLOSE_WAIT_SECONDS = 30;

    private final Iterator<I> items;
    private final Function<I, R> reader;
    private final int depth;
    private final ExecutorService thread;
    private final ArrayDeque<Future<R>> pending = new ArrayDeque<>();
    private int taken;

    /** {@link #Prefetcher(Iterator, Function, int)} over a list's items. */
    public Prefetcher(List<I> items, Function<I, R> reader, int depth) {
        this(List.copyOf(items).iterator(), reader, depth);
    }

    /**
     * Starts reading the first {@code depth} items of {@code items} with {@code reader} (called on the background
     * thread, one item at a time, in order). The iterator is advanced on the consumer's thread only (here and in
     * {@link #next}), never further than {@code depth} items ahead of what was taken.
     *
     * @param depth how many reads may be done or under way ahead of the consumer: 1 or 2
     */
    public Prefetcher(Iterator<I> items, Function<I, R> reader, int depth) {
        if (depth < 1 || depth > 2) throw new IllegalArgumentException("Prefetcher: depth " + depth + ", expected 1 or 2");
        this.items = items;
        this.reader = reader;
        this.depth = depth;
        this.thread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "wanlora-cache-reader");
            t.setDaemon(true);
            return t;
        });
        fill();
    }

    /** Whether an item is left to take. */
    public boolean hasNext() { return !pending.isEmpty(); }

    /**
     * The next item's result, waiting for its read; the next read starts before this returns.
     *
     * @throws RuntimeException the reader's exception for this item, unchanged (an Error likewise)
     * @throws IllegalStateException when this thread is interrupted while waiting (its interrupt flag stays set)
     */
    public R next() {
        if (!hasNext()) throw new NoSuchElementException("Prefetcher: all " + taken + " items were taken");
        Future<R> head = pending.poll();
        taken++;
        fill();
        try {
            return head.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            if (e.getCause() instanceof Error err) throw err;
            throw new IllegalStateException("Prefetcher: read failed", e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Prefetcher: interrupted while waiting for item " + (taken - 1), e);
        }
    }

    private void fill() {
        while (pending.size() < depth && items.hasNext()) {
            I item = items.next();
            pending.add(thread.submit(() -> reader.apply(item)));
        }
    }

    /** Cancels the reads not taken (interrupting one under way) and waits for the reading thread to end. */
    @Override
    public void close() {
        pending.forEach(f -> f.cancel(true));
        pending.clear();
        thread.shutdownNow();
        try {
            thread.awaitTermination(CLOSE_WAIT_SECONDS, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Whether the reading thread has ended (after {@link #close}). */
    boolean isClosed() { return thread.isTerminated(); }
}
