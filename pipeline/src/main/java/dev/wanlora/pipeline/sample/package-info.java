/**
 * The sampling run: sample prompts and their file, the text encoder and latent decoder behind them, the denoising
 * runner and the media it writes (png, mp4) — used by {@code wanlora sample} and by training's --sample_prompts.
 * The model side (solvers, the denoising loop, the umT5 encoder, the Wan VAE) is in {@code models}.
 */
package dev.wanlora.pipeline.sample;
