/**
 * The DiT with its LoRA against golden tensors computed by musubi's own modules ({@code wanlora verify-golden},
 * {@code testdata/golden/README.md}): forward, LoRA gradients, fp8 quantization and a short training run. It sits
 * above {@code dev.wanlora.models.wan} and {@code dev.wanlora.models.lora} because it needs both; {@code
 * GoldenVerifier.Comparison} and {@code Mode} are shared by the VAE, umT5 and sampling verifiers.
 */
package dev.wanlora.models.golden;
