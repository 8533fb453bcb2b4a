package dev.wanlora.models.sampling;

/**
 * What the sampler needs from a latent decoder (Wan: the VAE 2.1 decoder, spec §12): pixels from a denoised latent.
 * Geometry as Wan's VAE: F_lat latent frames become 4·(F_lat − 1) + 1 frames, each latent pixel 8 × 8 pixels.
 */
public interface LatentDecoder extends AutoCloseable {

    /** A decoded video: {@code pixels} (3, frames, height, width) flat, in [−1, 1]. */
    record Video(int frames, int height, int width, float[] pixels) {
        public Video {
            if (pixels.length != 3L * frames * height * width) {
                throw new IllegalArgumentException("LatentDecoder.Video: expected 3·" + frames + "·" + height + "·" + width
                        + " values; got " + pixels.length);
            }
        }
    }

    /** Decodes {@code latent} (16, F_lat, H_lat, W_lat) flat, float32. */
    Video decode(float[] latent, int latentFrames, int latentHeight, int latentWidth);

    /** What it is, for the log. */
    String describe();

    @Override
    void close();
}
