package dev.wanlora.models.sampling;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.random.CounterRng;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.nio.charset.StandardCharsets;

/**
 * <b>Not a text encoder</b>: the demo's stand-in for umT5, so that {@code wanlora demo} and the CI tests run the whole
 * sampling path without a 10 GB checkpoint. Its "tokens" are the prompt's UTF-8 bytes plus an end token (id 256),
 * at most 512; each token's embedding is a fixed random row: N(0, 0.1²) values from a counter-based generator keyed by
 * the token id (a random projection of one-hot token ids). Different prompts give different contexts, nothing more:
 * it knows no language. The real umT5 replaces it.
 */
public final class DemoTextEncoderStandIn implements TextEncoder {

    private static final long SEED = 0x7374_616E_6469_6E31L; // "standin1"
    private static final int END_TOKEN = 256;
    private static final int MAX_TOKENS = 512;

    private final Backend backend;
    private final int dim;

    public DemoTextEncoderStandIn(Backend backend, int dim) {
        this.backend = backend;
        this.dim = dim;
    }

    @Override
    public Tensor encode(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int tokens = Math.min(MAX_TOKENS, bytes.length + 1);
        float[] rows = new float[tokens * dim];
        for (int i = 0; i < tokens; i++) {
            int id = i == tokens - 1 ? END_TOKEN : bytes[i] & 0xff;
            for (int c = 0; c < dim; c++) rows[i * dim + c] = (float) (0.1 * CounterRng.normal(SEED, (long) id * dim + c));
        }
        return backend.fromFloats(DType.F32, Shape.of(tokens, dim), rows);
    }

    @Override public int dim() { return dim; }

    @Override public String describe() { return "the demo's stand-in text encoder (random rows per UTF-8 byte, not umT5)"; }

    @Override public void close() { }
}
