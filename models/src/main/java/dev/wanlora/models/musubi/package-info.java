/**
 * musubi-tuner's dataset side, read without PyTorch: the dataset config TOML ({@link dev.wanlora.models.musubi.DatasetConfig}),
 * bucketing ({@link dev.wanlora.models.musubi.BucketSelector}), frame windows
 * ({@link dev.wanlora.models.musubi.FrameWindows}), the latent and text-encoder caches
 * ({@link dev.wanlora.models.musubi.CacheDataset}, {@link dev.wanlora.models.musubi.CacheItem}) and the per-epoch
 * batch order ({@link dev.wanlora.models.musubi.BatchSchedule}).
 *
 * <p>Training reads caches, never media: musubi's {@code wan_cache_latents.py} and
 * {@code wan_cache_text_encoder_outputs.py} make them, and wanlora counts items, buckets and batches the way
 * musubi's trainer does, so step counts and LR schedules agree.
 *
 * <p>Upstream: kohya-ss/musubi-tuner at commit {@code 30c658c4f4b0bf05038b3346eff9670259b10fc7}, files
 * {@code src/musubi_tuner/dataset/{config_utils,image_video_dataset,bucket,media_utils}.py}; the facts used are in
 * {@code spec/wan-musubi.md} §5 and §6.
 */
package dev.wanlora.models.musubi;
