package dev.wanlora.cli.train;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.musubi.Batch;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.CacheItem;
import dev.wanlora.models.musubi.LoadedTensor;

import java.util.ArrayList;
import java.util.List;

/**
 * One batch on the backend, with the flow-matching tensors of a step (spec §4, §5.3): the cached latents x0 stacked
 * to (B, 16, F, H, W), each item's text context (L_i, 4096) (the DiT pads it to 512 rows), and buffers for the noise,
 * the noisy input x_t and the target.
 *
 * <p>Noise is drawn in BF16 as musubi's {@code randn_like} on bf16 latents does, from the counter-based generator at
 * (seed, offset): the caller derives the offset from the batch's index in the whole run, so a resumed run draws the
 * same noise for the same batch.
 */
final class BatchTensors implements AutoCloseable {
    /** Offsets of consecutive batches are this far apart: more elements than any batch holds (2⁴⁰ ≈ 1.1e12). */
    static final int NOISE_OFFSET_SHIFT = 40;

    final Tensor x0;                // (B, 16, F, H, W) F32, bf16 values from the cache
    final List<Tensor> contexts;    // B × (L_i, 4096) BF16
    final Tensor noise;             // (B, 16, F, H, W) BF16
    final Tensor xt;                // (B, 16, F, H, W) F32
    final Tensor target;            // (B, 16, F, H, W) F32, noise − x0

    private BatchTensors(Tensor x0, List<Tensor> contexts, Tensor noise, Tensor xt, Tensor target) {
        this.x0 = x0;
        this.contexts = contexts;
        this.noise = noise;
        this.xt = xt;
        this.target = target;
    }

    /** Reads the batch's caches and uploads them; allocates the step buffers. */
    static BatchTensors load(Backend backend, Batch batch) {
        Shape shape = batch.latentShape();
        long itemElements = shape.numElements() / shape.dim(0);
        float[] latents = new float[Math.toIntExact(shape.numElements())];
        List<Tensor> contexts = new ArrayList<>();
        for (int b = 0; b < batch.items().size(); b++) {
            CacheItem item = batch.items().get(b);
            LoadedTensor x0 = item.readLatents();
            System.arraycopy(x0.values(), 0, latents, Math.toIntExact(b * itemElements), x0.values().length);
            LoadedTensor text = item.readText();
            contexts.add(backend.fromFloats(DType.BF16, text.shape(), text.values()));
        }
        return new BatchTensors(backend.fromFloats(DType.F32, shape, latents), List.copyOf(contexts),
                backend.allocate(DType.BF16, shape), backend.allocate(DType.F32, shape), backend.allocate(DType.F32, shape));
    }

    /**
     * Bytes {@link #load} allocates for a batch of latent shape (B, 16, F, H, W), each context at its K = 512-row
     * maximum (for the memory plan): x0, x_t, target F32 and noise BF16 per latent element, plus B × (K, 4096) BF16.
     */
    static long sizeBytes(Shape latentShape) {
        long n = latentShape.numElements();
        return n * (3L * DType.F32.sizeBytes() + DType.BF16.sizeBytes())
                + latentShape.dim(0) * CacheDataset.TEXT_LEN * CacheDataset.TEXT_DIM * DType.BF16.sizeBytes();
    }

    int batchSize() {
        return contexts.size();
    }

    /** noise ~ N(0,1) at (seed, batchIndex·2⁴⁰); then x_t = (1 − t)·x0 + t·noise and target = noise − x0. {@code t} is (B) F32. */
    void prepare(Backend backend, long seed, long batchIndex, Tensor t) {
        backend.gaussianNoise(noise, seed, batchIndex << NOISE_OFFSET_SHIFT);
        backend.flowMatchingInput(xt, target, x0, noise, t);
    }

    @Override
    public void close() {
        x0.close();
        contexts.forEach(Tensor::close);
        noise.close();
        xt.close();
        target.close();
    }
}
