package dev.wanlora.pipeline.sample;

import java.util.HashMap;
import java.util.Map;

/**
 * A 5×7 pixel font for the grid's caption row (upper-case letters, digits and the punctuation of file names), drawn
 * into RGB frames directly: samples need no {@code java.desktop} (AWT fonts), which the GPU bundle's runtime leaves
 * out. Lower case is drawn as upper case; any other character as '?'.
 */
final class CaptionFont {
    private CaptionFont() {}

    static final int GLYPH_WIDTH = 5, GLYPH_HEIGHT = 7;
    /** Pixels from one character's left edge to the next's, before scaling. */
    static final int ADVANCE = GLYPH_WIDTH + 1;

    /** Each line: the character, then its 7 rows of 5 pixels ('#' on). */
    private static final String GLYPHS = """
            A .###. #...# #...# ##### #...# #...# #...#
            B ####. #...# #...# ####. #...# #...# ####.
            C .###. #...# #.... #.... #.... #...# .###.
            D ####. #...# #...# #...# #...# #...# ####.
            E ##### #.... #.... ####. #.... #.... #####
            F ##### #.... #.... ####. #.... #.... #....
            G .###. #...# #.... #.### #...# #...# .####
            H #...# #...# #...# ##### #...# #...# #...#
            I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
            J ..### ...#. ...#. ...#. ...#. #..#. .##..
            K #...# #..#. #.#.. ##... #.#.. #..#. #...#
            L #.... #.... #.... #.... #.... #.... #####
            M #...# ##.## #.#.# #.#.# #...# #...# #...#
            N #...# #...# ##..# #.#.# #..## #...# #...#
            O .###. #...# #...# #...# #...# #...# .###.
            P ####. #...# #...# ####. #.... #.... #....
            Q .###. #...# #...# #...# #.#.# #..#. .##.#
            R ####. #...# #...# ####. #.#.. #..#. #...#
            S .#### #.... #.... .###. ....# ....# ####.
            T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
            U #...# #...# #...# #...# #...# #...# .###.
            V #...# #...# #...# #...# #...# .#.#. ..#..
            W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.
            X #...# #...# .#.#. ..#.. .#.#. #...# #...#
            Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..
            Z ##### ....# ...#. ..#.. .#... #.... #####
            0 .###. #...# #..## #.#.# ##..# #...# .###.
            1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.
            2 .###. #...# ....# ...#. ..#.. .#... #####
            3 ####. ....# ....# .###. ....# ....# ####.
            4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.
            5 ##### #.... ####. ....# ....# #...# .###.
            6 ..##. .#... #.... ####. #...# #...# .###.
            7 ##### ....# ...#. ..#.. .#... .#... .#...
            8 .###. #...# #...# .###. #...# #...# .###.
            9 .###. #...# #...# .#### ....# ...#. .##..
            . ..... ..... ..... ..... ..... .##.. .##..
            - ..... ..... ..... ##### ..... ..... .....
            _ ..... ..... ..... ..... ..... ..... #####
            : ..... .##.. .##.. ..... .##.. .##.. .....
            ( ...#. ..#.. .#... .#... .#... ..#.. ...#.
            ) .#... ..#.. ...#. ...#. ...#. ..#.. .#...
            + ..... ..#.. ..#.. ##### ..#.. ..#.. .....
            ? .###. #...# ....# ...#. ..#.. ..... ..#..
            """;

    /** Rows of each glyph as bit masks, bit 4 the leftmost pixel. */
    private static final Map<Character, int[]> ROWS = parse();

    private static Map<Character, int[]> parse() {
        Map<Character, int[]> m = new HashMap<>();
        for (String line : GLYPHS.strip().split("\n")) {
            String[] p = line.strip().split(" ");
            int[] rows = new int[GLYPH_HEIGHT];
            for (int r = 0; r < GLYPH_HEIGHT; r++) {
                for (int x = 0; x < GLYPH_WIDTH; x++) if (p[1 + r].charAt(x) == '#') rows[r] |= 1 << (GLYPH_WIDTH - 1 - x);
            }
            m.put(p[0].charAt(0), rows);
        }
        return m;
    }

    /** Whether pixel (x, y) of character c's glyph is on (0 ≤ x &lt; 5, 0 ≤ y &lt; 7); a space is blank. */
    static boolean isOn(char c, int x, int y) {
        if (c == ' ') return false;
        int[] rows = ROWS.getOrDefault(Character.toUpperCase(c), ROWS.get('?'));
        return (rows[y] >> (GLYPH_WIDTH - 1 - x) & 1) != 0;
    }

    /**
     * Draws {@code text} in white into an RGB frame of {@code frameWidth} pixels per row, from (left, top), each font
     * pixel a {@code scale}×{@code scale} square, clipped to {@code maxWidth} pixels (the text is cut to the characters
     * that fit).
     */
    static void draw(byte[] rgb, int frameWidth, String text, int left, int top, int scale, int maxWidth) {
        int fits = Math.max(0, (maxWidth + scale) / (ADVANCE * scale));
        String shown = text.length() <= fits ? text : text.substring(0, fits);
        for (int i = 0; i < shown.length(); i++) {
            char c = shown.charAt(i);
            for (int y = 0; y < GLYPH_HEIGHT * scale; y++) {
                for (int x = 0; x < GLYPH_WIDTH * scale; x++) {
                    if (!isOn(c, x / scale, y / scale)) continue;
                    int at = ((top + y) * frameWidth + left + i * ADVANCE * scale + x) * 3;
                    rgb[at] = rgb[at + 1] = rgb[at + 2] = (byte) 255;
                }
            }
        }
    }
}
