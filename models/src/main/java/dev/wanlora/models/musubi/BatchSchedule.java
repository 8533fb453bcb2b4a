package dev.wanlora.models.musubi;

import dev.wanlora.models.musubi.CacheDataset.DatasetCache;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The batch order of each epoch, a pure function of (seed, epoch), so a resumed run needs only those two numbers and
 * its position in the epoch.
 *
 * <p>musubi builds an epoch in three shuffles: each dataset reseeds Python's {@code random} with
 * dataset_seed + epoch and shuffles the items inside every bucket (each item present num_repeats times) and then its
 * list of batches; torch's DataLoader then shuffles all batches of all datasets together. Python's Mersenne
 * Twister stream and torch's sampler cannot be reproduced bit for bit, so the order here is not musubi's order: what
 * is the same is the grouping (batches never mix datasets or buckets; each bucket's items, repeats included, are
 * cut into ceil(count·repeats / batch_size) batches with only the last one short), hence the multiset of batch sizes
 * and the batch count. Items are shuffled within buckets with a {@link SplittableRandom} seeded from (seed, epoch),
 * then the whole batch list is shuffled with the same generator; musubi's per-dataset batch-list shuffle is left out
 * because a uniform shuffle of the whole list follows it. Shuffles are explicit Fisher–Yates loops so the order does
 * not depend on the JDK's {@code Collections.shuffle}. Unlike musubi, which reshuffles the previous epoch's bucket
 * order, each epoch starts from the discovery order, so epoch e's order does not depend on epochs before it.
 */
public final class BatchSchedule {

    /** 2^64 / φ: spreads consecutive epochs' seeds over the generator's state space. */
    private static final long GOLDEN_GAMMA = 0x9e3779b97f4a7c15L;

    private final CacheDataset data;
    private final long seed;

    public BatchSchedule(CacheDataset data, long seed) {
        this.data = data;
        this.seed = seed;
    }

    /** Batches per epoch, the same for every epoch (musubi's {@code len(train_dataloader)}). */
    public long batchesPerEpoch() { return data.batchesPerEpoch(); }

    /** Every batch of {@code epoch} (any int; the trainer passes its 1-based epoch number), in order. */
    public List<Batch> epoch(int epoch) {
        SplittableRandom random = new SplittableRandom(new SplittableRandom(seed + epoch * GOLDEN_GAMMA).nextLong());
        List<Batch> batches = new ArrayList<>();
        for (DatasetCache dataset : data.datasets()) {
            int batchSize = dataset.spec().batchSize();
            for (Map.Entry<Bucket, List<CacheItem>> bucket : dataset.buckets().entrySet()) {
                List<CacheItem> items = new ArrayList<>();
                for (CacheItem item : bucket.getValue()) {
                    items.addAll(Collections.nCopies(dataset.spec().numRepeats(), item));
                }
                shuffle(items, random);
                for (int start = 0; start < items.size(); start += batchSize) {
                    List<CacheItem> chunk = items.subList(start, Math.min(start + batchSize, items.size()));
                    batches.add(new Batch(-1, dataset.spec().index(), bucket.getKey(), chunk));
                }
            }
        }
        shuffle(batches, random);
        List<Batch> ordered = new ArrayList<>(batches.size());
        for (int i = 0; i < batches.size(); i++) {
            Batch b = batches.get(i);
            ordered.add(new Batch(i, b.datasetIndex(), b.bucket(), b.items()));
        }
        return List.copyOf(ordered);
    }

    /**
     * The batches of {@code epoch} from {@code position} on: what a run resumed after {@code position} batches of this
     * epoch still has to train.
     */
    public List<Batch> epochFrom(int epoch, int position) {
        List<Batch> all = epoch(epoch);
        if (position < 0 || position > all.size()) {
            throw new IllegalArgumentException("BatchSchedule: position " + position + " is outside epoch " + epoch
                    + "; expected 0 to " + all.size());
        }
        return all.subList(position, all.size());
    }

    /** Fisher–Yates: for i from the end, swap element i with a uniform j in [0, i]. */
    private static <T> void shuffle(List<T> list, SplittableRandom random) {
        for (int i = list.size() - 1; i > 0; i--) {
            Collections.swap(list, i, random.nextInt(i + 1));
        }
    }
}
