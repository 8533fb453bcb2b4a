package dev.wanlora.pipeline.tensorboard;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads the event files {@link EventWriter} writes (and the scalar/text subset of any TensorBoard event file),
 * checking every TFRecord CRC. Used by tests and by tools that compare runs. Unknown protobuf fields are skipped.
 */
public final class EventReader {
    private EventReader() {}

    /** One event: its wall time, step, and the scalars, texts and images (encoded bytes) of its summary by tag. */
    public record Event(double wallTime, long step, String fileVersion, Map<String, Float> scalars, Map<String, String> texts,
                        Map<String, byte[]> images) {}

    public static List<Event> read(Path file) throws IOException {
        List<Event> events = new ArrayList<>();
        try (InputStream in = new BufferedInputStream(Files.newInputStream(file))) {
            for (byte[] record; (record = TfRecord.read(in)) != null; ) events.add(parseEvent(record));
        }
        return events;
    }

    /** {@code tag}'s scalar values in file order, as (step, value) pairs. */
    public static List<Map.Entry<Long, Float>> scalars(List<Event> events, String tag) {
        List<Map.Entry<Long, Float>> out = new ArrayList<>();
        for (Event e : events) {
            Float v = e.scalars().get(tag);
            if (v != null) out.add(Map.entry(e.step(), v));
        }
        return out;
    }

    private static Event parseEvent(byte[] bytes) {
        double wallTime = 0;
        long step = 0;
        String fileVersion = null;
        Map<String, Float> scalars = new LinkedHashMap<>();
        Map<String, String> texts = new LinkedHashMap<>();
        Map<String, byte[]> images = new LinkedHashMap<>();
        Wire w = new Wire(bytes);
        while (w.more()) {
            int tag = (int) w.varint();
            switch (tag) {
                case 1 << 3 | 1 -> wallTime = Double.longBitsToDouble(w.fixed(8));
                case 2 << 3 -> step = w.varint();
                case 3 << 3 | 2 -> fileVersion = new String(w.bytes(), StandardCharsets.UTF_8);
                case 5 << 3 | 2 -> parseSummary(w.bytes(), scalars, texts, images);
                default -> w.skip(tag);
            }
        }
        return new Event(wallTime, step, fileVersion, scalars, texts, images);
    }

    private static void parseSummary(byte[] bytes, Map<String, Float> scalars, Map<String, String> texts,
                                     Map<String, byte[]> images) {
        Wire w = new Wire(bytes);
        while (w.more()) {
            int tag = (int) w.varint();
            if (tag != (1 << 3 | 2)) {
                w.skip(tag);
                continue;
            }
            Wire v = new Wire(w.bytes());
            String name = null;
            Float simple = null;
            String text = null;
            byte[] image = null;
            while (v.more()) {
                int t = (int) v.varint();
                switch (t) {
                    case 1 << 3 | 2 -> name = new String(v.bytes(), StandardCharsets.UTF_8);
                    case 2 << 3 | 5 -> simple = Float.intBitsToFloat((int) v.fixed(4));
                    case 4 << 3 | 2 -> image = encodedImage(v.bytes());
                    case 8 << 3 | 2 -> text = stringVal(v.bytes());
                    default -> v.skip(t);
                }
            }
            if (name != null && simple != null) scalars.put(name, simple);
            if (name != null && text != null) texts.put(name, text);
            if (name != null && image != null) images.put(name, image);
        }
    }

    /** Image.encoded_image_string (field 4). */
    private static byte[] encodedImage(byte[] imageMessage) {
        Wire w = new Wire(imageMessage);
        while (w.more()) {
            int t = (int) w.varint();
            if (t == (4 << 3 | 2)) return w.bytes();
            w.skip(t);
        }
        return null;
    }

    private static String stringVal(byte[] tensor) {
        Wire w = new Wire(tensor);
        while (w.more()) {
            int t = (int) w.varint();
            if (t == (8 << 3 | 2)) return new String(w.bytes(), StandardCharsets.UTF_8);
            w.skip(t);
        }
        return null;
    }

    /** Protobuf wire format, reading side. */
    private static final class Wire {
        private final ByteBuffer buf;

        Wire(byte[] bytes) {
            buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        }

        boolean more() { return buf.hasRemaining(); }

        long varint() {
            long v = 0;
            for (int shift = 0; ; shift += 7) {
                byte b = buf.get();
                v |= (long) (b & 0x7F) << shift;
                if (b >= 0) return v;
            }
        }

        long fixed(int n) {
            return n == 8 ? buf.getLong() : buf.getInt() & 0xFFFFFFFFL;
        }

        byte[] bytes() {
            byte[] b = new byte[(int) varint()];
            buf.get(b);
            return b;
        }

        void skip(int tag) {
            switch (tag & 7) {
                case 0 -> varint();
                case 1 -> fixed(8);
                case 2 -> bytes();
                case 5 -> fixed(4);
                default -> throw new IllegalArgumentException("protobuf: unsupported wire type " + (tag & 7));
            }
        }
    }
}
