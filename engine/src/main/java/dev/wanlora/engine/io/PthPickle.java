package dev.wanlora.engine.io;

import dev.wanlora.engine.tensor.DType;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A pickle interpreter for {@code data.pkl} of a torch state dict that never runs code: a {@code GLOBAL} is looked up
 * in a fixed list of the callables a state dict needs and any other is refused with one line naming it. Values are
 * plain Java objects (String, Long, BigInteger, Double, Boolean, {@link Tuple}, List, Map); the only call results are
 * an empty OrderedDict and {@link TensorRef}s.
 *
 * <p>Opcodes are those of protocols 0–5 that {@code pickle.dump} writes for these values (Lib/pickle.py, CPython
 * 3.12): framing, memo, ints, floats, strings, bytes, tuples, lists, dicts, MARK, REDUCE, BUILD (only the attribute
 * dict torch puts on state dicts, {@code _metadata}, which is ignored) and BINPERSID (torch's storage references).
 */
final class PthPickle {

    /** A tensor as {@code _rebuild_tensor_v2(storage, offset, size, stride, …)} describes it; offset in elements. */
    record TensorRef(String storageKey, DType dtype, long storageOffset, long[] size, long[] stride) {}

    /** A Python tuple (kept apart from lists only for error messages). */
    record Tuple(List<Object> items) {}

    private record Global(String module, String name) {
        String qualified() { return module + "." + name; }
    }

    private record StorageRef(String key, DType dtype) {}

    private static final Object NONE = new Object() {
        @Override public String toString() { return "None"; }
    };
    private static final Object MARK = new Object();

    /** torch's typed storage classes (torch/storage.py, _LegacyStorage subclasses) and their element types. */
    private static final Map<String, DType> STORAGES = Map.ofEntries(
            Map.entry("FloatStorage", DType.F32), Map.entry("DoubleStorage", DType.F64),
            Map.entry("HalfStorage", DType.F16), Map.entry("BFloat16Storage", DType.BF16),
            Map.entry("Float8_e4m3fnStorage", DType.F8_E4M3), Map.entry("Float8_e5m2Storage", DType.F8_E5M2),
            Map.entry("LongStorage", DType.I64), Map.entry("IntStorage", DType.I32),
            Map.entry("ShortStorage", DType.I16), Map.entry("CharStorage", DType.I8),
            Map.entry("ByteStorage", DType.U8), Map.entry("BoolStorage", DType.BOOL));

    private final Path file;
    private final ByteBuffer in;
    private final Deque<Object> stack = new ArrayDeque<>();
    private final Deque<Deque<Object>> marks = new ArrayDeque<>();
    private final Map<Long, Object> memo = new HashMap<>();

    private PthPickle(Path file, byte[] pickle) {
        this.file = file;
        this.in = ByteBuffer.wrap(pickle).order(ByteOrder.LITTLE_ENDIAN);
    }

    /**
     * The tensors of the pickled state dict, by key in file order. Nested dicts (a checkpoint {@code {"model": {…}}})
     * are flattened with '.'; values that are not tensors (an epoch number) are skipped.
     */
    static Map<String, TensorRef> stateDict(Path file, byte[] pickle) {
        if (pickle == null) {
            throw new PthException(file + ": the zip has no data.pkl. hint: re-save it with torch.save(state_dict, path)");
        }
        Object root = new PthPickle(file, pickle).run();
        if (!(root instanceof Map<?, ?> map)) {
            throw new PthException(file + ": data.pkl holds " + describe(root) + ", expected a state dict (a dict of"
                    + " tensors). hint: save model.state_dict(), not the model object");
        }
        Map<String, TensorRef> out = new LinkedHashMap<>();
        flatten(file, "", map, out);
        return out;
    }

    private static void flatten(Path file, String prefix, Map<?, ?> map, Map<String, TensorRef> out) {
        for (Map.Entry<?, ?> e : map.entrySet()) {
            String key = prefix + e.getKey();
            if (e.getValue() instanceof TensorRef t) {
                if (out.put(key, t) != null) {
                    throw new PthException(file + ": key " + SafeTensors.quote(key) + " appears twice. hint: the file is corrupt");
                }
            } else if (e.getValue() instanceof Map<?, ?> inner) {
                flatten(file, key + ".", inner, out);
            }
        }
    }

    private Object run() {
        try {
            while (true) {
                int op = in.get() & 0xff;
                switch (op) {
                    case 0x80 -> in.get(); // PROTO n
                    case 0x95 -> in.getLong(); // FRAME length: frames are only a read-ahead hint
                    case '.' -> { // STOP
                        if (stack.size() != 1 || !marks.isEmpty()) throw corrupt("STOP with " + stack.size() + " values on the stack");
                        return stack.pop();
                    }
                    case '(' -> { marks.push(new ArrayDeque<>(stack)); stack.clear(); }
                    case 'N' -> stack.push(NONE);
                    case 0x88 -> stack.push(Boolean.TRUE);
                    case 0x89 -> stack.push(Boolean.FALSE);
                    case 'J' -> stack.push((long) in.getInt());
                    case 'K' -> stack.push((long) (in.get() & 0xff));
                    case 'M' -> stack.push((long) (in.getShort() & 0xffff));
                    case 0x8a -> stack.push(longValue(bytes(in.get() & 0xff))); // LONG1
                    case 0x8b -> stack.push(longValue(bytes(length(in.getInt() & 0xffffffffL)))); // LONG4
                    case 'G' -> stack.push(Double.longBitsToDouble(Long.reverseBytes(in.getLong()))); // BINFLOAT, big-endian
                    case 'X' -> stack.push(utf8(bytes(length(in.getInt() & 0xffffffffL)))); // BINUNICODE
                    case 0x8c -> stack.push(utf8(bytes(in.get() & 0xff))); // SHORT_BINUNICODE
                    case 0x8d -> stack.push(utf8(bytes(length(in.getLong())))); // BINUNICODE8
                    case 'T' -> stack.push(new String(bytes(length(in.getInt() & 0xffffffffL)), StandardCharsets.ISO_8859_1));
                    case 'U' -> stack.push(new String(bytes(in.get() & 0xff), StandardCharsets.ISO_8859_1));
                    case 'B' -> stack.push(bytes(length(in.getInt() & 0xffffffffL))); // BINBYTES
                    case 'C' -> stack.push(bytes(in.get() & 0xff)); // SHORT_BINBYTES
                    case ')' -> stack.push(new Tuple(List.of()));
                    case 't' -> stack.push(new Tuple(popMark()));
                    case 0x85 -> stack.push(new Tuple(popN(1)));
                    case 0x86 -> stack.push(new Tuple(popN(2)));
                    case 0x87 -> stack.push(new Tuple(popN(3)));
                    case ']' -> stack.push(new ArrayList<>());
                    case 'l' -> stack.push(new ArrayList<>(popMark()));
                    case 'a' -> { Object v = pop(); list(peek()).add(v); }
                    case 'e' -> { List<Object> items = popMark(); list(peek()).addAll(items); }
                    case '}' -> stack.push(new LinkedHashMap<>());
                    case 'd' -> { List<Object> items = popMark(); Map<Object, Object> m = new LinkedHashMap<>(); putAll(m, items); stack.push(m); }
                    case 's' -> { Object v = pop(), k = pop(); dict(peek()).put(key(k), v); }
                    case 'u' -> { List<Object> items = popMark(); putAll(dict(peek()), items); }
                    case 'q' -> memo.put((long) (in.get() & 0xff), peek()); // BINPUT
                    case 'r' -> memo.put(in.getInt() & 0xffffffffL, peek()); // LONG_BINPUT
                    case 0x94 -> memo.put((long) memo.size(), peek()); // MEMOIZE
                    case 'h' -> stack.push(memoGet(in.get() & 0xff)); // BINGET
                    case 'j' -> stack.push(memoGet(in.getInt() & 0xffffffffL)); // LONG_BINGET
                    case 'c' -> stack.push(global(line(), line())); // GLOBAL module\nname\n
                    case 0x93 -> { Object name = pop(), module = pop(); stack.push(global(text(module), text(name))); } // STACK_GLOBAL
                    case 'Q' -> stack.push(persistent(pop())); // BINPERSID
                    case 'R' -> { Object args = pop(), callable = pop(); stack.push(reduce(callable, args)); }
                    case 'b' -> build(pop(), peek());
                    default -> throw new PthException(file + ": data.pkl uses pickle opcode 0x" + Integer.toHexString(op)
                            + " at byte " + (in.position() - 1) + ", which a state dict does not need; refused (a .pth"
                            + " file can carry code, and wanlora never runs it). hint: save a plain state dict"
                            + " (torch.save(model.state_dict(), path))");
                }
            }
        } catch (java.nio.BufferUnderflowException e) {
            throw new PthException(file + ": data.pkl ends inside the pickle (" + in.limit() + " bytes)"
                    + ". hint: the file is truncated or corrupt; download or save it again");
        }
    }

    /** Refuses every global except the few a state dict is made of; see the class comment. */
    private Object global(String module, String name) {
        boolean isAllowed = module.equals("collections") && name.equals("OrderedDict")
                || module.equals("torch._utils") && (name.equals("_rebuild_tensor_v2") || name.equals("_rebuild_parameter"))
                || module.equals("torch") && STORAGES.containsKey(name);
        if (!isAllowed) {
            throw new PthException(file + ": data.pkl calls " + SafeTensors.oneLine(module + "." + name)
                    + ", which a state dict does not need; refused (a .pth file can carry code, and wanlora never runs"
                    + " it). hint: load it in Python you trust and save model.state_dict() or a .safetensors file");
        }
        return new Global(module, name);
    }

    /** torch's persistent id ('storage', storage class, key, location, numel) → the storage it names. */
    private Object persistent(Object pid) {
        if (pid instanceof Tuple(List<Object> t) && t.size() == 5 && "storage".equals(t.get(0))
                && t.get(1) instanceof Global g && g.module().equals("torch") && t.get(2) instanceof String key) {
            return new StorageRef(key, STORAGES.get(g.name()));
        }
        throw corrupt("persistent id " + describe(pid) + " is not a torch storage reference");
    }

    private Object reduce(Object callable, Object args) {
        if (!(callable instanceof Global g) || !(args instanceof Tuple(List<Object> a))) {
            throw corrupt("REDUCE of " + describe(callable) + " with " + describe(args));
        }
        switch (g.qualified()) {
            case "collections.OrderedDict" -> {
                if (!a.isEmpty()) throw corrupt("OrderedDict called with arguments");
                return new LinkedHashMap<>();
            }
            case "torch._utils._rebuild_parameter" -> { // (data, requires_grad, backward_hooks)
                if (a.isEmpty() || !(a.getFirst() instanceof TensorRef t)) throw corrupt("_rebuild_parameter without a tensor");
                return t;
            }
            case "torch._utils._rebuild_tensor_v2" -> { // (storage, storage_offset, size, stride, requires_grad, hooks[, metadata])
                if (a.size() < 4 || !(a.get(0) instanceof StorageRef s) || !(a.get(1) instanceof Long offset)) {
                    throw corrupt("_rebuild_tensor_v2 called with " + describe(args));
                }
                long[] size = longs(a.get(2)), stride = longs(a.get(3));
                if (size.length != stride.length) throw corrupt("_rebuild_tensor_v2 size and stride differ in rank");
                for (long d : size) if (d < 0) throw corrupt("_rebuild_tensor_v2 with a negative size");
                return new TensorRef(s.key(), s.dtype(), offset, size, stride);
            }
            default -> throw new PthException(file + ": data.pkl calls " + g.qualified()
                    + " as a function, which a state dict does not; refused. hint: save a plain state dict");
        }
    }

    /** BUILD: only a dict's attribute state (torch sets {@code _metadata} on state dicts), which we drop. */
    private void build(Object state, Object target) {
        if (target instanceof Map<?, ?> && (state instanceof Map<?, ?> || state == NONE)) return;
        if (target instanceof Map<?, ?> && state instanceof Tuple(List<Object> t) && t.size() == 2) return; // (dict, slots)
        throw new PthException(file + ": data.pkl sets the state of " + describe(target)
                + ", which a state dict does not need; refused. hint: save a plain state dict");
    }

    // ---------------------------------------------------------------- helpers

    private long[] longs(Object o) {
        if (!(o instanceof Tuple(List<Object> items))) throw corrupt("expected a tuple of ints, got " + describe(o));
        long[] out = new long[items.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(items.get(i) instanceof Long v)) throw corrupt("expected a tuple of ints, got " + describe(o));
            out[i] = v;
        }
        return out;
    }

    private Object key(Object k) {
        if (k instanceof String || k instanceof Long) return k;
        throw corrupt("dict key " + describe(k) + " is not a string");
    }

    private void putAll(Map<Object, Object> m, List<Object> items) {
        if (items.size() % 2 != 0) throw corrupt("odd number of dict items");
        for (int i = 0; i < items.size(); i += 2) m.put(key(items.get(i)), items.get(i + 1));
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> dict(Object o) {
        if (o instanceof Map<?, ?> m) return (Map<Object, Object>) m;
        throw corrupt("SETITEM on " + describe(o));
    }

    @SuppressWarnings("unchecked")
    private List<Object> list(Object o) {
        if (o instanceof ArrayList<?> l) return (List<Object>) l;
        throw corrupt("APPEND on " + describe(o));
    }

    private Object pop() {
        if (stack.isEmpty()) throw corrupt("pop from an empty stack");
        return stack.pop();
    }

    private Object peek() {
        if (stack.isEmpty()) throw corrupt("empty stack");
        return stack.peek();
    }

    private List<Object> popN(int n) {
        Object[] items = new Object[n];
        for (int i = n - 1; i >= 0; i--) items[i] = pop();
        return List.of(items);
    }

    /** The values pushed since the last MARK, oldest first; the stack returns to what it was before the MARK. */
    private List<Object> popMark() {
        if (marks.isEmpty()) throw corrupt("no MARK");
        List<Object> items = new ArrayList<>(stack);
        java.util.Collections.reverse(items);
        stack.clear();
        stack.addAll(marks.pop());
        return items;
    }

    private Object memoGet(long index) {
        Object o = memo.get(index);
        if (o == null) throw corrupt("memo entry " + index + " read before it was written");
        return o;
    }

    private byte[] bytes(int n) {
        byte[] b = new byte[n];
        in.get(b);
        return b;
    }

    private int length(long n) {
        if (n < 0 || n > in.remaining()) throw new java.nio.BufferUnderflowException();
        return (int) n;
    }

    private String line() {
        StringBuilder b = new StringBuilder();
        for (byte c = in.get(); c != '\n'; c = in.get()) b.append((char) (c & 0xff));
        return b.toString();
    }

    private String text(Object o) {
        if (o instanceof String s) return s;
        throw corrupt("STACK_GLOBAL with " + describe(o));
    }

    private static Object longValue(byte[] littleEndian) {
        byte[] big = new byte[Math.max(1, littleEndian.length)];
        for (int i = 0; i < littleEndian.length; i++) big[big.length - 1 - i] = littleEndian[i];
        BigInteger v = littleEndian.length == 0 ? BigInteger.ZERO : new BigInteger(big);
        return v.bitLength() < 64 ? (Object) v.longValue() : v;
    }

    private static String utf8(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    private PthException corrupt(String what) {
        return new PthException(file + ": data.pkl is malformed (" + what + " at byte " + in.position()
                + "). hint: the file is truncated or corrupt; download or save it again");
    }

    private static String describe(Object o) {
        String s = switch (o) {
            case null -> "nothing";
            case String str -> "'" + str + "'";
            case Global g -> g.qualified();
            case Tuple t -> "a tuple of " + t.items().size();
            case Map<?, ?> m -> "a dict of " + m.size();
            case List<?> l -> "a list of " + l.size();
            case TensorRef t -> "a tensor";
            default -> o.getClass().getSimpleName().toLowerCase(java.util.Locale.ROOT) + " " + o;
        };
        s = SafeTensors.oneLine(s);
        return s.length() <= 60 ? s : s.substring(0, 57) + "...";
    }
}
