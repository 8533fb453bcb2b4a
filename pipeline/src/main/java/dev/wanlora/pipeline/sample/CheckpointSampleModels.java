package dev.wanlora.pipeline.sample;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.PthException;
import dev.wanlora.engine.io.PthFile;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.io.TensorSource;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.sampling.LatentDecoder;
import dev.wanlora.models.sampling.SamplingMemoryPlan;
import dev.wanlora.models.sampling.TextEncoder;
import dev.wanlora.models.umt5.UmT5Config;
import dev.wanlora.models.umt5.UmT5TextEncoder;
import dev.wanlora.models.umt5.UmT5Tokenizer;
import dev.wanlora.models.umt5.UmT5Weights;
import dev.wanlora.models.wan.vae.WanVae;
import dev.wanlora.models.wan.vae.WanVaeConfig;
import dev.wanlora.models.wan.vae.WanVaeWeights;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The user's checkpoints behind the sampler's interfaces: {@code --t5} (umT5-XXL, {@link UmT5TextEncoder}, tokenizer
 * from {@code --t5_tokenizer} or found beside the checkpoint / in the Hugging Face cache, {@code --fp8_t5}) and
 * {@code --vae} (the Wan 2.1 VAE decoder, {@link WanVae}). Both read {@code .pth} through the safe reader and
 * {@code .safetensors}. Compute dtype as the rest of the run: F32 on the CPU backend, BF16 on the GPU (musubi runs T5
 * and the VAE in bf16). The encoder lives only while the prompts are encoded; the decoder only for a sampling phase.
 */
final class CheckpointSampleModels implements SampleModels {

    private final Path t5;
    private final Path tokenizer;
    private final boolean fp8T5;
    private final Path vae;
    /** Read by {@link #check}: the VAE's config and its decoder's parameter count (decoder.* and conv2.*). */
    private WanVaeConfig vaeConfig;
    private long decoderParameters;
    /** Read by {@link #check}: the encoder's sizes from --t5's shapes. */
    private UmT5Config t5Config;
    /** The encoder's layer streaming, the memory plan's choice ({@link #streamTextEncoder}). */
    private UmT5Weights.Streaming t5Streaming = UmT5Weights.Streaming.NONE;

    CheckpointSampleModels(Path t5, Path tokenizer, boolean fp8T5, Path vae) {
        this.t5 = t5;
        this.tokenizer = tokenizer;
        this.fp8T5 = fp8T5;
        this.vae = vae;
    }

    private static DType dtype(Backend backend) { return backend.device().storesFp32() ? DType.F32 : DType.BF16; }

