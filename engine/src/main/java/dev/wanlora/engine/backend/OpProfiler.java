package dev.wanlora.engine.backend;

import dev.wanlora.engine.backend.ProfilingBackend.OpTime;
import dev.wanlora.engine.tensor.Tensor;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Parameter;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.StringJoiner;

/**
 * The {@link ProfilingBackend} behind {@link ProfilingBackend#wrap}: a {@link Proxy} handler that forwards each
 * Backend call to the wrapped backend and, while recording, marks the timeline after each op. An op is any Backend
 * method with a {@link Tensor} parameter, so a new op is profiled without code here. Operands are formatted only when
 * the recording stops, so the host stays close to its unprofiled pace. Parameter names come from the class file
 * (the engine is compiled with {@code -parameters}).
 */
final class OpProfiler implements InvocationHandler {

    /** An op's tensor parameters (index, name) and, per tensor, the boolean parameter that transposes it (or -1). */
    private record Signature(String op, int[] tensors, String[] names, int[] transposedBy) {}

    /** Per interval: the phase, the op (null for "(outside)") and its arguments. */
    private record Entry(String phase, Signature op, Object[] args) {}

    private static final Map<Method, Signature> OPS = signatures();

    private final Backend inner;
    private final Timeline timeline;
    private final List<Entry> recorded = new ArrayList<>();
    private boolean isRecording;
    private String phase = "";

    private OpProfiler(Backend inner) {
        this.inner = inner;
        this.timeline = inner.openTimeline();
    }

    static ProfilingBackend wrap(Backend inner) {
        return (ProfilingBackend) Proxy.newProxyInstance(ProfilingBackend.class.getClassLoader(),
                new Class<?>[] {ProfilingBackend.class}, new OpProfiler(inner));
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
        Class<?> owner = method.getDeclaringClass();
        if (owner == ProfilingBackend.class || method.getName().equals("close") && method.getParameterCount() == 0) {
            return own(method.getName(), args);
        }
        if (owner == Object.class) {
            return switch (method.getName()) {
                case "equals" -> proxy == args[0];
                case "hashCode" -> System.identityHashCode(proxy);
                default -> "profiling " + inner.name();
            };
        }
        Object result;
        try {
            result = method.invoke(inner, args);
        } catch (InvocationTargetException e) {
            throw e.getCause(); // the op's own exception, unwrapped: callers see exactly what the backend threw
        }
        if (isRecording) {
            Signature op = OPS.get(method);
            if (op != null) record(op, args);
        }
        return result;
    }

    /** ProfilingBackend's own methods. */
    private Object own(String name, Object[] args) {
        switch (name) {
            case "inner" -> { return inner; }
            case "isRecording" -> { return isRecording; }
            case "startRecording" -> {
                recorded.clear();
                timeline.reset();
                phase = (String) args[0];
                isRecording = true;
                timeline.mark();
            }
            case "phase" -> {
                if (isRecording) record(null, null);
                phase = (String) args[0];
            }
            case "stopRecording" -> { return stopRecording(); }
            case "close" -> timeline.close();
            default -> throw new IllegalStateException("unreachable: ProfilingBackend." + name + " is not handled");
        }
        return null;
    }

    private List<OpTime> stopRecording() {
        if (!isRecording) throw new IllegalStateException("ProfilingBackend.stopRecording: not recording");
        record(null, null);
        isRecording = false;
        List<OpTime> times = new ArrayList<>(recorded.size());
        for (int i = 0; i < recorded.size(); i++) {
            Entry e = recorded.get(i);
            String op = e.op() == null ? "(outside)" : e.op().op();
            String operands = e.op() == null ? "" : operands(e.op(), e.args());
            times.add(new OpTime(e.phase(), op, operands, timeline.millisBetween(i, i + 1)));
        }
        return times;
    }

    /** Records the op just queued (null: the unseen work since the last one). */
    private void record(Signature op, Object[] args) {
        recorded.add(new Entry(phase, op, args));
        timeline.mark();
    }

    /** "c(2,2)f32 aᵀ(3,2)f32 b(3,2)f32" → tensors of equal shape and dtype share one entry: "out,x(2,2)f32". */
    private static String operands(Signature op, Object[] args) {
        Map<String, StringJoiner> byShape = new LinkedHashMap<>();
        for (int i = 0; i < op.tensors().length; i++) {
            if (!(args[op.tensors()[i]] instanceof Tensor t)) continue;
            StringJoiner dims = new StringJoiner(",", "(", ")");
            for (long d : t.shape().dims()) dims.add(Long.toString(d));
            String key = dims + t.dtype().name().toLowerCase(Locale.ROOT);
            boolean isTransposed = op.transposedBy()[i] >= 0 && (Boolean) args[op.transposedBy()[i]];
            byShape.computeIfAbsent(key, k -> new StringJoiner(",")).add(op.names()[i] + (isTransposed ? "ᵀ" : ""));
        }
        StringJoiner j = new StringJoiner(" ");
        byShape.forEach((key, names) -> j.add(names + key));
        return j.toString();
    }

    /** Every Backend method with a tensor parameter, as the proxy passes it to {@link #invoke}. */
    private static Map<Method, Signature> signatures() {
        Map<Method, Signature> ops = new HashMap<>();
        for (Method m : ProfilingBackend.class.getMethods()) {
            Parameter[] params = m.getParameters();
            List<Integer> tensors = new ArrayList<>();
            for (int i = 0; i < params.length; i++) if (params[i].getType() == Tensor.class) tensors.add(i);
            if (tensors.isEmpty()) continue;
            if (!params[0].isNamePresent()) {
                throw new IllegalStateException("ProfilingBackend: Backend." + m.getName() + " has no parameter names; "
                        + "expected the engine compiled with -parameters (engine/pom.xml)");
            }
            int[] index = tensors.stream().mapToInt(Integer::intValue).toArray();
            String[] names = new String[index.length];
            int[] transposedBy = new int[index.length];
            for (int t = 0; t < index.length; t++) {
                names[t] = params[index[t]].getName();
                transposedBy[t] = -1;
                String flag = "trans" + Character.toUpperCase(names[t].charAt(0)) + names[t].substring(1);
                for (int i = 0; i < params.length; i++) {
                    if (params[i].getType() == boolean.class && params[i].getName().equals(flag)) transposedBy[t] = i;
                }
            }
            ops.put(m, new Signature(m.getName(), index, names, transposedBy));
        }
        return Map.copyOf(ops);
    }
}
