package dev.wanlora.models.musubi;

import java.util.List;
import java.util.TreeSet;

/**
 * musubi's aspect-ratio buckets for Wan (step 16), exactly as {@code dataset/bucket.py BucketSelector}.
 *
 * <p>With bucketing, A = W·H of the resolution, s = int(√A), and for w = floor16(s/2), floor16(s/2)+16, … while
 * w &lt; s+16 the buckets (w, floor16(A div w)) and their transposes are listed, deduplicated and sorted by (w, h). An
 * image goes to the first bucket whose w/h is closest to its own aspect ratio; with {@code bucket_no_upscale} an
 * image of area ≤ A keeps its own size rounded down to multiples of 16. Without bucketing there is one bucket, the
 * resolution itself. All arithmetic is the same int and double arithmetic as musubi's Python, so the choice is
 * identical, ties included.
 */
public final class BucketSelector {

    /** Resolution step of Wan buckets: VAE stride 8 times patch size 2. */
    public static final int RESOLUTION_STEP = 16;

    private final long bucketArea;
    private final boolean isNoUpscale;
    private final List<Resolution> buckets; // sorted by (w, h)
    private final double[] aspectRatios;    // w/h of each bucket, same order

    /**
     * @throws IllegalArgumentException when bucketing is on and the resolution is too small to list buckets
     *                                  (int(√(W·H)) below 32, where musubi would divide by zero)
     */
    public BucketSelector(Resolution resolution, boolean enableBucket, boolean bucketNoUpscale) {
        bucketArea = resolution.area();
        if (!enableBucket) {
            isNoUpscale = false;
            buckets = List.of(resolution);
        } else {
            isNoUpscale = bucketNoUpscale;
            int sqrtSize = (int) Math.sqrt(bucketArea);
            int minSize = floorToStep(sqrtSize / 2);
            if (minSize < RESOLUTION_STEP) {
                throw new IllegalArgumentException("BucketSelector: resolution " + resolution
                        + " is too small for bucketing; got int(sqrt(area)) = " + sqrtSize + ", expected at least 32");
            }
            TreeSet<Resolution> set = new TreeSet<>();
            for (int w = minSize; (long) w < (long) sqrtSize + RESOLUTION_STEP; w += RESOLUTION_STEP) {
                int h = floorToStep((int) (bucketArea / w));
                set.add(new Resolution(w, h));
                set.add(new Resolution(h, w));
            }
            buckets = List.copyOf(set);
        }
        aspectRatios = new double[buckets.size()];
        for (int i = 0; i < aspectRatios.length; i++) {
            aspectRatios[i] = (double) buckets.get(i).width() / buckets.get(i).height();
        }
    }

    /** Every bucket, sorted by (width, height). */
    public List<Resolution> buckets() { return buckets; }

    /**
     * The bucket of an image (or a video's first frame) of the given original pixel size.
     *
     * @throws IllegalArgumentException when bucket_no_upscale keeps a size below one 16-pixel step
     */
    public Resolution bucketFor(int width, int height) {
        if (isNoUpscale && (long) width * height <= bucketArea) {
            int w = floorToStep(width);
            int h = floorToStep(height);
            if (w == 0 || h == 0) {
                throw new IllegalArgumentException("BucketSelector: image " + width + "x" + height
                        + " is smaller than one 16-pixel step; got bucket " + w + "x" + h + ", expected both sizes >= 16");
            }
            return new Resolution(w, h);
        }
        double aspectRatio = (double) width / height;
        int best = 0;
        double bestError = Math.abs(aspectRatios[0] - aspectRatio);
        for (int i = 1; i < aspectRatios.length; i++) {
            double error = Math.abs(aspectRatios[i] - aspectRatio);
            if (error < bestError) { // strict: numpy argmin keeps the first minimum
                best = i;
                bestError = error;
            }
        }
        return buckets.get(best);
    }

    /** musubi's {@code divisible_by(n, 16)}: n rounded down to a multiple of the step (n ≥ 0). */
    static int floorToStep(int n) {
        return n - n % RESOLUTION_STEP;
    }
}
