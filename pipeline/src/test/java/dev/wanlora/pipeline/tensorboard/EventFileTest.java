package dev.wanlora.pipeline.tensorboard;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** TFRecord framing, masked CRC32C and the Event/Summary encoding, read back by {@link EventReader}. */
class EventFileTest {

    @Test
    void crc32cAndMask() {
        // CRC-32C check value: crc32c("123456789") = 0xE3069283 (RFC 3720 §B.4 / the Castagnoli check value).
        int c = 0xE3069283;
        int expected = ((c >>> 15) | (c << 17)) + 0xa282ead8;
        byte[] digits = "123456789".getBytes(StandardCharsets.US_ASCII);
        assertEquals(expected, TfRecord.maskedCrc32c(digits, 0, digits.length));
        // Hand evaluation: c >>> 15 = 0x0001C60D, c << 17 = 0x25060000, or = 0x2507C60D, + 0xA282EAD8 = 0xC78AB0E5.
        assertEquals(0xC78AB0E5, expected);
    }

    @Test
    void recordFramingRoundTripAndCorruption() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        TfRecord.write(out, new byte[]{1, 2, 3});
        byte[] bytes = out.toByteArray();
        assertEquals(8 + 4 + 3 + 4, bytes.length);
        assertEquals(3, bytes[0]);
        assertArrayEquals(new byte[]{1, 2, 3}, TfRecord.read(new ByteArrayInputStream(bytes)));
        bytes[13] ^= 1;
        assertThrows(IOException.class, () -> TfRecord.read(new ByteArrayInputStream(bytes)));
        assertNull(TfRecord.read(new ByteArrayInputStream(new byte[0])));
    }

    @Test
    void scalarEventEncodingByHand(@TempDir Path dir) throws IOException {
        // Value{tag="a" (0x0a 0x01 'a'), simple_value=1.0f (0x15 00 00 80 3f)} inside Summary.value (0x0a len),
        // inside Event.summary (0x2a len); Event.step=5 is 0x10 0x05; wall_time (0x09 + 8 bytes) comes first.
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (EventWriter w = EventWriter.create(dir)) {
            w.scalar("a", 5, 1.0f);
            byte[] file = Files.readAllBytes(w.file());
            out.write(file);
        }
        byte[] all = out.toByteArray();
        byte[] tail = {0x10, 0x05, 0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 'a', 0x15, 0x00, 0x00, (byte) 0x80, 0x3f};
        // the last record's data ends 4 bytes (its CRC) before the end of the file
        byte[] end = java.util.Arrays.copyOfRange(all, all.length - 4 - tail.length, all.length - 4);
        assertArrayEquals(tail, end);
    }

    @Test
    void writeAndReadBack(@TempDir Path dir) throws IOException {
        Path file;
        try (EventWriter w = EventWriter.create(dir)) {
            w.scalar("loss/current", 1, 0.5f);
            w.scalar("loss/current", 2, 0.25f);
            w.scalar("lr", 2, 1e-4f);
            w.text("config", 0, "learning_rate = 1e-4");
            file = w.file();
        }
        assertTrue(file.getFileName().toString().startsWith("events.out.tfevents."));
        List<EventReader.Event> events = EventReader.read(file);
        assertEquals("brain.Event:2", events.getFirst().fileVersion());
        assertEquals(List.of(Map.entry(1L, 0.5f), Map.entry(2L, 0.25f)), EventReader.scalars(events, "loss/current"));
        assertEquals(List.of(Map.entry(2L, 1e-4f)), EventReader.scalars(events, "lr"));
        assertEquals("learning_rate = 1e-4", events.getLast().texts().get("config"));
        assertTrue(events.get(1).wallTime() > 1.6e9);
    }

    @Test
    void imageSummaryEncodingByHandAndReadBack(@TempDir Path dir) throws IOException {
        byte[] png = {(byte) 0x89, 'P', 'N', 'G'};
        Path file;
        try (EventWriter w = EventWriter.create(dir)) {
            w.image("sample/00", 3, 2, 1, png);
            file = w.file();
        }
        byte[] all = Files.readAllBytes(file);
        // Image{height=1 (08 01), width=2 (10 02), colorspace=3 (18 03), encoded_image_string (22 04 + 4 bytes)}
        // = 12 bytes in Value.image (22 0c) after Value.tag (0a 09 "sample/00"): 25 bytes in Summary.value (0a 19),
        // 27 in Event.summary (2a 1b)
        byte[] tail = {0x10, 0x03, 0x2a, 0x1b, 0x0a, 0x19, 0x0a, 0x09, 's', 'a', 'm', 'p', 'l', 'e', '/', '0', '0',
                0x22, 0x0c, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x22, 0x04, (byte) 0x89, 'P', 'N', 'G'};
        assertArrayEquals(tail, java.util.Arrays.copyOfRange(all, all.length - 4 - tail.length, all.length - 4));
        assertArrayEquals(png, EventReader.read(file).getLast().images().get("sample/00"));
    }
}
