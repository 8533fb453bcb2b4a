package dev.wanlora.models.lora;

/** The two key layouts of a Wan LoRA file (spec §7.3, §7.4). */
public enum LoraFormat {
    /**
     * musubi's own: {@code lora_unet_blocks_0_self_attn_q.lora_down.weight} (r, in), {@code .lora_up.weight}
     * (out, r), {@code .alpha} (a 0-d scalar).
     */
    MUSUBI,
    /**
     * The "other" form of musubi's {@code convert_lora.py --target other}, which ComfyUI and diffusers-style loaders
     * read: {@code diffusion_model.blocks.0.self_attn.q.lora_A.weight} / {@code lora_B.weight}, no alpha key, both
     * matrices multiplied by √(alpha/rank) so that the effective scale is 1.
     */
    PEFT
}
