package dev.wanlora.models.sampling;

import dev.wanlora.engine.tensor.Tensor;

/**
 * What the sampler needs from a text encoder (Wan: umT5-XXL, spec §10.2–10.3): a prompt's context embedding. musubi
 * encodes every distinct prompt and negative prompt once, alone, before the DiT loads, and frees the encoder.
 */
public interface TextEncoder extends AutoCloseable {

    /**
     * The embedding of {@code text}: (L, Ct) F32 or BF16 on the encoder's backend, L = the real token count (no
     * padding rows; the DiT pads to 512 itself), Ct = {@link #dim()}. The caller owns (closes) the tensor.
     */
    Tensor encode(String text);

    /** Ct, the context width (4096 for umT5-XXL, which the DiT's text embedding expects). */
    int dim();

    /** What it is, for the log ("umT5-XXL from …", or a stand-in's honest name). */
    String describe();

    @Override
    void close();
}
