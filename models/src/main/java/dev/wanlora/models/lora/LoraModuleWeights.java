package dev.wanlora.models.lora;

/**
 * One LoRA module's weights as saved: y = W·x + (alpha/rank)·up·(down·x).
 *
 * @param name musubi's module name, e.g. {@code lora_unet_blocks_0_self_attn_q}
 * @param rank r
 * @param inFeatures the adapted Linear's input size
 * @param outFeatures its output size
 * @param alpha the scale numerator (scale = alpha/rank)
 * @param down (r, in) row-major: {@code lora_down.weight}
 * @param up (out, r) row-major: {@code lora_up.weight}
 */
public record LoraModuleWeights(String name, int rank, int inFeatures, int outFeatures, float alpha, float[] down,
                                float[] up) {
    public LoraModuleWeights {
        if (rank <= 0 || inFeatures <= 0 || outFeatures <= 0) {
            throw new IllegalArgumentException("LoRA module " + name + ": sizes must be positive; got rank=" + rank
                    + " in=" + inFeatures + " out=" + outFeatures);
        }
        if (down.length != (long) rank * inFeatures || up.length != (long) outFeatures * rank) {
            throw new IllegalArgumentException("LoRA module " + name + ": weight sizes do not match; got down "
                    + down.length + " and up " + up.length + " values, expected " + (long) rank * inFeatures + " (" + rank
                    + "×" + inFeatures + ") and " + (long) outFeatures * rank + " (" + outFeatures + "×" + rank + ")");
        }
    }
}
