package dev.wanlora.engine.io;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes safetensors files the way musubi-tuner's {@code mem_eff_save_file} does (M:utils/safetensors_utils.py,
 * spec §5.2): {@code __metadata__} first when there is any, then the tensors in the given order with contiguous
 * data_offsets (an empty tensor gets {@code [offset, offset]}), the header JSON padded with spaces so that 8 +
 * header length is a multiple of 256. The file appears atomically ({@link AtomicFiles}).
 */
public final class SafeTensorsWriter {
    private SafeTensorsWriter() {}

    /** musubi's {@code _ALIGN}: the data section starts on a 256-byte boundary. */
    static final int HEADER_ALIGN = 256;

    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final int COPY_CHUNK_BYTES = 1 << 24;

    /**
     * One tensor to write: {@code bytes} are its little-endian, row-major contents (any segment: heap, native or
     * a reader's map) and must hold exactly numElements × dtype size bytes.
     */
    public record Entry(String name, DType dtype, Shape shape, MemorySegment bytes) {
        public Entry {
            if (name == null || name.isEmpty() || name.equals("__metadata__")) {
                throw new IllegalArgumentException("SafeTensorsWriter.Entry: invalid tensor name; got "
                        + (name == null ? "null" : SafeTensors.quote(name)) + ", expected a non-empty name other than __metadata__");
            }
            long expected = Math.multiplyExact(shape.numElements(), dtype.sizeBytes());
            if (bytes.byteSize() != expected) {
                throw new IllegalArgumentException("SafeTensorsWriter.Entry " + SafeTensors.quote(name) + ": byte size "
                        + "does not match dtype and shape; got " + bytes.byteSize() + " bytes, expected " + expected
                        + " (" + dtype + " " + shape + ")");
            }
        }

        /** Raw little-endian bytes (not copied). */
        public static Entry ofBytes(String name, DType dtype, Shape shape, byte[] bytes) {
            return new Entry(name, dtype, shape, MemorySegment.ofArray(bytes));
        }

        /**
         * {@code values} rounded to {@code dtype} (F64 widens exactly; F32 as is; F16, BF16 round to nearest even;
         * F8_E4M3 and F8_E5M2 as torch's cast does, see {@link Fp8}).
         */
        public static Entry ofFloats(String name, DType dtype, Shape shape, float[] values) {
            if (values.length != shape.numElements()) {
                throw new IllegalArgumentException("SafeTensorsWriter.Entry.ofFloats " + SafeTensors.quote(name)
                        + ": value count does not match shape; got " + values.length + " values, expected "
                        + shape.numElements() + " for " + shape);
            }
            ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(values.length, dtype.sizeBytes())).order(ByteOrder.LITTLE_ENDIAN);
            switch (dtype) {
                case F64 -> { for (float v : values) b.putDouble(v); }
                case F32 -> { for (float v : values) b.putFloat(v); }
                case F16 -> { for (float v : values) b.putShort(Fp16.fromFloat(v)); }
                case BF16 -> { for (float v : values) b.putShort(Bf16.fromFloat(v)); }
                case F8_E4M3 -> { for (float v : values) b.put(Fp8.e4m3FromFloat(v)); }
                case F8_E5M2 -> { for (float v : values) b.put(Fp8.e5m2FromFloat(v)); }
                default -> throw new UnsupportedOperationException("SafeTensorsWriter.Entry.ofFloats " + SafeTensors.quote(name)
                        + ": cannot store floats as " + dtype + "; supported: F64, F32, F16, BF16, F8_E4M3, F8_E5M2");
            }
            return ofBytes(name, dtype, shape, b.array());
        }
    }

    /**
     * Writes {@code tensors} (in this order) and {@code metadata} (may be empty) to {@code file}, replacing it
     * atomically. Duplicate names are refused. I/O failures throw {@link UncheckedIOException} naming the file.
     */
    public static void write(Path file, List<Entry> tensors, Map<String, String> metadata) {
        byte[] header = header(tensors, metadata == null || metadata.isEmpty() ? null : metadata, HEADER_ALIGN);
        AtomicFiles.write(file, temp -> {
            try (FileChannel ch = FileChannel.open(temp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
                writeFully(ch, length);
                writeFully(ch, ByteBuffer.wrap(header));
                byte[] chunk = new byte[(int) Math.min(COPY_CHUNK_BYTES, maxBytes(tensors))];
                for (Entry e : tensors) {
                    MemorySegment src = e.bytes();
                    for (long off = 0; off < src.byteSize(); off += chunk.length) {
                        int n = (int) Math.min(chunk.length, src.byteSize() - off);
                        MemorySegment.copy(src, ValueLayout.JAVA_BYTE, off, chunk, 0, n);
                        writeFully(ch, ByteBuffer.wrap(chunk, 0, n));
                    }
                }
            }
        });
    }

    /**
     * The header bytes that follow the 8-byte length field: compact JSON ({@code __metadata__} first unless
     * {@code metadata} is null, then the tensors in list order with contiguous offsets), then spaces until
     * 8 + length is a multiple of {@code alignment}.
     */
    static byte[] header(List<Entry> tensors, Map<String, String> metadata, int alignment) {
        ObjectNode root = JSON.createObjectNode();
        if (metadata != null) {
            ObjectNode m = root.putObject("__metadata__");
            metadata.forEach((k, v) -> {
                if (k == null || v == null) {
                    throw new IllegalArgumentException("SafeTensorsWriter.write: metadata entry " + k + "=" + v
                            + " has a null; expected strings (safetensors metadata is str -> str)");
                }
                m.put(k, v);
            });
        }
        Set<String> names = new HashSet<>();
        long offset = 0;
        for (Entry e : tensors) {
            if (!names.add(e.name())) {
                throw new IllegalArgumentException("SafeTensorsWriter.write: duplicate tensor name; got "
                        + SafeTensors.quote(e.name()) + " twice, expected unique names");
            }
            ObjectNode t = root.putObject(e.name());
            t.put("dtype", e.dtype().safetensorsName());
            ArrayNode shape = t.putArray("shape");
            Arrays.stream(e.shape().dims()).forEach(shape::add);
            long end = offset + e.bytes().byteSize();
            t.putArray("data_offsets").add(offset).add(end);
            offset = end;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(root);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("SafeTensorsWriter: cannot serialise the header", e);
        }
        int padded = Math.toIntExact(json.length + Math.floorMod(-(json.length + 8L), alignment));
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    private static long maxBytes(List<Entry> tensors) {
        long max = 1;
        for (Entry e : tensors) max = Math.max(max, e.bytes().byteSize());
        return max;
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }
}
