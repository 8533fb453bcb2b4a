package dev.wanlora.models.umt5;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.PthFile;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.TensorSource;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.nio.file.Path;

/**
 * Prompt → umT5 embedding as musubi makes sample contexts (spec §10.1): each prompt cleaned, tokenized to 512,
 * encoded alone (batch 1), and trimmed to its real tokens: (seqLen, 4096) in the compute dtype. Opens the checkpoint
 * (.pth through the safe reader, else safetensors), loads the weights, finds the tokenizer
 * ({@link UmT5Tokenizer#locate}).
 */
public final class UmT5TextEncoder implements AutoCloseable {

    private final Backend backend;
    private final UmT5Weights weights;
    private final UmT5Encoder encoder;
    private final UmT5Tokenizer tokenizer;

    private UmT5TextEncoder(Backend backend, UmT5Weights weights, UmT5Tokenizer tokenizer) {
        this.backend = backend;
        this.weights = weights;
        this.encoder = new UmT5Encoder(backend, weights);
        this.tokenizer = tokenizer;
    }

    /**
     * @param checkpoint --t5 (.pth, .pt or .safetensors)
     * @param tokenizer  --t5_tokenizer FILE|DIR, or null to search ({@link UmT5Tokenizer#locate})
     * @param dtype      F32 (CPU reference) or BF16 (musubi's path)
     * @param fp8        --fp8_t5
     */
    public static UmT5TextEncoder open(Backend backend, Path checkpoint, Path tokenizer, DType dtype, boolean fp8) {
        return open(backend, checkpoint, tokenizer, dtype, fp8, UmT5Weights.Streaming.NONE);
    }

    /** {@link #open(Backend, Path, Path, DType, boolean)} with the last layers streamed ({@link UmT5Weights.Streaming}). */
    public static UmT5TextEncoder open(Backend backend, Path checkpoint, Path tokenizer, DType dtype, boolean fp8,
                                       UmT5Weights.Streaming streaming) {
        UmT5Tokenizer tok = UmT5Tokenizer.open(UmT5Tokenizer.locate(tokenizer, checkpoint));
        try (TensorSource src = PthFile.isPthName(checkpoint) ? PthFile.open(checkpoint) : SafeTensors.open(checkpoint)) {
            return new UmT5TextEncoder(backend, UmT5Weights.load(backend, src, dtype, fp8, streaming), tok);
        } catch (RuntimeException e) {
            tok.close();
            throw e;
        }
    }

    public UmT5Config config() { return weights.config(); }

    /** The weights' layer streaming (NONE when every layer is resident). */
    public UmT5Weights.Streaming streaming() { return weights.streaming(); }

    /** The prompt's embedding (seqLen, C), a new tensor the caller closes. */
    public Tensor encode(String prompt) {
        UmT5Tokenizer.Tokens t = tokenizer.encode(prompt, UmT5Tokenizer.TEXT_LENGTH);
        float[] ids = new float[t.ids().length], mask = new float[ids.length];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = t.ids()[i];
            mask[i] = t.mask()[i];
        }
        try (Tensor full = encoder.encode(ids, mask, 1, ids.length, null)) {
            Tensor out = backend.allocate(weights.dtype(), Shape.of(t.seqLen(), config().dim()));
            backend.copy(out, UmT5Encoder.trimmed(full, 0, t.seqLen()));
            return out;
        }
    }

    @Override
    public void close() {
        weights.close();
        tokenizer.close();
    }
}
