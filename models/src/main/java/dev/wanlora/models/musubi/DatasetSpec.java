package dev.wanlora.models.musubi;

import java.nio.file.Path;

/**
 * One {@code [[datasets]]} entry after musubi's lookup (dataset table, then {@code [general]}, then the dataclass
 * default). Paths are as written in the file, relative ones resolved against the working directory, as musubi does.
 *
 * @param index            position in the file's {@code datasets} array, 0-based (error messages say "datasets[index]")
 * @param sourceKey        the key naming the media: image_directory, image_jsonl_file, video_directory or video_jsonl_file
 * @param source           that key's path
 * @param cacheDirectory   where the caches are: {@code cache_directory}, else the image or video directory
 * @param resolution       bucket resolution (W, H), default 960x544
 * @param captionExtension used only when caching; null when unset
 * @param batchSize        items per batch, at least 1
 * @param numRepeats       how many times each cached item enters an epoch, at least 0
 * @param enableBucket     aspect-ratio bucketing on
 * @param bucketNoUpscale  images no larger than the bucket area keep their own (multiple-of-16) size; always false
 *                         when enableBucket is false, as musubi forces it
 * @param frames           the frame settings of a video dataset; null for an image dataset
 */
public record DatasetSpec(int index, String sourceKey, Path source, Path cacheDirectory, Resolution resolution,
                          String captionExtension, int batchSize, int numRepeats, boolean enableBucket,
                          boolean bucketNoUpscale, FrameSpec frames) {

    public boolean isVideo() { return frames != null; }

    /** The bucket selector musubi's trainer builds for this dataset ({@code prepare_for_training}). */
    public BucketSelector bucketSelector() {
        return new BucketSelector(resolution, enableBucket, bucketNoUpscale);
    }
}
