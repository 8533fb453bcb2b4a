package dev.wanlora.pipeline.sample;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The grid's layout and its caption font, by hand. */
class SampleGridTest {

    @Test
    void captionGlyphsByHand() {
        // "I" at scale 1 from (0, 0) in a 6-pixel-wide frame: .###. then ..#.. five times then .###.
        byte[] rgb = new byte[6 * 7 * 3];
        CaptionFont.draw(rgb, 6, "i", 0, 0, 1, 6);
        String[] expected = {".###..", "..#...", "..#...", "..#...", "..#...", "..#...", ".###.."};
        for (int y = 0; y < 7; y++) {
            StringBuilder row = new StringBuilder();
            for (int x = 0; x < 6; x++) row.append(rgb[(y * 6 + x) * 3] == (byte) 255 ? '#' : '.');
            assertEquals(expected[y], row.toString(), "row " + y);
        }
        // unknown characters draw as '?', a space draws nothing
        assertTrue(CaptionFont.isOn('é', 1, 0));
        for (int y = 0; y < 7; y++) for (int x = 0; x < 5; x++) assertTrue(!CaptionFont.isOn(' ', x, y));
        // text is cut to what fits: 2 characters need 11 pixels (6 + 5); 10 pixels show one
        byte[] narrow = new byte[12 * 7 * 3];
        CaptionFont.draw(narrow, 12, "II", 0, 0, 1, 10);
        assertEquals(0, narrow[(0 * 12 + 7) * 3]); // the second I's top bar (x = 7) is not drawn
        CaptionFont.draw(narrow, 12, "II", 0, 0, 1, 11);
        assertEquals((byte) 255, narrow[(0 * 12 + 7) * 3]);
    }

    @Test
    void columnsUnderACaptionRow() {
        byte[][] red = {fill(16, 8, 200)}, blue = {fill(16, 8, 50)};
        SampleMedia grid = SampleGrid.compose(List.of(new SampleMedia(16, 8, red), new SampleMedia(16, 8, blue)),
                List.of("A", "B"));
        // scale max(1, 16/160) = 1: a 12-row caption (11 rounded up to even), then the two 16×8 columns
        assertEquals(32, grid.width());
        assertEquals(12 + 8, grid.height());
        byte[] f = grid.frames()[0];
        assertEquals((byte) 200, f[((12 + 3) * 32 + 5) * 3]);
        assertEquals((byte) 50, f[((12 + 3) * 32 + 16 + 5) * 3]);
        // "A" from (2, 2): its top row .###. lights x = 3..5; "B" from (18, 2): ####. lights x = 18..21
        assertEquals((byte) 255, f[(2 * 32 + 3) * 3]);
        assertEquals(0, f[(2 * 32 + 2) * 3]);
        assertEquals((byte) 255, f[(2 * 32 + 18) * 3]);
        var e = assertThrows(IllegalArgumentException.class, () -> SampleGrid.compose(
                List.of(new SampleMedia(16, 8, red), new SampleMedia(8, 8, new byte[][] {fill(8, 8, 1)})), List.of("A", "B")));
        assertTrue(e.getMessage().startsWith("SampleGrid: columns differ in size; got 8×8×1 beside 16×8×1"), e.getMessage());
    }

    private static byte[] fill(int w, int h, int v) {
        byte[] b = new byte[w * h * 3];
        java.util.Arrays.fill(b, (byte) v);
        return b;
    }
}
