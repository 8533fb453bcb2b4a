package dev.wanlora.pipeline.train;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.musubi.Batch;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.LoadedTensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The device buffers of one batch shape with the flow-matching tensors of a step (spec §4, §5.3), allocated once and
 * reused by every batch of that shape ({@link TrainStep#buffers}): the cached latents x0 (B, 16, F, H, W), the items'
 * text contexts (item b's L_b rows at the start of slice b of a (B, K, 4096) buffer; the DiT pads them to K rows), the
 * noise, the noisy input x_t, the target and the timesteps. Uploads go through {@link Backend#write}: no allocation
 * and, on a GPU, no wait for the previous step.
 *
 * <p>Noise is drawn in BF16 as musubi's {@code randn_like} on bf16 latents does, from the counter-based generator at
 * (seed, offset): the caller derives the offset from the batch's index in the whole run, so a resumed run draws the
 * same noise for the same batch.
 */
public final class BatchTensors implements AutoCloseable {
    /** Offsets of consecutive batches are this far apart: more elements than any batch holds (2⁴⁰ ≈ 1.1e12). */
    public static final int NOISE_OFFSET_SHIFT = 40;

    private final Backend backend;
    public final Tensor x0;         // (B, 16, F, H, W) F32, bf16 values from the cache
    private final Tensor textRows;  // (B, K, Ct) BF16: item b's context in the first L_b rows of slice b
    private final List<Tensor> contexts; // B views (L_b, Ct) of textRows, set by the last upload of each item
    public final Tensor noise;      // (B, 16, F, H, W) BF16
    public final Tensor xt;         // (B, 16, F, H, W) F32
    public final Tensor target;     // (B, 16, F, H, W) F32, noise − x0
    public final Tensor t;          // (B) F32: flow-matching t
    public final Tensor timesteps;  // (B) F32: the model's timestep (1000·t + 1 in shift mode)

    /** Allocates the buffers for latents of {@code latentShape} and contexts of at most {@code textLen} rows of {@code textDim}. */
    public BatchTensors(Backend backend, Shape latentShape, int textLen, int textDim) {
        this.backend = backend;
        int batch = Math.toIntExact(latentShape.dim(0));
        List<Tensor> made = new ArrayList<>();
        try {
            x0 = add(made, backend.allocate(DType.F32, latentShape));
            textRows = add(made, backend.allocate(DType.BF16, Shape.of(batch, textLen, textDim)));
            noise = add(made, backend.allocate(DType.BF16, latentShape));
            xt = add(made, backend.allocate(DType.F32, latentShape));
            target = add(made, backend.allocate(DType.F32, latentShape));
            t = add(made, backend.allocate(DType.F32, Shape.of(batch)));
            timesteps = add(made, backend.allocate(DType.F32, Shape.of(batch)));
        } catch (RuntimeException e) {
            made.forEach(Tensor::close);
            throw e;
        }
        contexts = new ArrayList<>(Collections.nCopies(batch, null));
    }

    private static Tensor add(List<Tensor> made, Tensor t) {
        made.add(t);
        return t;
    }

    /**
     * Bytes the constructor allocates for latents (B, 16, F, H, W), each context at its K = 512-row maximum (for the
     * memory plan): x0, x_t, target F32 and noise BF16 per latent element, B × (K, 4096) BF16, and t, timesteps (B) F32.
     */
    public static long sizeBytes(Shape latentShape) {
        long n = latentShape.numElements(), batch = latentShape.dim(0);
        return n * (3L * DType.F32.sizeBytes() + DType.BF16.sizeBytes())
                + batch * CacheDataset.TEXT_LEN * CacheDataset.TEXT_DIM * DType.BF16.sizeBytes()
                + 2 * batch * DType.F32.sizeBytes();
    }

    public int batchSize() { return contexts.size(); }

    /** The items' contexts (L_b, Ct) BF16, views valid until the next upload. */
    public List<Tensor> contexts() { return contexts; }

    /** A batch's caches read into host memory (on any thread: {@link Prefetcher}), for {@link #upload(HostBatch)}. */
    public record HostBatch(Shape latentShape, List<float[]> latents, List<LoadedTensor> texts) {}

    /** Reads the batch's caches: each item's latents (16, F, H, W) and text context (a DatasetException names a bad file). */
    public static HostBatch read(Batch batch) {
        List<float[]> latents = new ArrayList<>();
        List<LoadedTensor> texts = new ArrayList<>();
        for (var item : batch.items()) {
            latents.add(item.readLatents().values());
            texts.add(item.readText());
        }
        return new HostBatch(batch.latentShape(), latents, texts);
    }

    /** Reads the batch's caches (a DatasetException names a bad file) and uploads them. */
    public void load(Batch batch) {
        upload(read(batch));
    }

    /** Uploads a batch read by {@link #read}. */
    public void upload(HostBatch batch) {
        for (int b = 0; b < batch.latents().size(); b++) upload(b, batch.latents().get(b), batch.texts().get(b));
    }

    /** Uploads item {@code item}: its latents (16, F, H, W) row-major and its text context (L, Ct). */
    public void upload(int item, float[] latents, LoadedTensor text) {
        Tensor rows = textRows.slice(item);
        Shape shape = text.shape();
        if (shape.rank() != 2 || shape.dim(1) != rows.shape().dim(1) || shape.dim(0) > rows.shape().dim(0)) {
            throw new IllegalArgumentException("text context of batch item " + item + " has shape " + shape + "; expected (L, "
                    + rows.shape().dim(1) + ") with L ≤ " + rows.shape().dim(0));
        }
        backend.write(x0.slice(item), latents);
        Tensor context = rows.view(0, shape);
        backend.write(context, text.values());
        contexts.set(item, context);
    }

    /** Uploads {@code t} (B) and the model timesteps {@code modelTimesteps} (B). */
    public void timesteps(float[] t, float[] modelTimesteps) {
        backend.write(this.t, t);
        backend.write(timesteps, modelTimesteps);
    }

    /** noise ~ N(0,1) at (seed, batchIndex·2⁴⁰); then x_t = (1 − t)·x0 + t·noise and target = noise − x0. */
    public void prepare(long seed, long batchIndex) {
        backend.gaussianNoise(noise, seed, batchIndex << NOISE_OFFSET_SHIFT);
        backend.flowMatchingInput(xt, target, x0, noise, t);
    }

    @Override
    public void close() {
        for (Tensor tensor : new Tensor[] {x0, textRows, noise, xt, target, t, timesteps}) tensor.close();
    }
}
