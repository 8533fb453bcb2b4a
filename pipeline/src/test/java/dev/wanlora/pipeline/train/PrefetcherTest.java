package dev.wanlora.pipeline.train;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PrefetcherTest {

    /**
     * A slow reader (100 ms per item) and a slow consumer (100 ms per item, the GPU's step): one after the other, 8
     * items take 1.6 s; with the reads behind the steps, the first read plus 8 steps, ≈ 0.9 s. Both sides sleep (no
     * CPU), so a loaded machine does not stretch them much; the bound 1.3 s is the midpoint between the two figures
     * rounded up — anything above means the reads did not overlap the steps.
     */
    @Test
    void readsOverlapTheConsumer() {
        List<Integer> items = IntStream.range(0, 8).boxed().toList();
        long start = System.nanoTime();
        try (Prefetcher<Integer, Integer> p = new Prefetcher<>(items, i -> {
            sleep(100);
            return i;
        }, 2)) {
            while (p.hasNext()) {
                p.next();
                sleep(100);
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        assertTrue(seconds < 1.3, "8 reads and 8 steps of 0.1 s each took " + seconds + " s; overlapped ≈ 0.9, serial 1.6");
    }

    /** Results come back in the list's order, each what the reader made of its item, whatever the read times. */
    @Test
    void orderAndContentsAreTheReaders() {
        List<Integer> items = IntStream.range(0, 40).boxed().toList();
        for (int depth = 1; depth <= 2; depth++) {
            SplittableRandom delays = new SplittableRandom(depth);
            int[] sleeps = IntStream.range(0, items.size()).map(i -> delays.nextInt(4)).toArray();
            List<float[]> got = new ArrayList<>();
            try (Prefetcher<Integer, float[]> p = new Prefetcher<>(items, i -> {
                sleep(sleeps[i]);
                return contents(i);
            }, depth)) {
                while (p.hasNext()) got.add(p.next());
                assertThrows(NoSuchElementException.class, p::next);
            }
            assertEquals(items.size(), got.size());
            for (int i = 0; i < items.size(); i++) assertArrayEquals(contents(i), got.get(i), "item " + i + ", depth " + depth);
        }
    }

    /** A failed read is rethrown unchanged when its item is taken, not before; the items before it arrive intact. */
    @Test
    void aFailedReadSurfacesOnTheConsumersThreadWhenItsItemIsTaken() {
        IllegalArgumentException bad = new IllegalArgumentException("cache/x_0016x0016_wan.safetensors: truncated");
        try (Prefetcher<Integer, Integer> p = new Prefetcher<>(List.of(0, 1, 2, 3), i -> {
            if (i == 2) throw bad;
            return i * 10;
        }, 2)) {
            assertEquals(0, p.next());
            assertEquals(10, p.next());
            assertSame(bad, assertThrows(IllegalArgumentException.class, p::next));
        }
        // a failing item never taken is never reported
        try (Prefetcher<Integer, Integer> p = new Prefetcher<>(List.of(0, 1), i -> {
            if (i == 1) throw bad;
            return i;
        }, 2)) {
            assertEquals(0, p.next());
        }
    }

    /** Closing with a read under way interrupts it and ends the thread; reads not started never start. */
    @Test
    void closeCancelsPendingReadsAndEndsTheThread() throws InterruptedException {
        CountDownLatch reading = new CountDownLatch(1);
        AtomicInteger started = new AtomicInteger();
        AtomicInteger interrupted = new AtomicInteger();
        Prefetcher<Integer, Integer> p = new Prefetcher<>(List.of(0, 1, 2, 3), i -> {
            started.incrementAndGet();
            reading.countDown();
            try {
                Thread.sleep(60_000);
            } catch (InterruptedException e) {
                interrupted.incrementAndGet();
            }
            return i;
        }, 2);
        assertTrue(reading.await(10, TimeUnit.SECONDS));
        p.close();
        assertTrue(p.isClosed());
        assertEquals(1, started.get());
        assertEquals(1, interrupted.get());
        assertFalse(Thread.currentThread().isInterrupted());
    }

    private static float[] contents(int i) {
        return new float[] {i, i * 0.5f, -i};
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
