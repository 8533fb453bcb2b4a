package dev.wanlora.engine.io;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PythonLiteralTest {

    @Test
    void parsesWhatLiteralEvalParses() {
        assertEquals(0.01, PythonLiteral.parse("0.01"));
        assertEquals(1e-8, PythonLiteral.parse("1e-8"));
        assertEquals(0.5, PythonLiteral.parse(".5"));
        assertEquals(4096L, PythonLiteral.parse("4096"));
        assertEquals(1000L, PythonLiteral.parse("1_000"));
        assertEquals(255L, PythonLiteral.parse("0xff"));
        assertEquals(-3L, PythonLiteral.parse("-3"));
        assertEquals(Boolean.TRUE, PythonLiteral.parse("True"));
        assertEquals(PythonLiteral.NONE, PythonLiteral.parse("None"));
        assertEquals("adam", PythonLiteral.parse("'adam'"));
        assertEquals(new PythonLiteral.Tuple(List.of(0.9, 0.99)), PythonLiteral.parse("(0.9,0.99)"));
        assertEquals(new PythonLiteral.Tuple(List.of(0.9, 0.999)), PythonLiteral.parse("0.9,0.999")); // bare tuple
        assertEquals(List.of(1L, 2.5), PythonLiteral.parse("[1, 2.5]"));
        assertEquals(0.9, PythonLiteral.parse("(0.9)"), "parentheses alone make no tuple");
        assertEquals(new PythonLiteral.Tuple(List.of(0.9)), PythonLiteral.parse("(0.9,)"));
    }

    @Test
    void rejectsNonLiterals() {
        for (String bad : List.of("abc", "0.9.1", "(1,", "1+", "'open", "007", "1__0")) {
            var e = assertThrows(IllegalArgumentException.class, () -> PythonLiteral.parse(bad), bad);
            assertTrue(e.getMessage().startsWith("not a Python literal"), e.getMessage());
        }
    }

    @Test
    void strMatchesPythonRepr() {
        // values checked against CPython 3: str(x)
        assertEquals("0.0002", PythonLiteral.str(2e-4));
        assertEquals("0.0001", PythonLiteral.str(1e-4));
        assertEquals("1e-05", PythonLiteral.str(1e-5));
        assertEquals("5e-05", PythonLiteral.str(5e-5));
        assertEquals("1.5e-05", PythonLiteral.str(1.5e-5));
        assertEquals("1e-08", PythonLiteral.str(1e-8));
        assertEquals("1.0", PythonLiteral.str(1.0));
        assertEquals("32.0", PythonLiteral.str(32.0));
        assertEquals("3.0", PythonLiteral.str(3.0));
        assertEquals("0.1", PythonLiteral.str(0.1));
        assertEquals("1000000000000000.0", PythonLiteral.str(1e15));
        assertEquals("1e+16", PythonLiteral.str(1e16));
        assertEquals("-2.5", PythonLiteral.str(-2.5));
        assertEquals("1.29", PythonLiteral.str(1.29));
        assertEquals("1700000000.123456", PythonLiteral.str(1700000000.123456));
        assertEquals("(0.9, 0.99)", PythonLiteral.str(PythonLiteral.parse("(0.9,0.99)")));
        assertEquals("(0.9,)", PythonLiteral.str(PythonLiteral.parse("(0.9,)")));
        assertEquals("['a', 1]", PythonLiteral.str(PythonLiteral.parse("['a',1]")));
        assertEquals("True", PythonLiteral.str(true));
        assertEquals("None", PythonLiteral.str(PythonLiteral.NONE));
    }
}
