package dev.wanlora.pipeline.sample;

import dev.wanlora.pipeline.UserError;

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

    /**
     * Wan's default negative prompt ({@code sample_neg_prompt} in wan/configs/shared_config.py, which musubi fills in
     * for every prompt without {@code --n}).
     */
    public static final String WAN_NEGATIVE_PROMPT = "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，"
            + "整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，"
            + "形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

    /** The negative prompt this sample uses: its own, or Wan's default. */
    public String negativePromptOrDefault() {
        return negativePrompt != null ? negativePrompt : WAN_NEGATIVE_PROMPT;
    }

    /** This prompt with {@code seed} (a run that samples it several times, once per LoRA, fixes a missing --d once). */
    public SamplePrompt withSeed(long seed) {
        return new SamplePrompt(index, prompt, width, height, frameCount, seed, sampleSteps, discreteFlowShift, cfgScale,
                negativePrompt);
    }

    /** The latent shape (16, F_lat, H/8, W/8) with F_lat = (F − 1)/4 + 1 (Wan's VAE: 4× in time, 8× in space). */
    public long[] latentShape() {
        return new long[] {16, (frameCount - 1) / 4 + 1, height / 8, width / 8};
    }

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
