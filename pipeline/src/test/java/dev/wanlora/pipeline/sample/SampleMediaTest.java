package dev.wanlora.pipeline.sample;

import org.jcodec.api.FrameGrab;
import org.jcodec.common.io.NIOUtils;
import org.jcodec.common.model.ColorSpace;
import org.jcodec.common.model.Picture;
import org.jcodec.scale.ColorUtil;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.util.HashSet;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Sample files: a playable H.264 mp4 (boxes, a frame decodes back close to what was written), a png, musubi's names. */
class SampleMediaTest {

    @TempDir
    Path tmp;

    /** A smooth moving pattern in [−1, 1]: (3, F, H, W). */
    static float[] pattern(int frames, int height, int width) {
        float[] chw = new float[3 * frames * height * width];
        int i = 0;
        for (int c = 0; c < 3; c++)
            for (int f = 0; f < frames; f++)
                for (int y = 0; y < height; y++)
                    for (int x = 0; x < width; x++)
                        chw[i++] = (float) (0.8 * Math.sin(0.05 * (x + 3 * f) + 0.03 * y * (c + 1) + c));
        return chw;
    }

    @Test
    void videoIsAValidMp4WhoseFramesDecodeBack() throws Exception {
        int frames = 5, height = 48, width = 64;
        SampleMedia media = SampleMedia.fromPixels(pattern(frames, height, width), frames, height, width);
        Path mp4 = tmp.resolve("s.mp4");
        media.write(mp4, SampleMedia.DEFAULT_FPS);
        assertEquals(".mp4", media.extension());
        Set<String> boxes = topLevelBoxes(Files.readAllBytes(mp4));
        assertTrue(boxes.containsAll(Set.of("ftyp", "moov", "mdat")), "boxes " + boxes);
        try (var ch = NIOUtils.readableChannel(mp4.toFile())) {
            FrameGrab grab = FrameGrab.createFrameGrab(ch);
            for (int f = 0; f < frames; f++) {
                Picture decoded = grab.getNativeFrame();
                assertEquals(width, decoded.getCroppedWidth());
                assertEquals(height, decoded.getCroppedHeight());
                double err = meanAbsError(toRgb(decoded), media.frames()[f], width, height);
                // yuv420 halves the chroma resolution and H.264 quantizes: this pattern comes back within ≈ 3.3 levels
                // of 255 per channel on average (measured; a colour-range mix-up gives ≈ 10, a wrong frame far more).
                assertTrue(err < 6, "frame " + f + " mean abs error " + err);
            }
            assertEquals(null, grab.getNativeFrame(), "exactly " + frames + " frames");
        }
    }

    @Test
    void singleFrameIsAPngThatReadsBackExactly() throws IOException {
        SampleMedia media = SampleMedia.fromPixels(pattern(1, 32, 48), 1, 32, 48);
        assertEquals(".png", media.extension());
        Path png = tmp.resolve("s.png");
        media.write(png, SampleMedia.DEFAULT_FPS);
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(Files.readAllBytes(png)));
        byte[] back = new byte[32 * 48 * 3];
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 48; x++) {
                int rgb = img.getRGB(x, y), i = (y * 48 + x) * 3;
                back[i] = (byte) (rgb >> 16); back[i + 1] = (byte) (rgb >> 8); back[i + 2] = (byte) rgb;
            }
        assertArrayEquals(media.frames()[0], back);
    }

    @Test
    void pixelsMapAsMusubiDoes() {
        // (x/2 + 0.5) clamped, ×255, truncated: −1 → 0, 0 → 127 (127.5 truncated), 1 → 255, 2 → 255, −3 → 0, NaN → 0
        float[] chw = {-1, 0, 1, 2, -3, Float.NaN};
        SampleMedia m = SampleMedia.fromPixels(chw, 1, 1, 2); // (3, 1, 1, 2): pixel 0 = (−1, 1, −3), pixel 1 = (0, 2, NaN)
        assertArrayEquals(new byte[] {0, (byte) 255, 0, 127, (byte) 255, 0}, m.frames()[0]);
    }

    @Test
    void namesAreMusubis() {
        LocalDateTime t = LocalDateTime.of(2026, 12, 3, 9, 5, 7);
        assertEquals("lora_e000002_01_20261203090507_42", SampleNames.epochStem("lora", 2, 1, t, 42));
        assertEquals("lora_000150_00_20261203090507_7", SampleNames.stepStem("lora", 150, 0, t, 7));
        assertEquals("a.mp4", SampleNames.fileName("a", 81));
        assertEquals("a_000.png", SampleNames.fileName("a", 1));
        assertEquals(Path.of("out", "sample"), SampleNames.folder(Path.of("out")));
    }

    static byte[] toRgb(Picture yuv) {
        Picture rgb = Picture.create(yuv.getWidth(), yuv.getHeight(), ColorSpace.RGB);
        ColorUtil.getTransform(yuv.getColor(), ColorSpace.RGB).transform(yuv, rgb);
        byte[] data = rgb.getPlaneData(0), out = new byte[yuv.getCroppedWidth() * yuv.getCroppedHeight() * 3];
        for (int y = 0; y < yuv.getCroppedHeight(); y++) {
            for (int x = 0; x < yuv.getCroppedWidth() * 3; x++) {
                out[y * yuv.getCroppedWidth() * 3 + x] = (byte) (data[y * rgb.getWidth() * 3 + x] + 128);
            }
        }
        return out;
    }

    static double meanAbsError(byte[] a, byte[] b, int width, int height) {
        double sum = 0;
        for (int i = 0; i < width * height * 3; i++) sum += Math.abs((a[i] & 0xff) - (b[i] & 0xff));
        return sum / (width * height * 3);
    }

    /** The types of an MP4's top-level boxes (size, type; 64-bit sizes when size is 1). */
    static Set<String> topLevelBoxes(byte[] file) {
        ByteBuffer b = ByteBuffer.wrap(file).order(ByteOrder.BIG_ENDIAN);
        Set<String> types = new HashSet<>();
        long pos = 0;
        while (pos + 8 <= file.length) {
            long size = Integer.toUnsignedLong(b.getInt((int) pos));
            String type = new String(file, (int) pos + 4, 4, java.nio.charset.StandardCharsets.US_ASCII);
            if (size == 1) size = b.getLong((int) pos + 8);
            if (size < 8) break;
            types.add(type);
            pos += size;
        }
        assertEquals(file.length, pos, "boxes tile the file");
        return types;
    }
}
