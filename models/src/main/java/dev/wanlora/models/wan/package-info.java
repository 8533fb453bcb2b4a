/**
 * The Wan2.1 text-to-video diffusion transformer (DiT) as musubi-tuner trains it: configuration, checkpoint weights,
 * the forward pass and a hand-written backward that produces LoRA gradients. The math is
 * {@code ../shared/spec/wan-musubi.md} §1; the numbers are checked against musubi's own model in
 * {@code testdata/golden/wan-tiny}.
 *
 * <p><b>Dimension legend</b> (STYLE.md §5), used in every shape comment of this package:
 * <ul>
 * <li>B batch size</li>
 * <li>F, H, W latent frames, height, width (H, W in latent pixels, i.e. video pixels / 8)</li>
 * <li>L = F·(H/2)·(W/2) image tokens (the patch grid is F × H' × W' with H' = H/2, W' = W/2)</li>
 * <li>C model dim (5120 for T2V-14B, 1536 for T2V-1.3B)</li>
 * <li>Fd FFN hidden dim (13824, 8960)</li>
 * <li>N heads (40, 12) · D head dim (128) · C = N·D</li>
 * <li>K text tokens after padding (512) · Ct text-encoder dim (4096)</li>
 * <li>Tf sinusoidal time-embedding dim (256)</li>
 * <li>P patch vector length = Cin·1·2·2 = 64 · Cin, Cout latent channels (16)</li>
 * <li>R LoRA rank</li>
 * </ul>
 * Single letters are used as locals only inside small methods, never as fields.
 */
package dev.wanlora.models.wan;
