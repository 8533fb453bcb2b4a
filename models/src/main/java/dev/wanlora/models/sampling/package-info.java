/**
 * Sample generation as musubi-tuner does it during training (spec §10): the flow solvers (UniPC, Euler), the CFG
 * denoising loop around the DiT, and the seams to the text encoder and the latent decoder. The numbers are checked
 * against musubi's own classes in {@code testdata/golden/sampling-tiny}.
 *
 * <p>Dimension legend: the latent is (Cout, F, H, W) = (16, frames, height/8, width/8), one sample at a time (batch
 * 1, as musubi samples); K text tokens; Ct text-encoder dim (4096).
 */
package dev.wanlora.models.sampling;
