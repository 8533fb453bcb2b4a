package dev.wanlora.models.umt5;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.Charset;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Wan's prompt cleaning ({@code clean="whitespace"}, spec §10.2; musubi {@code wan/modules/tokenizers.py}):
 * {@code ftfy.fix_text}, {@code html.unescape} twice, strip, collapse every run of Unicode whitespace to one space.
 *
 * <p>{@link #fixText} ports the parts of ftfy 6.3's default {@code fix_text} that change what users type, in ftfy's
 * order: HTML unescape once when the text has no '<'; mojibake (a text that is entirely sloppy-cp1252 bytes and decodes
 * as UTF-8 is replaced by the decoding); C1 controls to their cp1252 characters; Latin ligatures expanded; full-width
 * and half-width forms to NFKC; curly quotes straightened; line breaks (CR LF, CR, U+2028/2029, U+0085) to '\n';
 * control characters removed; NFC. ftfy's more careful mojibake scoring (partial fixes inside mixed text) is not
 * ported: such text is left as it is. {@link #htmlUnescape} knows the numeric forms and the named entities listed in
 * {@link #ENTITIES} (the XML five, Latin-1 and common punctuation), not all 2231 of HTML5.
 */
public final class TextCleaning {
    private TextCleaning() {}

    /** Runs of Unicode White_Space (the {@code regex} module's \s). */
    private static final Pattern WHITESPACE = Pattern.compile(
            "[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]+");
    private static final Pattern ENTITY = Pattern.compile("&(#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);");
    private static final Charset CP1252 = Charset.forName("windows-1252");

    /** Named entities {@link #htmlUnescape} knows (name → text). */
    static final Map<String, String> ENTITIES = entities();

    /** Wan's full cleaning: fixText, unescape twice, strip, whitespace runs → one space. */
    public static String clean(String text) {
        String t = htmlUnescape(htmlUnescape(fixText(text)));
        return WHITESPACE.matcher(t.strip()).replaceAll(" ").strip();
    }

    /** The ported subset of {@code ftfy.fix_text} (see the class comment). */
    public static String fixText(String text) {
        String t = text;
        if (t.indexOf('<') < 0) t = htmlUnescape(t);
        t = fixMojibake(t);
        t = fixC1Controls(t);
        StringBuilder b = new StringBuilder(t.length());
        t.codePoints().forEach(cp -> {
            if (isLigature(cp) || isWidthForm(cp)) {
                b.append(Normalizer.normalize(Character.toString(cp), Normalizer.Form.NFKC));
            } else if (cp == 0x02bc || cp >= 0x2018 && cp <= 0x201b) {
                b.append('\'');
            } else if (cp >= 0x201c && cp <= 0x201f) {
                b.append('"');
            } else {
                b.appendCodePoint(cp);
            }
        });
        t = b.toString().replace("\r\n", "\n").replace('\r', '\n').replace('\u2028', '\n').replace('\u2029', '\n')
                .replace('\u0085', '\n');
        StringBuilder c = new StringBuilder(t.length());
        t.codePoints().filter(cp -> !isControl(cp)).forEach(c::appendCodePoint);
        return Normalizer.normalize(c.toString(), Normalizer.Form.NFC);
    }

    /** Python's {@code html.unescape} for numeric references and the entities of {@link #ENTITIES}. */
    public static String htmlUnescape(String text) {
        if (text.indexOf('&') < 0) return text;
        Matcher m = ENTITY.matcher(text);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String name = m.group(1), rep;
            if (name.startsWith("#")) {
                boolean hex = name.length() > 1 && (name.charAt(1) == 'x' || name.charAt(1) == 'X');
                long cp;
                try {
                    cp = Long.parseLong(hex ? name.substring(2) : name.substring(1), hex ? 16 : 10);
                } catch (NumberFormatException e) {
                    cp = 0x110000;
                }
                // html.unescape: invalid or surrogate code points become U+FFFD; 0x80–0x9F use cp1252.
                if (cp >= 0x80 && cp <= 0x9f) rep = new String(new byte[] {(byte) cp}, CP1252);
                else if (cp == 0 || cp > 0x10ffff || cp >= 0xd800 && cp <= 0xdfff) rep = "\ufffd";
                else rep = Character.toString((int) cp);
            } else {
                rep = ENTITIES.get(name);
                if (rep == null) rep = m.group();
            }
            m.appendReplacement(out, Matcher.quoteReplacement(rep));
        }
        m.appendTail(out);
        return out.toString();
    }

    /**
     * A text whose every character is a byte of "sloppy" windows-1252 (cp1252, with the five bytes cp1252 leaves
     * undefined and the C1 controls standing for themselves, as ftfy's sloppy-windows-1252) and whose bytes are valid
     * UTF-8 with at least one multi-byte sequence: the UTF-8 decoding.
     */
    private static String fixMojibake(String text) {
        byte[] bytes = new byte[text.length()];
        boolean hasHigh = false;
        for (int i = 0; i < text.length(); i++) {
            char ch = text.charAt(i);
            int b = ch <= 0xff ? ch : CP1252_BYTES.getOrDefault(ch, -1);
            if (b < 0) return text;
            bytes[i] = (byte) b;
            hasHigh |= b >= 0x80;
        }
        if (!hasHigh) return text;
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            return text;
        }
    }

    /** The characters cp1252 puts at bytes 0x80–0x9F, to their byte. */
    private static final Map<Character, Integer> CP1252_BYTES = cp1252Bytes();

    private static Map<Character, Integer> cp1252Bytes() {
        Map<Character, Integer> m = new java.util.HashMap<>();
        for (int b = 0x80; b <= 0x9f; b++) {
            String s = new String(new byte[] {(byte) b}, CP1252);
            if (s.length() == 1 && s.charAt(0) != '\ufffd' && s.charAt(0) != b) m.put(s.charAt(0), b);
        }
        return Map.copyOf(m);
    }

    /** U+0080–U+009F → the cp1252 character of that byte (ftfy's fix_c1_controls); unmapped ones stay. */
    private static String fixC1Controls(String text) {
        StringBuilder b = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char ch = text.charAt(i);
            if (ch >= 0x80 && ch <= 0x9f) {
                String mapped = new String(new byte[] {(byte) ch}, CP1252);
                b.append(mapped.equals("\ufffd") ? String.valueOf(ch) : mapped);
            } else {
                b.append(ch);
            }
        }
        return b.toString();
    }

    /** ftfy's LIGATURES: Ĳ ĳ ŉ Ǆ–ǌ Ǳ–ǳ ﬀ–ﬆ. */
    private static boolean isLigature(int cp) {
        return cp == 0x0132 || cp == 0x0133 || cp == 0x0149 || cp >= 0x01c4 && cp <= 0x01cc || cp >= 0x01f1 && cp <= 0x01f3
                || cp >= 0xfb00 && cp <= 0xfb06;
    }

    /** ftfy's WIDTH_MAP: full-width ASCII (U+FF01–FF5E), the ideographic space and the half-width forms. */
    private static boolean isWidthForm(int cp) {
        return cp == 0x3000 || cp >= 0xff01 && cp <= 0xffef;
    }

    /** ftfy's CONTROL_CHARS (remove_control_chars): C0 except \t \n \f \r, DEL, bidi/format and tag characters. */
    private static boolean isControl(int cp) {
        return cp <= 0x08 || cp == 0x0b || cp >= 0x0e && cp <= 0x1f || cp == 0x7f || cp >= 0x206a && cp <= 0x206f
                || cp == 0xfeff || cp >= 0xfff9 && cp <= 0xfffc || cp >= 0x1d173 && cp <= 0x1d17a
                || cp >= 0xe0000 && cp <= 0xe007f;
    }

    private static Map<String, String> entities() {
        Map<String, String> m = new java.util.HashMap<>(Map.of("amp", "&", "lt", "<", "gt", ">", "quot", "\"", "apos", "'",
                "nbsp", "\u00a0", "ndash", "\u2013", "mdash", "\u2014", "hellip", "\u2026", "bull", "\u2022"));
        m.putAll(Map.of("lsquo", "\u2018", "rsquo", "\u2019", "ldquo", "\u201c", "rdquo", "\u201d", "euro", "\u20ac",
                "trade", "\u2122", "copy", "\u00a9", "reg", "\u00ae", "deg", "\u00b0", "times", "\u00d7"));
        // Latin-1 letters: the HTML names of U+00C0–U+00FF.
        String[] latin = {"Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute",
                "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute", "Ocirc", "Otilde",
                "Ouml", "times", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig", "agrave",
                "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc", "euml",
                "igrave", "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute", "ocirc", "otilde", "ouml",
                "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml", "yacute", "thorn", "yuml"};
        for (int i = 0; i < latin.length; i++) m.put(latin[i], Character.toString(0xc0 + i));
        return Map.copyOf(m);
    }
}
