package dev.wanlora.models.musubi;

import dev.wanlora.engine.tensor.Shape;

import java.util.List;

/**
 * One batch of an epoch: items of one bucket of one dataset.
 *
 * @param position     index of this batch in its epoch, 0-based (a resumed run skips to it)
 * @param datasetIndex the dataset's index in the config
 * @param bucket       the bucket the items share
 * @param items        1 to batch_size items; the last batch of a bucket may be short, and an item may appear twice
 *                     when num_repeats > 1
 */
public record Batch(int position, int datasetIndex, Bucket bucket, List<CacheItem> items) {

    public Batch {
        items = List.copyOf(items);
    }

    /**
     * The stacked latent shape [B, 16, F, H, W]. Discovery guarantees the items of a batch of more than one share
     * their latent shape.
     */
    public Shape latentShape() {
        long[] d = items.get(0).latentShape().dims();
        return Shape.of(items.size(), d[0], d[1], d[2], d[3]);
    }
}
