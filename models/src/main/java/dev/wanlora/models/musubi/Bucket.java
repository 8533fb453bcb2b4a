package dev.wanlora.models.musubi;

/**
 * musubi's bucket key within one dataset: the pixel bucket (W, H) that the dataset's {@link BucketSelector} gives the
 * original media size, and for videos the clip length in frames (1 for images). Items of one bucket of one dataset
 * share a latent shape and may be stacked into one batch; batches never mix buckets or datasets. Ordered as musubi
 * sorts bucket keys: by width, height, frames.
 */
public record Bucket(int width, int height, int frames) implements Comparable<Bucket> {

    @Override
    public int compareTo(Bucket o) {
        int c = Integer.compare(width, o.width);
        if (c != 0) return c;
        c = Integer.compare(height, o.height);
        return c != 0 ? c : Integer.compare(frames, o.frames);
    }

    /** "768x416x21": width x height x frames. */
    @Override
    public String toString() { return width + "x" + height + "x" + frames; }
}
