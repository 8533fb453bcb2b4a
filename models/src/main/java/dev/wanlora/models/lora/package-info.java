/**
 * musubi-tuner's LoRA network for the Wan DiT ({@code networks/lora_wan.py}, spec §7): one low-rank adapter on each of
 * the ten Linear layers of every block, with musubi's module names, initialisation and scale. Parameters and
 * gradients are F32 (LoRA rank R, dims as in {@code dev.wanlora.models.wan}).
 */
package dev.wanlora.models.lora;
