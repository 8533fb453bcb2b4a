package dev.wanlora.engine.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Builds raw safetensors files byte by byte, so tests can make every kind of broken file. */
final class SafeTensorsFiles {
    private SafeTensorsFiles() {}

    /** A file: 8-byte length of {@code header}'s UTF-8 bytes, the header, then {@code data}. */
    static Path raw(Path file, String header, byte[] data) throws IOException {
        return raw(file, header.getBytes(StandardCharsets.UTF_8), data);
    }

    static Path raw(Path file, byte[] header, byte[] data) throws IOException {
        return raw(file, header.length, header, data);
    }

    /** A file whose length field says {@code declaredLength}, whatever the header bytes are. */
    static Path raw(Path file, long declaredLength, byte[] header, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(declaredLength).put(header).put(data);
        Files.write(file, b.array());
        return file;
    }

    /** Little-endian F32 bytes of {@code values}. */
    static byte[] f32(float... values) {
        ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) b.putFloat(v);
        return b.array();
    }
}
