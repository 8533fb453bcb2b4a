package dev.wanlora.pipeline.tensorboard;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * TFRecord framing, the container of TensorBoard event files: each record is
 * {@code uint64 length, uint32 masked_crc32c(length bytes), data, uint32 masked_crc32c(data)}, all little-endian.
 * Source: tensorflow/core/lib/io/record_writer.h and core/lib/hash/crc32c.h ({@code Mask}: rotate right by 15 and
 * add 0xa282ead8, so a CRC over data that itself holds CRCs stays well distributed).
 */
final class TfRecord {
    private TfRecord() {}

    private static final int MASK_DELTA = 0xa282ead8;

    static int maskedCrc32c(byte[] bytes, int offset, int length) {
        CRC32C crc = new CRC32C();
        crc.update(bytes, offset, length);
        int c = (int) crc.getValue();
        return ((c >>> 15) | (c << 17)) + MASK_DELTA;
    }

    static void write(OutputStream out, byte[] data) throws IOException {
        ByteBuffer header = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        header.putLong(data.length);
        header.putInt(maskedCrc32c(header.array(), 0, 8));
        out.write(header.array());
        out.write(data);
        out.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(maskedCrc32c(data, 0, data.length)).array());
    }

    /** The next record's data, or null at a clean end of file. Throws on a truncated record or a CRC mismatch. */
    static byte[] read(InputStream in) throws IOException {
        DataInputStream din = new DataInputStream(in);
        byte[] header = new byte[12];
        int first = din.read(header, 0, 1);
        if (first < 0) return null;
        din.readFully(header, 1, 11);
        ByteBuffer h = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
        long length = h.getLong(0);
        if (h.getInt(8) != maskedCrc32c(header, 0, 8)) throw new IOException("TFRecord: length CRC mismatch");
        if (length < 0 || length > Integer.MAX_VALUE - 8) throw new IOException("TFRecord: implausible length " + length);
        byte[] data = new byte[(int) length];
        byte[] footer = new byte[4];
        try {
            din.readFully(data);
            din.readFully(footer);
        } catch (EOFException e) {
            throw new IOException("TFRecord: truncated record of " + length + " bytes", e);
        }
        if (ByteBuffer.wrap(footer).order(ByteOrder.LITTLE_ENDIAN).getInt() != maskedCrc32c(data, 0, data.length)) {
            throw new IOException("TFRecord: data CRC mismatch");
        }
        return data;
    }
}
