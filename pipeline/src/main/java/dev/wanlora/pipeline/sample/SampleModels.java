package dev.wanlora.pipeline.sample;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.sampling.DemoLatentDecoderStandIn;
import dev.wanlora.models.sampling.DemoTextEncoderStandIn;
import dev.wanlora.models.sampling.LatentDecoder;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.sampling.TextEncoder;
import dev.wanlora.models.umt5.UmT5Weights;

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
    default long decoderBytes(int latentHeight, int latentWidth, DType dtype) {
        return decoderWeightBytes(dtype) + decoderWorkBytes(latentHeight, latentWidth, dtype);
    }

    /** Device bytes of the decoder's weights in {@code dtype}; 0 when unknown or negligible. Valid after {@link #check}. */
    default long decoderWeightBytes(DType dtype) { return 0; }

    /**
     * Device bytes the decoder allocates while it decodes a latent of {@code latentHeight} × {@code latentWidth}
     * (freed after each decode); 0 when unknown or negligible. Valid after {@link #check}.
     */
    default long decoderWorkBytes(int latentHeight, int latentWidth, DType dtype) { return 0; }

    /**
     * The text encoder as the memory plan counts it, in {@code dtype} with {@code slots} streaming slots; null when it
     * is not planned (the stand-ins). Valid after {@link #check}.
     */
    default SamplingMemoryPlan.TextEncoder textEncoderPlan(DType dtype, int slots) { return null; }

    /**
     * How {@link #openTextEncoder} loads the encoder from now on: its last layers streamed (the memory plan's choice,
     * {@link SamplingMemoryPlan#smallestFittingT5Streaming}); {@link UmT5Weights.Streaming#NONE} by default.
     */
    default void streamTextEncoder(UmT5Weights.Streaming streaming) { }

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
