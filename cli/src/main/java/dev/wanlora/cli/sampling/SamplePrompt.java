package dev.wanlora.cli.sampling;

import dev.wanlora.cli.UserError;

/**
 * One sample prompt with musubi's defaults applied and its sizes rounded as musubi rounds them (spec §10):
 * width and height down to multiples of 8, frames down to 4n+1, steps clamped to 1..1000.
 *
 * @param index             position in the file (musubi's {@code enum}, used in sample file names)
 * @param width             pixels, a multiple of 16 (default 256)
 * @param height            pixels, a multiple of 16 (default 256)
 * @param frameCount        4n+1 frames; 1 is a still image (default 1)
 * @param seed              noise seed, or null for a random one
 * @param sampleSteps       solver steps (default 20)
 * @param discreteFlowShift the solver's shift (default 14.5, musubi's NetworkTrainer default that Wan keeps)
 * @param cfgScale          classifier-free guidance scale (default 5.0, Wan's sample_guide_scale)
 * @param negativePrompt    the negative prompt, or null for Wan's default one
 */
public record SamplePrompt(int index, String prompt, int width, int height, int frameCount, Long seed, int sampleSteps,
                           double discreteFlowShift, double cfgScale, String negativePrompt) {

    static final class Builder {
        private final int index;
        private final String where;
        private String prompt = "";
        private long width = 256;
        private long height = 256;
        private long frameCount = 1;
        private Long seed;
        private long sampleSteps = 20;
        private double discreteFlowShift = 14.5;
        private double cfgScale = 5.0;
        private String negativePrompt;

        Builder(int index, String where) {
            this.index = index;
            this.where = where;
        }

        void prompt(String v) { prompt = v; }
        void width(long v) { width = v; }
        void height(long v) { height = v; }
        void frameCount(long v) { frameCount = v; }
        void seed(long v) { seed = v; }
        void sampleSteps(long v) { sampleSteps = v; }
        void discreteFlowShift(double v) { discreteFlowShift = v; }
        void cfgScale(double v) { cfgScale = v; }
        void negativePrompt(String v) { negativePrompt = v; }

        SamplePrompt build() {
            if (prompt.isBlank() || prompt.startsWith("--")) throw new UserError(where + ": the prompt text is empty; write the prompt before any --option");
            int w = pixels("width (--w)", width);
            int h = pixels("height (--h)", height);
            if (frameCount < 1 || frameCount > 10_000) {
                throw new UserError(where + ": frame count (--f) " + frameCount + " is out of range; expected 1 (an image) or 4n+1, e.g. 81");
            }
            int frames = (int) ((frameCount - 1) / 4 * 4 + 1);
            if (seed != null && seed < 0) throw new UserError(where + ": seed (--d) " + seed + " is negative; expected an integer >= 0");
            int steps = (int) Math.max(1, Math.min(1000, sampleSteps));
            if (!(discreteFlowShift > 0)) {
                throw new UserError(where + ": flow shift (--fs) " + discreteFlowShift + " must be positive, e.g. 5.0");
            }
            if (!(cfgScale >= 0)) throw new UserError(where + ": CFG scale (--l) " + cfgScale + " must be >= 0, e.g. 5.0");
            return new SamplePrompt(index, prompt, w, h, frames, seed, steps, discreteFlowShift, cfgScale, negativePrompt);
        }

        /** musubi rounds down to a multiple of 8; the DiT's 2×2 patches over the 8× VAE latent need a multiple of 16. */
        private int pixels(String what, long value) {
            long rounded = value / 8 * 8;
            if (value < 16 || value > 8192 || rounded % 16 != 0) {
                long lower = Math.max(16, value / 16 * 16);
                throw new UserError(where + ": " + what + " " + value + " is not a multiple of 16 in 16..8192 (latent patches span"
                        + " 16 pixels); use " + lower + " or " + (lower + 16));
            }
            return (int) rounded;
        }
    }
}
