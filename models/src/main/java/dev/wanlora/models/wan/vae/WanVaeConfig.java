package dev.wanlora.models.wan.vae;

import dev.wanlora.engine.io.TensorSource;
import dev.wanlora.engine.tensor.Shape;

/**
 * The Wan 2.1 VAE's configuration (spec §12): base dim d, latent channels z. The rest of musubi's
 * {@code WanVAE_(dim=96, z_dim=16, dim_mult=[1,2,4,4], num_res_blocks=2, attn_scales=[],
 * temperal_downsample=[False,True,True])} is fixed and written into {@link WanVae}'s layer list. Source:
 * musubi-tuner {@code src/musubi_tuner/wan/modules/vae.py} at commit 30c658c, {@code _video_vae}.
 *
 * @param dim  base channel count d (96 in the release; the encoder runs at d, d, 2d, 4d, the decoder at 4d, 2d, d)
 * @param zDim latent channels (16)
 */
public record WanVaeConfig(int dim, int zDim) {

    /** Musubi's per-channel latent mean (spec §12; {@code WanVAE.mean}). */
    static final float[] LATENT_MEAN = {-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f,
            0.4134f, -0.0715f, 0.5517f, -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};
    /** Musubi's per-channel latent std (spec §12; {@code WanVAE.std}). */
    static final float[] LATENT_STD = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
            3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

    public WanVaeConfig {
        if (dim < 1 || zDim != LATENT_MEAN.length) {
            throw new IllegalArgumentException("WanVaeConfig: got dim=" + dim + ", zDim=" + zDim
                    + ", expected dim >= 1 and zDim = " + LATENT_MEAN.length + " (the Wan 2.1 latent)");
        }
    }

    /** The released Wan 2.1 VAE ({@code Wan2.1_VAE.pth}, ComfyUI's {@code wan_2.1_vae.safetensors}). */
    public static WanVaeConfig wan21() { return new WanVaeConfig(96, 16); }

    /**
     * Reads d and z from a checkpoint's shapes ({@code encoder.conv1.weight} [d,3,3,3,3], {@code conv2.weight}
     * [z,z,1,1,1]).
     *
     * @throws IllegalArgumentException when the file is not a Wan 2.1 VAE, naming the file and the key
     */
    public static WanVaeConfig fromCheckpoint(TensorSource source) {
        for (String key : new String[] {"encoder.conv1.weight", "conv2.weight", DECODER_MARKER}) {
            if (!source.contains(key)) {
                throw new IllegalArgumentException(source.path() + ": no tensor " + key + "; expected a Wan 2.1 VAE"
                        + " (Wan2.1_VAE.pth or wan_2.1_vae.safetensors)");
            }
        }
        Shape conv1 = source.shape("encoder.conv1.weight"), conv2 = source.shape("conv2.weight");
        if (conv1.rank() != 5 || conv1.dim(1) != 3 || conv2.rank() != 5) {
            throw new IllegalArgumentException(source.path() + ": encoder.conv1.weight " + conv1 + " and conv2.weight "
                    + conv2 + " are not a Wan 2.1 VAE's; expected [d,3,3,3,3] and [16,16,1,1,1]");
        }
        return new WanVaeConfig(Math.toIntExact(conv1.dim(0)), Math.toIntExact(conv2.dim(0)));
    }

    /** The key ComfyUI recognises a Wan VAE by (README of testdata/golden/vae-tiny). */
    public static final String DECODER_MARKER = "decoder.middle.0.residual.0.gamma";

    /** Pixel frames decoded from {@code latentFrames}: 1 + 4(T − 1). */
    public static int pixelFrames(int latentFrames) { return 1 + 4 * (latentFrames - 1); }
}
