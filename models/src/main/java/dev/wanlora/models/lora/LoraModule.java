package dev.wanlora.models.lora;

import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.BlockAdapters;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;

/**
 * One LoRA adapter: y = base(x) + multiplier·scale·up(down(x)) with scale = alpha/rank and multiplier 1
 * (musubi {@code LoRAModule.forward}).
 *
 * @param name       musubi's name, e.g. {@code lora_unet_blocks_0_self_attn_q}
 * @param blockIndex the block this adapter belongs to
 * @param target     the adapted Linear's module path inside the block ("self_attn.q", "ffn.0", …)
 * @param layer      the same as an enum
 * @param down       lora_down.weight (R, I) F32
 * @param up         lora_up.weight (O, R) F32
 * @param dDown      d loss / d down (R, I) F32, accumulated (+=)
 * @param dUp        d loss / d up (O, R) F32, accumulated (+=)
 * @param alpha      the stored alpha (never 0: 0 means rank and is replaced on creation)
 * @param rank       R
 */
public record LoraModule(String name, int blockIndex, String target, BlockLinear layer, Tensor down, Tensor up,
                         Tensor dDown, Tensor dUp, float alpha, int rank) implements BlockAdapters.Adapter {

    /** alpha / rank, the factor applied to up(down(x)). */
    @Override
    public float scale() { return alpha / rank; }

    /** musubi's module name for a block Linear: "lora_unet_" + the module path with '.' replaced by '_'. */
    public static String nameOf(int blockIndex, BlockLinear layer) {
        return "lora_unet_blocks_" + blockIndex + "_" + layer.modulePath().replace('.', '_');
    }
}
