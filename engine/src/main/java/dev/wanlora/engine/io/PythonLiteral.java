package dev.wanlora.engine.io;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The two Python conventions musubi's flags and metadata rely on: {@code ast.literal_eval} of a value such as
 * {@code --optimizer_args betas=(0.9,0.99)}, and {@code str()} of the result, which musubi writes into
 * {@code ss_*} metadata ({@code ss_learning_rate "0.0002"}, {@code ss_optimizer "...AdamW8bit(weight_decay=0.01,betas=(0.9, 0.99))"}).
 *
 * <p>Supported literals: int (decimal, 0x/0o/0b, underscores) → {@link Long}; float (incl. 1e-8, .5)
 * → {@link Double}; True/False → {@link Boolean}; None → {@link #NONE}; '…'/"…" strings with simple escapes →
 * {@link String}; tuples "(a, b)" and bare "a, b" → {@link Tuple}; lists "[a, b]" → {@link List}; unary +/−.
 */
public final class PythonLiteral {
    private PythonLiteral() {}

    /** Python's None. */
    public enum None { NONE }

    public static final None NONE = None.NONE;

    /** A Python tuple (str() prints it with parentheses, and a trailing comma when it has one element). */
    public record Tuple(List<Object> items) {
        public Tuple {
            items = List.copyOf(items);
        }
    }

    /** ast.literal_eval(text) for the supported literals; anything else throws IllegalArgumentException naming the text. */
    public static Object parse(String text) {
        Parser p = new Parser(text);
        p.skipSpace();
        Object first = p.value();
        p.skipSpace();
        if (p.peek() == ',') { // a bare tuple: "0.9, 0.999"
            List<Object> items = new ArrayList<>();
            items.add(first);
            while (p.peek() == ',') {
                p.pos++;
                p.skipSpace();
                if (p.atEnd()) break;
                items.add(p.value());
                p.skipSpace();
            }
            first = new Tuple(items);
        }
        if (!p.atEnd()) throw p.error("unexpected text");
        return first;
    }

    /** Python's str() of a parsed value (and of Java numbers, booleans and strings). */
    public static String str(Object value) {
        return switch (value) {
            case None n -> "None";
            case Boolean b -> b ? "True" : "False";
            case Double d -> str(d.doubleValue());
            case Float f -> str(f.doubleValue());
            case Long l -> Long.toString(l);
            case Integer i -> Integer.toString(i);
            case String s -> s;
            case Tuple t -> t.items().size() == 1 ? "(" + repr(t.items().getFirst()) + ",)" : "(" + join(t.items()) + ")";
            case List<?> l -> "[" + join(l) + "]";
            default -> throw new IllegalArgumentException("PythonLiteral.str: unsupported value type " + value.getClass().getName());
        };
    }

    /**
     * Python's repr(float) = str(float): the shortest digits that round-trip, in positional form when the decimal
     * exponent is in [−4, 16) ("0.0001", "100.0") and in scientific form otherwise ("1e-05", "1e+16", "2.5e-08").
     */
    public static String str(double x) {
        if (Double.isNaN(x)) return "nan";
        if (Double.isInfinite(x)) return x > 0 ? "inf" : "-inf";
        if (x == 0) return (1 / x < 0) ? "-0.0" : "0.0";
        // Double.toString gives the shortest round-trip digits (JDK 19+); BigDecimal exposes them and the exponent
        BigDecimal bd = new BigDecimal(Double.toString(Math.abs(x))).stripTrailingZeros();
        String digits = bd.unscaledValue().toString();
        int decpt = digits.length() - bd.scale(); // value = 0.digits × 10^decpt
        String sign = x < 0 ? "-" : "";
        if (decpt > -4 && decpt <= 16) {
            if (decpt <= 0) return sign + "0." + "0".repeat(-decpt) + digits;
            if (decpt >= digits.length()) return sign + digits + "0".repeat(decpt - digits.length()) + ".0";
            return sign + digits.substring(0, decpt) + "." + digits.substring(decpt);
        }
        int exponent = decpt - 1;
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return sign + mantissa + "e" + (exponent < 0 ? "-" : "+") + String.format(Locale.ROOT, "%02d", Math.abs(exponent));
    }

    private static String join(List<?> items) {
        StringBuilder sb = new StringBuilder();
        for (Object o : items) {
            if (!sb.isEmpty()) sb.append(", ");
            sb.append(repr(o));
        }
        return sb.toString();
    }

    /** repr() inside containers: strings are quoted, everything else as str(). */
    private static String repr(Object o) {
        return o instanceof String s ? "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'" : str(o);
    }

    private static final class Parser {
        final String text;
        int pos;

        Parser(String text) {
            this.text = text;
        }

        boolean atEnd() {
            return pos >= text.length();
        }

        char peek() {
            return atEnd() ? '\0' : text.charAt(pos);
        }

        void skipSpace() {
            while (!atEnd() && Character.isWhitespace(peek())) pos++;
        }

        IllegalArgumentException error(String what) {
            return new IllegalArgumentException("not a Python literal (" + what + " at position " + pos + "); got '"
                    + text + "', expected a number, True/False/None, a quoted string, or a tuple/list of those");
        }

        Object value() {
            skipSpace();
            char c = peek();
            if (c == '(' || c == '[') return sequence(c);
            if (c == '\'' || c == '"') return string(c);
            if (c == '-' || c == '+') {
                pos++;
                Object v = value();
                if (c == '+') return v;
                return switch (v) {
                    case Long l -> -l;
                    case Double d -> -d;
                    default -> throw error("unary minus on a non-number");
                };
            }
            if (Character.isLetter(c)) {
                int start = pos;
                while (!atEnd() && Character.isLetterOrDigit(peek())) pos++;
                return switch (text.substring(start, pos)) {
                    case "True" -> Boolean.TRUE;
                    case "False" -> Boolean.FALSE;
                    case "None" -> NONE;
                    default -> throw error("unknown name '" + text.substring(start, pos) + "'");
                };
            }
            return number();
        }

        Object sequence(char open) {
            char close = open == '(' ? ')' : ']';
            pos++;
            List<Object> items = new ArrayList<>();
            boolean sawComma = false;
            skipSpace();
            while (peek() != close) {
                if (atEnd()) throw error("missing '" + close + "'");
                items.add(value());
                skipSpace();
                if (peek() == ',') {
                    sawComma = true;
                    pos++;
                    skipSpace();
                } else if (peek() != close) {
                    throw error("expected ',' or '" + close + "'");
                }
            }
            pos++;
            if (open == '[') return List.copyOf(items);
            if (items.size() == 1 && !sawComma) return items.getFirst(); // "(0.9)" is just 0.9
            return new Tuple(items);
        }

        String string(char quote) {
            pos++;
            StringBuilder sb = new StringBuilder();
            while (peek() != quote) {
                if (atEnd()) throw error("unterminated string");
                char c = text.charAt(pos++);
                if (c == '\\' && !atEnd()) {
                    char e = text.charAt(pos++);
                    sb.append(switch (e) {
                        case 'n' -> '\n';
                        case 't' -> '\t';
                        case 'r' -> '\r';
                        default -> e; // \\, \', \"
                    });
                } else {
                    sb.append(c);
                }
            }
            pos++;
            return sb.toString();
        }

        Object number() {
            int start = pos;
            while (!atEnd() && (Character.isLetterOrDigit(peek()) || peek() == '.' || peek() == '_'
                    || ((peek() == '-' || peek() == '+') && pos > start && "eE".indexOf(text.charAt(pos - 1)) >= 0
                        && !text.substring(start, pos).toLowerCase(Locale.ROOT).startsWith("0x")))) {
                pos++;
            }
            String token = text.substring(start, pos);
            if (token.isEmpty()) throw error("expected a value");
            if (token.startsWith("_") || token.endsWith("_") || token.contains("__")) throw error("misplaced '_'");
            String t = token.replace("_", "");
            try {
                String lower = t.toLowerCase(Locale.ROOT);
                if (lower.startsWith("0x")) return Long.parseLong(t.substring(2), 16);
                if (lower.startsWith("0o")) return Long.parseLong(t.substring(2), 8);
                if (lower.startsWith("0b")) return Long.parseLong(t.substring(2), 2);
                if (t.matches("[0-9]+")) {
                    if (t.length() > 1 && t.startsWith("0") && !t.matches("0+")) throw error("leading zero in '" + token + "'");
                    return Long.parseLong(t);
                }
                if (t.matches("([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?")) return Double.parseDouble(t);
            } catch (NumberFormatException e) {
                throw error("bad number '" + token + "'");
            }
            throw error("bad number '" + token + "'");
        }
    }
}
