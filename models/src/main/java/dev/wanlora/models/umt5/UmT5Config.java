package dev.wanlora.models.umt5;

/**
 * The umT5 encoder's sizes (spec §10.3; musubi {@code wan/modules/t5.py} {@code umt5_xxl(encoder_only=True)}, at the
 * snapshot the spec was read from). Head size is {@code dimAttn / numHeads}. umT5 has no shared position bias: every
 * layer has its own (numBuckets, numHeads) table. Relative positions are bucketed bidirectionally with
 * {@link #maxDistance} 128.
 *
 * @param vocab       V, token embedding rows (256384)
 * @param dim         C, model width (4096)
 * @param dimAttn     width of q, k, v (4096)
 * @param dimFfn      gated-GELU hidden width (10240)
 * @param numHeads    N (64)
 * @param numLayers   blocks (24)
 * @param numBuckets  relative-position buckets (32)
 * @param maxDistance T5's max_dist (128)
 */
public record UmT5Config(int vocab, int dim, int dimAttn, int dimFfn, int numHeads, int numLayers, int numBuckets,
                         int maxDistance) {

    /** T5LayerNorm's eps. */
    public static final float NORM_EPS = 1e-6f;

    /** umT5-XXL, the encoder Wan 2.1 uses. */
    public static UmT5Config xxl() {
        return new UmT5Config(256384, 4096, 4096, 10240, 64, 24, 32, 128);
    }

    public int headDim() { return dimAttn / numHeads; }

    /** Parameters: embedding, per layer 4 attention + 3 FFN matrices, 2 norms and the bias table, final norm. */
    public long parameterCount() {
        long layer = 4L * dim * dimAttn + 3L * dim * dimFfn + 2L * dim + (long) numBuckets * numHeads;
        return (long) vocab * dim + numLayers * layer + dim;
    }

    /**
     * The bucket of relative position {@code rel} = key − query, T5's bidirectional rule as musubi computes it
     * ({@code T5RelativeEmbedding._relative_position_bucket}): half the buckets for rel &gt; 0; within a half, exact
     * buckets below {@code half/2}, then logarithmic up to {@link #maxDistance}. The logarithm runs in float32 as in
     * torch (float32 tensor ops with a Python-double divisor rounded to float32), then truncates.
     */
    public int bucket(int rel) {
        int half = numBuckets / 2;
        int base = rel > 0 ? half : 0;
        int a = Math.abs(rel);
        int maxExact = half / 2;
        if (a < maxExact) return base + a;
        float logRatio = (float) Math.log((float) a / maxExact);
        float scaled = logRatio / (float) Math.log((double) maxDistance / maxExact) * (half - maxExact);
        return base + Math.min(maxExact + (int) scaled, half - 1);
    }

    /** Buckets of rel = −(queries − 1) … keys − 1, as Backend#relativePositionBias takes them (F32 ids). */
    public float[] bucketTable(int queries, int keys) {
        float[] out = new float[queries + keys - 1];
        for (int r = 0; r < out.length; r++) out[r] = bucket(r - (queries - 1));
        return out;
    }

    @Override
    public String toString() {
        return "umT5 vocab " + vocab + ", dim " + dim + ", " + numHeads + " heads × " + headDim() + ", ffn " + dimFfn
                + ", " + numLayers + " layers, " + numBuckets + " buckets";
    }
}
