package dev.wanlora.cli.demo;

import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * musubi-format caches with random contents, exactly as musubi's {@code wan_cache_latents.py} and
 * {@code wan_cache_text_encoder_outputs.py} name and lay them out (spec §5): {@code {name}_{W:04d}x{H:04d}_wan.safetensors}
 * (images) or {@code {name}_{start:05d}-{count:03d}_{W:04d}x{H:04d}_wan.safetensors} (video clips) holding
 * {@code latents_{F}x{h}x{w}_bfloat16} [16, F, H/8, W/8], and {@code {name}_wan_te.safetensors} holding
 * {@code varlen_t5_bfloat16} [L, 4096]. Used by {@code wanlora demo} and by tests, which need training data without
 * a VAE or a text encoder.
 *
 * <p>Values: latents ~ N(0, 1) (the VAE's latents are normalised to about unit variance, spec §12); text rows
 * ~ N(0, 0.2²), about the size of umT5-XXL outputs. Both rounded to bf16 like the real caches.
 */
public final class SyntheticCaches {
    private SyntheticCaches() {}

    /** Latent channels of the Wan2.1 VAE. */
    static final int CHANNELS = 16;
    /** umT5-XXL width. */
    static final int TEXT_DIM = 4096;
    /** Standard deviation of the synthetic text-encoder rows. */
    static final float TEXT_STD = 0.2f;

    /** An image item of {@code width}×{@code height} pixels (multiples of 16) with a {@code textRows}-token caption. */
    public static void image(Path dir, String name, int width, int height, int textRows, long seed) {
        Random random = new Random(seed);
        Shape shape = Shape.of(CHANNELS, 1, height / 8, width / 8);
        String file = String.format("%s_%04dx%04d_wan.safetensors", name, width, height);
        latents(dir.resolve(file), shape, random, Map.of("architecture", "wan", "width", "" + width, "height", "" + height,
                "format_version", "1.0.1"));
        text(dir, name, textRows, random);
    }

    /** A video clip of {@code frames} (4n+1) frames from frame 0. */
    public static void video(Path dir, String name, int width, int height, int frames, int textRows, long seed) {
        Random random = new Random(seed);
        Shape shape = Shape.of(CHANNELS, (frames - 1) / 4 + 1, height / 8, width / 8);
        String file = String.format("%s_%05d-%03d_%04dx%04d_wan.safetensors", name, 0, frames, width, height);
        latents(dir.resolve(file), shape, random, Map.of("architecture", "wan", "width", "" + width, "height", "" + height,
                "format_version", "1.0.1", "frame_count", "" + frames));
        text(dir, name, textRows, random);
    }

    private static void latents(Path file, Shape shape, Random random, Map<String, String> metadata) {
        float[] v = new float[Math.toIntExact(shape.numElements())];
        for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
        String key = "latents_" + shape.dim(1) + "x" + shape.dim(2) + "x" + shape.dim(3) + "_bfloat16";
        SafeTensorsWriter.write(file, List.of(SafeTensorsWriter.Entry.ofFloats(key, DType.BF16, shape, v)), metadata);
    }

    private static void text(Path dir, String name, int rows, Random random) {
        float[] v = new float[rows * TEXT_DIM];
        for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian() * TEXT_STD;
        SafeTensorsWriter.write(dir.resolve(name + "_wan_te.safetensors"),
                List.of(SafeTensorsWriter.Entry.ofFloats("varlen_t5_bfloat16", DType.BF16, Shape.of(rows, TEXT_DIM), v)),
                Map.of("architecture", "wan", "caption1", "synthetic caption of " + name, "format_version", "1.0.1"));
    }
}
