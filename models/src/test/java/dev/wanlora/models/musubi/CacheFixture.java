package dev.wanlora.models.musubi;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Map;

/**
 * Writes musubi-style cache files for tests: one tensor per file, header metadata as musubi's cache_io.py writes it,
 * header padded so that 8 + its length is a multiple of 256 (musubi's safetensors_utils).
 *
 * <p>With {@code values == null} the data section is left as a hole ({@link RandomAccessFile#setLength}), a sparse
 * file of the real size that reads as zeros: the header and file length are exactly those of a real cache, but
 * nothing is written, so a test can lay out ~1,700 real-shape caches (500 MB of logical data) in a second. Discovery
 * reads headers only, so this is all it needs; loading tests use small files with real values.
 */
final class CacheFixture {
    private CacheFixture() {}

    private static final ObjectMapper JSON = new ObjectMapper();

    /** A latent cache {@code latents_{F}x{H}x{W}_bfloat16} of the given shape ([16, F, H, W] unless testing errors). */
    static void latent(Path file, Shape shape, int originalWidth, int originalHeight, Integer frameCount, float[] values) {
        String key = "latents_" + shape.dim(1) + "x" + shape.dim(2) + "x" + shape.dim(3) + "_bfloat16";
        latent(file, key, DType.BF16, shape, originalWidth, originalHeight, frameCount, values);
    }

    static void latent(Path file, String key, DType dtype, Shape shape, int originalWidth, int originalHeight,
                       Integer frameCount, float[] values) {
        Map<String, String> meta = frameCount == null
                ? Map.of("architecture", "wan", "width", "" + originalWidth, "height", "" + originalHeight,
                        "format_version", "1.0.1")
                : Map.of("architecture", "wan", "width", "" + originalWidth, "height", "" + originalHeight,
                        "format_version", "1.0.1", "frame_count", "" + frameCount);
        write(file, meta, key, dtype, shape, values);
    }

    /** A text-encoder cache {@code varlen_t5_bfloat16} of shape [rows, width]. */
    static void text(Path file, int rows, int width, float[] values) {
        write(file, Map.of("architecture", "wan", "caption1", "a test caption", "format_version", "1.0.1"),
                "varlen_t5_bfloat16", DType.BF16, Shape.of(rows, width), values);
    }

    static void write(Path file, Map<String, String> metadata, String key, DType dtype, Shape shape, float[] values) {
        long dataBytes = shape.numElements() * dtype.sizeBytes();
        ObjectNode header = JSON.createObjectNode();
        ObjectNode meta = header.putObject("__metadata__");
        metadata.forEach(meta::put);
        ObjectNode t = header.putObject(key);
        t.put("dtype", dtype.safetensorsName());
        var dims = t.putArray("shape");
        for (long d : shape.dims()) dims.add(d);
        t.putArray("data_offsets").add(0).add(dataBytes);
        StringBuilder text = new StringBuilder(header.toString());
        while ((8 + text.length()) % 256 != 0) text.append(' ');
        byte[] headerBytes = text.toString().getBytes(StandardCharsets.UTF_8);
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(headerBytes.length);
            f.write(length.array());
            f.write(headerBytes);
            if (values != null) {
                ByteBuffer data = ByteBuffer.allocate((int) dataBytes).order(ByteOrder.LITTLE_ENDIAN);
                for (float v : values) {
                    switch (dtype) {
                        case BF16 -> data.putShort(Bf16.fromFloat(v));
                        case F32 -> data.putFloat(v);
                        default -> throw new IllegalArgumentException("CacheFixture: no writer for " + dtype);
                    }
                }
                f.write(data.array());
            }
            f.setLength(8 + headerBytes.length + dataBytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
