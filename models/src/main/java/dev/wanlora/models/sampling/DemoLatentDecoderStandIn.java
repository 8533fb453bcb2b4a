package dev.wanlora.models.sampling;

import dev.wanlora.engine.random.CounterRng;

/**
 * <b>Not a VAE</b>: the demo's stand-in for Wan's VAE decoder, so that {@code wanlora demo} and the CI tests write real,
 * playable files without the VAE checkpoint. Each pixel is tanh of a fixed random linear map of its latent pixel's 16
 * channels to RGB, upsampled nearest by Wan's geometry: 8× in space; in time latent frame 0 gives frame 0 and latent
 * frame j ≥ 1 frames 4j − 3 … 4j. The picture shows the latent's structure, not what a VAE would draw. The real VAE
 * decoder replaces it.
 */
public final class DemoLatentDecoderStandIn implements LatentDecoder {

    private static final long SEED = 0x7374_616E_6469_6E32L; // "standin2"
    private static final int CHANNELS = 16;

    /** (3, 16): N(0, 1/16) so that a unit-variance latent maps to unit-variance RGB before tanh. */
    private final float[] weight = new float[3 * CHANNELS];

    public DemoLatentDecoderStandIn() {
        for (int i = 0; i < weight.length; i++) weight[i] = (float) (CounterRng.normal(SEED, i) / 4);
    }

    @Override
    public Video decode(float[] latent, int latentFrames, int latentHeight, int latentWidth) {
        long plane = (long) latentHeight * latentWidth;
        if (latent.length != CHANNELS * latentFrames * plane) {
            throw new IllegalArgumentException("DemoLatentDecoderStandIn: expected (16, " + latentFrames + ", "
                    + latentHeight + ", " + latentWidth + "); got " + latent.length + " values");
        }
        int frames = 4 * (latentFrames - 1) + 1, height = 8 * latentHeight, width = 8 * latentWidth;
        float[] pixels = new float[3 * frames * height * width];
        for (int f = 0; f < frames; f++) {
            int lf = (f + 3) / 4;
            for (int y = 0; y < height; y++) {
                for (int x = 0; x < width; x++) {
                    long at = lf * plane + (long) (y / 8) * latentWidth + x / 8;
                    for (int c = 0; c < 3; c++) {
                        double sum = 0;
                        for (int k = 0; k < CHANNELS; k++) sum += weight[c * CHANNELS + k] * latent[(int) (k * latentFrames * plane + at)];
                        pixels[((c * frames + f) * height + y) * width + x] = (float) Math.tanh(sum);
                    }
                }
            }
        }
        return new Video(frames, height, width, pixels);
    }

    @Override public String describe() { return "the demo's stand-in decoder (random linear 16 → RGB, nearest upsampling; not the VAE)"; }

    @Override public void close() { }
}
