package dev.wanlora.models.umt5;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Cleaning beyond the golden's 17 cases (those run in UmT5GoldenTest): what ftfy 6.3 leaves alone must stay, and the
 * entity forms Python's html.unescape decodes.
 */
class TextCleaningTest {

    @Test
    void textThatIsNotMojibakeStays() {
        // Latin-1 letters followed by ASCII are not valid UTF-8 as bytes: no "fix".
        assertEquals("Une forêt, café crème", TextCleaning.clean("Une forêt, café crème"));
        assertEquals("naïve façade", TextCleaning.clean("naïve façade"));
        assertEquals("plain ascii", TextCleaning.clean("plain ascii"));
    }

    @Test
    void mojibakeOfAWholeTextIsRepaired() {
        assertEquals("déjà vu", TextCleaning.clean("dÃ©jÃ\u00a0 vu")); // à = C3 A0: Ã and a no-break space
        // “ ” = E2 80 9C / E2 80 9D; cp1252 has no character at 0x9D, so that byte shows as U+009D (sloppy cp1252).
        assertEquals("\"smart\" quotes", TextCleaning.clean("â€œsmartâ€\u009d quotes"));
    }

    @Test
    void entities() {
        assertEquals("A & B", TextCleaning.htmlUnescape("A &amp; B"));
        assertEquals("é é é", TextCleaning.htmlUnescape("&eacute; &#233; &#xe9;"));
        assertEquals("€", TextCleaning.htmlUnescape("&#128;")); // 0x80–0x9F: the cp1252 character
        assertEquals("&unknown;", TextCleaning.htmlUnescape("&unknown;"));
        assertEquals("x &amp; y", TextCleaning.htmlUnescape("x &amp;amp; y"));
        assertEquals("x & y", TextCleaning.clean("x &amp;amp; y")); // unescaped twice
    }

    @Test
    void whitespaceAndControls() {
        assertEquals("a b c", TextCleaning.clean(" a\u00a0\u2003b\t\n\u3000c\r\n"));
        assertEquals("ab", TextCleaning.clean("a\u0000\u000bb\ufeff"));
        assertEquals("fine", TextCleaning.clean("ﬁne"));
    }
}
