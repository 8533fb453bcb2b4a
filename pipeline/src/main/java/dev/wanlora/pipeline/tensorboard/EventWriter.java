package dev.wanlora.pipeline.tensorboard;

import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Writes a TensorBoard event file: TFRecord-framed {@code tensorflow.Event} protobuf messages holding scalar
 * ({@code simple_value}) and text summaries.
 *
 * <p>The protobuf encoding is written by hand (about forty lines, below) because no small, well-kept Java library
 * does this job: TensorFlow's Java artifacts and tensorboard-java pull in hundreds of megabytes or are abandoned,
 * and generating classes from the .proto files would add protoc to the build for three messages. The messages used
 * (tensorflow/core/util/event.proto, core/framework/summary.proto, tensor.proto at TensorFlow 2.x; field numbers
 * are stable) are:
 * <pre>
 * Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 * Summary { repeated Value value = 1; }
 * Value   { string tag = 1; float simple_value = 2; Image image = 4; TensorProto tensor = 8; SummaryMetadata metadata = 9; }
 * Image   { int32 height = 1; int32 width = 2; int32 colorspace = 3 (3 = RGB); bytes encoded_image_string = 4 (PNG); }
 * SummaryMetadata { PluginData plugin_data = 1; }   PluginData { string plugin_name = 1; }
 * TensorProto { DataType dtype = 1 (DT_STRING = 7); TensorShapeProto tensor_shape = 2; repeated bytes string_val = 8; }
 * </pre>
 * Each event is flushed as it is written, so TensorBoard shows a run while it trains. Not thread-safe.
 */
public final class EventWriter implements AutoCloseable {
    private final Path file;
    private final OutputStream out;

    private EventWriter(Path file, OutputStream out) {
        this.file = file;
        this.out = out;
    }

    /**
     * Creates {@code dir} and a new event file in it, named as TensorFlow names them
     * ({@code events.out.tfevents.<unix seconds>.<host>}), and writes the file-version event.
     */
    public static EventWriter create(Path dir) throws IOException {
        Files.createDirectories(dir);
        String host;
        try {
            host = InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            host = "localhost";
        }
        long now = System.currentTimeMillis();
        Path file = dir.resolve(String.format("events.out.tfevents.%010d.%s", now / 1000, host));
        for (int i = 1; Files.exists(file); i++) {
            file = dir.resolve(String.format("events.out.tfevents.%010d.%s.%d", now / 1000, host, i));
        }
        EventWriter w = new EventWriter(file, new BufferedOutputStream(Files.newOutputStream(file)));
        Proto event = new Proto().fixed64(1, now / 1000.0).string(3, "brain.Event:2");
        w.write(event);
        return w;
    }

    public Path file() { return file; }

    /** One scalar: {@code tag} at {@code step}. */
    public void scalar(String tag, long step, float value) {
        Proto summaryValue = new Proto().string(1, tag).fixed32(2, value);
        write(event(step, new Proto().message(1, summaryValue)));
    }

    /** One text summary (TensorBoard's Text tab, e.g. the configuration); {@code text} may be Markdown. */
    public void text(String tag, long step, String text) {
        Proto shape = new Proto();
        Proto tensor = new Proto().varint(1, 7).message(2, shape).bytes(8, text.getBytes(StandardCharsets.UTF_8));
        Proto metadata = new Proto().message(1, new Proto().string(1, "text"));
        Proto summaryValue = new Proto().string(1, tag).message(8, tensor).message(9, metadata);
        write(event(step, new Proto().message(1, summaryValue)));
    }

    /** One image summary (TensorBoard's Images tab, e.g. a sample's first frame): {@code png} is an RGB PNG file's bytes. */
    public void image(String tag, long step, int width, int height, byte[] png) {
        Proto image = new Proto().varint(1, height).varint(2, width).varint(3, 3).bytes(4, png);
        Proto summaryValue = new Proto().string(1, tag).message(4, image);
        write(event(step, new Proto().message(1, summaryValue)));
    }

    private static Proto event(long step, Proto summary) {
        return new Proto().fixed64(1, System.currentTimeMillis() / 1000.0).varint(2, step).message(5, summary);
    }

    private void write(Proto message) {
        try {
            TfRecord.write(out, message.toByteArray());
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot write TensorBoard event", e);
        }
    }

    @Override
    public void close() {
        try {
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot close TensorBoard event file", e);
        }
    }

    /** Protobuf wire format, writing side: tag = field·8 + wire type; varint (0), 64-bit (1), length-delimited (2), 32-bit (5). */
    private static final class Proto {
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();

        Proto varint(int field, long value) {
            rawVarint((long) field << 3);
            rawVarint(value);
            return this;
        }

        Proto fixed64(int field, double value) {
            rawVarint((long) field << 3 | 1);
            rawLittleEndian(Double.doubleToRawLongBits(value), 8);
            return this;
        }

        Proto fixed32(int field, float value) {
            rawVarint((long) field << 3 | 5);
            rawLittleEndian(Float.floatToRawIntBits(value), 4);
            return this;
        }

        Proto string(int field, String value) {
            return bytes(field, value.getBytes(StandardCharsets.UTF_8));
        }

        Proto bytes(int field, byte[] value) {
            rawVarint((long) field << 3 | 2);
            rawVarint(value.length);
            bytes.writeBytes(value);
            return this;
        }

        Proto message(int field, Proto value) {
            return bytes(field, value.toByteArray());
        }

        byte[] toByteArray() { return bytes.toByteArray(); }

        private void rawVarint(long v) {
            while ((v & ~0x7FL) != 0) {
                bytes.write((int) ((v & 0x7F) | 0x80));
                v >>>= 7;
            }
            bytes.write((int) v);
        }

        private void rawLittleEndian(long v, int n) {
            for (int i = 0; i < n; i++) bytes.write((int) (v >>> (8 * i)) & 0xFF);
        }
    }
}