    /** Files and the tokenizer, before any work (the models themselves load when sampling needs them). */
    @Override
    public void check() {
        if (t5 == null || vae == null) {
            throw new UserError("samples need the VAE and the text encoder; add --vae FILE and --t5 FILE"
                    + " (Wan2.1_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth)");
        }
        if (!Files.isRegularFile(t5)) throw new UserError("--t5 " + t5 + ": no such file");
        if (!Files.isRegularFile(vae)) throw new UserError("--vae " + vae + ": no such file");
        try {
            UmT5Tokenizer.locate(tokenizer, t5);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        try (TensorSource src = open("--vae", vae)) {
            vaeConfig = config(src);
            decoderParameters = src.keys().stream().filter(k -> k.startsWith("decoder.") || k.startsWith("conv2."))
                    .mapToLong(k -> src.shape(k).numElements()).sum();
        }
        try (TensorSource src = open("--t5", t5)) {
            t5Config = UmT5Weights.configOf(src);
        } catch (IllegalArgumentException e) {
            throw new UserError("--t5 " + t5 + ": " + stripPath(e.getMessage(), t5), e);
        }
    }

    @Override
    public long decoderWeightBytes(DType dtype) {
        return vaeConfig == null ? 0 : decoderParameters * dtype.sizeBytes();
    }

    @Override
    public long decoderWorkBytes(int latentHeight, int latentWidth, DType dtype) {
        return vaeConfig == null ? 0 : WanVae.decodeWorkingBytes(vaeConfig, latentHeight, latentWidth, dtype);
    }

    @Override
    public SamplingMemoryPlan.TextEncoder textEncoderPlan(DType dtype, int slots) {
        return t5Config == null ? null : new SamplingMemoryPlan.TextEncoder(t5Config, dtype, fp8T5, slots);
    }

    @Override
    public void streamTextEncoder(UmT5Weights.Streaming streaming) { t5Streaming = streaming; }

    @Override
    public TextEncoder openTextEncoder(Backend backend, int dim) {
        if (t5 == null) throw new UserError("samples need the text encoder; add --t5 FILE (umT5-XXL, e.g. models_t5_umt5-xxl-enc-bf16.pth)");
        UmT5TextEncoder encoder;
        try {
            encoder = UmT5TextEncoder.open(backend, t5, tokenizer, dtype(backend), fp8T5, t5Streaming);
        } catch (PthException | SafeTensorsException e) {
            throw new UserError("--t5 " + t5 + ": " + stripPath(e.getMessage(), t5), e);
        } catch (IllegalArgumentException e) {
            String m = String.valueOf(e.getMessage());
            boolean isTokenizer = m.startsWith("--t5_tokenizer") || m.startsWith("no umT5 tokenizer");
            throw new UserError(isTokenizer ? m : "--t5 " + t5 + ": " + stripPath(m, t5), e);
        }
        if (encoder.config().dim() != dim) {
            int got = encoder.config().dim();
            encoder.close();
            throw new UserError("--t5 " + t5 + ": the text encoder's width is " + got + " but the DiT expects " + dim
                    + "-wide text (umT5-XXL: 4096); use the umT5-XXL encoder that goes with this DiT");
        }
        return new TextEncoder() {
            @Override public Tensor encode(String text) { return encoder.encode(text); }

            @Override public int dim() { return encoder.config().dim(); }

            @Override public String describe() {
                int streamed = encoder.streaming().layers();
                return "umT5 (" + encoder.config().numLayers() + " layers" + (fp8T5 ? ", fp8" : "")
                        + (streamed == 0 ? "" : ", " + streamed + " streamed") + ") from " + t5.getFileName();
            }

            @Override public void close() { encoder.close(); }
        };
    }

    @Override
    public LatentDecoder openDecoder(Backend backend) {
        if (vae == null) throw new UserError("samples need the VAE; add --vae FILE (Wan2.1_VAE.pth)");
        WanVaeWeights weights;
        WanVaeConfig config;
        try (TensorSource src = open("--vae", vae)) {
            config = config(src);
            weights = WanVaeWeights.load(backend, src, config, dtype(backend), WanVaeWeights.Part.DECODER);
        } catch (IllegalArgumentException | PthException | SafeTensorsException e) {
            throw new UserError("--vae " + vae + ": " + stripPath(e.getMessage(), vae), e);
        }
        return new LatentDecoder() {
            /** A decoder per decode: its frame caches and buffer pool are freed when it is done (the plan's decode phase). */
            @Override
            public Video decode(float[] latent, int latentFrames, int latentHeight, int latentWidth) {
                try (WanVae model = new WanVae(backend, weights)) {
                    float[] pixels = model.decode(latent, latentFrames, latentHeight, latentWidth);
                    return new Video(WanVaeConfig.pixelFrames(latentFrames), 8 * latentHeight, 8 * latentWidth, pixels);
                }
            }

            @Override public String describe() {
                return String.format(Locale.ROOT, "Wan 2.1 VAE (dim %d) from %s", config.dim(), vae.getFileName());
            }

            @Override public void close() { weights.close(); }
        };
    }

    private static TensorSource open(String flag, Path file) {
        try {
            return PthFile.isPthName(file) ? PthFile.open(file) : SafeTensors.open(file);
        } catch (PthException | SafeTensorsException e) {
            throw new UserError(flag + " " + file + ": " + stripPath(e.getMessage(), file), e);
        }
    }

    /** The VAE's config, requiring the 16 latent channels the Wan 2.1 DiT makes. */
    private WanVaeConfig config(TensorSource src) {
        WanVaeConfig config;
        try {
            config = WanVaeConfig.fromCheckpoint(src);
        } catch (IllegalArgumentException e) {
            throw new UserError("--vae " + vae + ": " + stripPath(e.getMessage(), src.path())
                    + "; is this the DiT or another model?", e);
        }
        if (config.zDim() != 16) {
            throw new UserError("--vae " + vae + ": a VAE with " + config.zDim() + " latent channels; the Wan 2.1 DiT"
                    + " makes 16 (use Wan2.1_VAE.pth, not the Wan 2.2 VAE)");
        }
        return config;
    }

    /** The readers' messages start with the file; the flag already names it. */
    private static String stripPath(String message, Path file) {
        String m = String.valueOf(message);
        for (String p : new String[] {file.toString() + ": ", file.toAbsolutePath() + ": "}) {
            if (m.startsWith(p)) return m.substring(p.length());
        }
        return m;
    }
}
