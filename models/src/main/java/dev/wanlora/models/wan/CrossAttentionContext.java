package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.List;

/**
 * The text contexts of a sampler's forwards, one per batch row ({@link WanDit#forwardOnly(Tensor, TimeEmbeddings, int,
 * CrossAttentionContext, BlockAdapters)}): one text for a batch-1 forward, or the prompt and the negative prompt for
 * CFG as one batch-2 forward. The text side of every block is constant over the denoising steps: the embedded
 * contexts, and from them each block's cross-attention keys k = norm_k(W_k·ctx (+LoRA)) and values v = W_v·ctx
 * (+LoRA) (spec §1.3). With {@link #caches()} the first forward computes them as usual and keeps every block's
 * (B, K, C) k and v here; later forwards skip the text embedding and the k/v projections and read them back. The kept
 * tensors are exactly what the recomputation would write (the same ops on the same inputs, copied out), so predictions
 * are identical, bit for bit. Without caching it only names the contexts (nothing is allocated).
 *
 * <p>Valid for one LoRA state: the adapters must not change while it is used (a sampling phase reads the LoRA, never
 * trains it; its cached k/v include cross_attn.k and .v's). Size: {@link #cacheBytes}.
 */
public final class CrossAttentionContext implements AutoCloseable {

    /** One (L_b, Ct) text embedding per batch row. */
    private final List<Tensor> contexts;
    private final BlockAdapters lora;
    /** (numLayers, B, K, C) act: block i's k after norm_k, and v; null without caching. */
    private final Tensor keys, values;
    private final int numLayers;
    private boolean filled;

    CrossAttentionContext(Backend backend, WanDitConfig config, ComputePrecision precision, List<Tensor> contexts,
                          BlockAdapters lora, boolean caches) {
        if (contexts.isEmpty()) throw new IllegalArgumentException("CrossAttentionContext: no context; expected one per batch row");
        this.contexts = List.copyOf(contexts);
        this.lora = lora;
        this.numLayers = config.numLayers();
        Shape shape = Shape.of(config.numLayers(), contexts.size(), config.textLen(), config.dim());
        if (caches) {
            keys = backend.allocate(precision.activationDType(), shape);
            try {
                values = backend.allocate(precision.activationDType(), shape);
            } catch (RuntimeException e) {
                keys.close();
                throw e;
            }
        } else {
            keys = null;
            values = null;
        }
    }

    /**
     * Device bytes of one cached text: 2 · numLayers · K · C in the activation dtype (14B bf16: 40 · 2 · 512 · 5120
     * · 2 B = 400 MiB; 1.3B: 90 MiB); a batch of B texts keeps B times that.
     */
    public static long cacheBytes(WanDitConfig config, ComputePrecision precision) {
        return 2L * config.numLayers() * config.textLen() * config.dim() * precision.activationDType().sizeBytes();
    }

    /** The (L_b, Ct) text embeddings it stands for, one per batch row. */
    public List<Tensor> contexts() { return contexts; }

    /** B, the batch rows (texts) it serves. */
    public int batch() { return contexts.size(); }

    /** The adapters it was made with (null: the base model). */
    BlockAdapters lora() { return lora; }

    /** Whether the blocks' k and v are kept. */
    public boolean caches() { return keys != null; }

    /** Whether a forward has filled the kept k and v (so the text side is skipped from now on). */
    boolean isFilled() { return filled; }

    void markFilled() {
        if (keys != null) filled = true;
    }

    /** (B, K, C) act: block {@code i}'s cross-attention keys after norm_k. */
    Tensor keys(int i) { return block(keys, i); }

    /** (B, K, C) act: block {@code i}'s cross-attention values. */
    Tensor values(int i) { return block(values, i); }

    private Tensor block(Tensor t, int i) {
        long[] d = t.shape().dims();
        long n = d[1] * d[2] * d[3];
        if (i < 0 || i >= numLayers) throw new IndexOutOfBoundsException("CrossAttentionContext: block " + i + " of " + numLayers);
        return t.view(i * n, Shape.of(d[1], d[2], d[3]));
    }

    @Override
    public void close() {
        if (keys != null) keys.close();
        if (values != null) values.close();
    }
}
