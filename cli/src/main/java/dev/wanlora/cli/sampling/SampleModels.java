package dev.wanlora.cli.sampling;

import dev.wanlora.cli.UserError;
import dev.wanlora.engine.backend.Backend;
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
     * {@code --t5 FILE} and {@code --vae FILE}. This build has neither model yet (they come with the umT5 and VAE
     * work), so opening one stops with one line instead of writing fake samples.
     */
    static SampleModels files(Path t5, Path vae) {
        return new SampleModels() {
            @Override
            public void check() {
                if (t5 == null || vae == null) {
                    throw new UserError("samples need the VAE and the text encoder; add --vae FILE and --t5 FILE");
                }
                openTextEncoder(null, 0);
            }

            @Override
            public TextEncoder openTextEncoder(Backend backend, int dim) {
                if (t5 == null) throw new UserError("samples need the text encoder; add --t5 FILE (umT5-XXL, e.g. models_t5_umt5-xxl-enc-bf16.pth)");
                throw new UserError("--t5 " + t5 + ": this build of wanlora has no umT5 text encoder yet, so it cannot"
                        + " make samples; run without --sample_prompts (train) or wait for the build with umT5 and the VAE");
            }

            @Override
            public LatentDecoder openDecoder(Backend backend) {
                if (vae == null) throw new UserError("samples need the VAE; add --vae FILE (Wan2.1_VAE.pth)");
                throw new UserError("--vae " + vae + ": this build of wanlora has no Wan VAE decoder yet, so it cannot"
                        + " make samples; run without --sample_prompts (train) or wait for the build with umT5 and the VAE");
            }
        };
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
