package dev.wanlora.models.wan;

import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;

import java.util.List;

/**
 * The low-rank adapters on the DiT's block Linears, as {@link WanDit} applies and trains them: y = base(x) +
 * scale·up(down(x)) (musubi {@code LoRAModule.forward}). {@code models.lora.LoraNetwork} implements it. The model
 * knows only this interface, so the LoRA package may build on the model (its config and its Linears) without the
 * model depending on LoRA.
 */
public interface BlockAdapters {

    /** One adapter on a Linear of I in and O out features, rank R. */
    interface Adapter {
        /** musubi's module name, e.g. {@code lora_unet_blocks_0_self_attn_q}, for messages. */
        String name();

        /** (R, I) F32 */
        Tensor down();

        /** (O, R) F32 */
        Tensor up();

        /** d loss / d down, (R, I) F32, accumulated (+=). */
        Tensor dDown();

        /** d loss / d up, (O, R) F32, accumulated (+=). */
        Tensor dUp();

        /** R */
        int rank();

        /** The factor applied to up(down(x)): alpha / rank. */
        float scale();
    }

    /** The adapter on {@code layer} of block {@code blockIndex}, or null when that Linear has none. */
    Adapter module(int blockIndex, BlockLinear layer);

    /** Every adapter, in one fixed order. */
    List<? extends Adapter> modules();

    /** Every parameter, (P) F32, one flat tensor: each adapter's down and up are views into it. */
    Tensor parameters();

    /**
     * Adapter {@code m}'s {down (R, I), up (O, R)} as views into {@code flat}, a tensor of {@link #parameters()}'s
     * element count in any dtype laid out the same way (e.g. the bf16 copy a step computes with).
     */
    Tensor[] views(Tensor flat, Adapter m);
}
