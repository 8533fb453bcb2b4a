package dev.wanlora.pipeline.sample;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.sampling.DemoLatentDecoderStandIn;
import dev.wanlora.models.sampling.DemoTextEncoderStandIn;
import dev.wanlora.models.sampling.LatentDecoder;
import dev.wanlora.models.sampling.TextEncoder;

import java.nio.file.Path;

/** Where the sampler's text encoder and latent decoder come from: the user's checkpoints, or the demo's stand-ins. */
public interface SampleModels {

    /** The text encoder, for {@code dim}-wide contexts (the DiT's text dim). Closed by the caller after encoding. */
    TextEncoder openTextEncoder(Backend backend, int dim);

    /** The latent decoder. Closed by the caller after the sampling phase. */
    LatentDecoder openDecoder(Backend backend);

    /** Stops with one line, before any work, when these models cannot be opened. */
    default void check() { }

    /**
     * Device bytes the decoder holds while it decodes a latent of {@code latentHeight} × {@code latentWidth} in
     * {@code dtype}: its weights and its working memory; 0 when unknown or negligible (the stand-ins). Valid after
     * {@link #check}.
     */
    default long decoderBytes(int latentHeight, int latentWidth, DType dtype) { return 0; }

    /**
     * {@code --t5 FILE} (umT5-XXL; the tokenizer from {@code tokenizer}, i.e. {@code --t5_tokenizer}, else beside the
     * checkpoint or in the Hugging Face cache), {@code --fp8_t5}, and {@code --vae FILE} (Wan 2.1 VAE): .pth or
     * .safetensors. See {@link CheckpointSampleModels}.
     */
    static SampleModels files(Path t5, Path tokenizer, boolean fp8T5, Path vae) {
        return new CheckpointSampleModels(t5, tokenizer, fp8T5, vae);
    }

    /**
     * The demo's stand-ins ({@link DemoTextEncoderStandIn}, {@link DemoLatentDecoderStandIn}): random, tiny, honest
     * about not being umT5 or the VAE. For {@code wanlora demo} and tests of the sampling path.
     */
    static SampleModels demoStandIns() {
        return new SampleModels() {
            @Override
            public TextEncoder openTextEncoder(Backend backend, int dim) { return new DemoTextEncoderStandIn(backend, dim); }

            @Override
            public LatentDecoder openDecoder(Backend backend) { return new DemoLatentDecoderStandIn(); }
        };
    }
}
