package dev.wanlora.engine.optim;

import dev.wanlora.engine.io.PythonLiteral;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * An optimizer chosen the way musubi's {@code get_optimizer} does it (musubi {@code training/trainer_base.py}
 * L163‑250 at 30c658c4): {@code --optimizer_type} names the class, {@code --optimizer_args key=value ...} are its
 * keyword arguments, each value parsed with {@code ast.literal_eval} ({@link PythonLiteral}). Defaults are the
 * classes' own: torch.optim.AdamW and bitsandbytes.optim.AdamW8bit both use betas (0.9, 0.999), eps 1e-8,
 * weight_decay 0.01; AdamW8bit keeps fp32 state for tensors of fewer than min_8bit_size = 4096 elements.
 *
 * @param kind which optimizer
 * @param beta1 first-moment decay
 * @param beta2 second-moment decay
 * @param eps denominator term
 * @param weightDecay decoupled weight decay
 * @param min8bitSize AdamW8bit: tensors with fewer elements keep fp32 state (unused by AdamW)
 * @param args the parsed {@code --optimizer_args} in the order given (for {@link #metadataName()})
 */
public record OptimizerConfig(Kind kind, float beta1, float beta2, float eps, float weightDecay, int min8bitSize,
                              Map<String, Object> args) {

    /** The optimizers wanlora implements, with the Python class musubi would instantiate. */
    public enum Kind {
        ADAMW("torch.optim.adamw.AdamW", Set.of("betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach",
                "capturable", "differentiable", "fused")),
        ADAMW_8BIT("bitsandbytes.optim.adamw.AdamW8bit", Set.of("betas", "eps", "weight_decay", "amsgrad", "optim_bits",
                "args", "min_8bit_size", "is_paged"));

        private final String pythonClass;
        private final Set<String> keywords;

        Kind(String pythonClass, Set<String> keywords) {
            this.pythonClass = pythonClass;
            this.keywords = keywords;
        }

        /** {@code optimizer_class.__module__ + "." + __name__}, as musubi logs it. */
        public String pythonClass() {
            return pythonClass;
        }
    }

    private static final String SUPPORTED = "AdamW, adamw, torch.optim.AdamW, AdamW8bit, adamw8bit, bitsandbytes.optim.AdamW8bit";

    public OptimizerConfig {
        args = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(args));
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
            throw new IllegalArgumentException("--optimizer_args: betas must lie in [0, 1); got (" + beta1 + ", " + beta2 + ")");
        }
        if (!(eps >= 0)) throw new IllegalArgumentException("--optimizer_args: eps must be ≥ 0; got " + eps);
        if (!(weightDecay >= 0)) throw new IllegalArgumentException("--optimizer_args: weight_decay must be ≥ 0; got " + weightDecay);
    }

    /** torch.optim.AdamW with its defaults. */
    public static OptimizerConfig adamw() {
        return fromFlags("AdamW", List.of());
    }

    /** bitsandbytes.optim.AdamW8bit with its defaults. */
    public static OptimizerConfig adamw8bit() {
        return fromFlags("AdamW8bit", List.of());
    }

    /**
     * Parses musubi's flags. {@code optimizerType} as given (musubi lower-cases it for the short names and keeps
     * the case of dotted class paths); an empty type means AdamW, the default musubi's help text promises.
     * {@code optimizerArgs} are the words after {@code --optimizer_args}, each {@code key=value}.
     */
    public static OptimizerConfig fromFlags(String optimizerType, List<String> optimizerArgs) {
        Kind kind = kindOf(optimizerType);
        Map<String, Object> args = new LinkedHashMap<>();
        for (String arg : optimizerArgs) {
            String[] kv = arg.split("=", -1);
            if (kv.length != 2 || kv[0].isEmpty()) {
                throw new IllegalArgumentException("--optimizer_args: expected key=value; got '" + arg
                        + "'. hint: write e.g. --optimizer_args weight_decay=0.01 \"betas=(0.9,0.99)\"");
            }
            String key = kv[0];
            if (!kind.keywords.contains(key)) {
                throw new IllegalArgumentException("--optimizer_args: " + kind.pythonClass + " has no argument '" + key
                        + "'; expected one of " + String.join(", ", kind.keywords.stream().sorted().toList())
                        + (key.equals("lr") ? ". hint: set the learning rate with --learning_rate" : ""));
            }
            try {
                args.put(key, PythonLiteral.parse(kv[1]));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--optimizer_args " + key + ": " + e.getMessage());
            }
        }
        float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weightDecay = 0.01f;
        int min8bitSize = 4096;
        for (var e : args.entrySet()) {
            String key = e.getKey();
            Object v = e.getValue();
            switch (key) {
                case "betas" -> {
                    List<Object> items = betas(v);
                    beta1 = (float) number(key, items.get(0));
                    beta2 = (float) number(key, items.get(1));
                }
                case "eps" -> eps = (float) number(key, v);
                case "weight_decay" -> weightDecay = (float) number(key, v);
                case "min_8bit_size" -> {
                    if (!(v instanceof Long l) || l < 0 || l > Integer.MAX_VALUE) {
                        throw badValue(key, v, "a non-negative integer");
                    }
                    min8bitSize = (int) (long) l;
                }
                case "amsgrad", "maximize" -> requireValue(key, v, Boolean.FALSE, "wanlora implements plain AdamW");
                case "optim_bits" -> requireValue(key, v, 32L, "AdamW8bit accepts only its default 32");
                case "args" -> requireValue(key, v, PythonLiteral.NONE, "wanlora takes no bitsandbytes args object");
                // implementation choices without a numeric contract here (foreach/fused kernels, paged memory)
                case "foreach", "capturable", "differentiable", "fused", "is_paged" -> {
                    if (!(v instanceof Boolean) && v != PythonLiteral.NONE) throw badValue(key, v, "True, False or None");
                }
                default -> throw new IllegalStateException("unreachable: " + key);
            }
        }
        return new OptimizerConfig(kind, beta1, beta2, eps, weightDecay, min8bitSize, args);
    }

    private static Kind kindOf(String optimizerType) {
        String lower = optimizerType.strip().toLowerCase(Locale.ROOT);
        return switch (lower) {
            case "", "adamw" -> Kind.ADAMW;
            case "adamw8bit" -> Kind.ADAMW_8BIT;
            default -> switch (optimizerType.strip()) {
                case "torch.optim.AdamW", "torch.optim.adamw.AdamW" -> Kind.ADAMW;
                case "bitsandbytes.optim.AdamW8bit", "bitsandbytes.optim.adamw.AdamW8bit" -> Kind.ADAMW_8BIT;
                default -> throw new IllegalArgumentException("--optimizer_type: unsupported optimizer; got '"
                        + optimizerType + "', expected one of " + SUPPORTED);
            };
        };
    }

    /** The {@code ss_optimizer} metadata value: class path, then "(k=v,k=v)" with Python str() values if args were given. */
    public String metadataName() {
        if (args.isEmpty()) return kind.pythonClass();
        StringBuilder sb = new StringBuilder();
        args.forEach((k, v) -> {
            if (!sb.isEmpty()) sb.append(',');
            sb.append(k).append('=').append(PythonLiteral.str(v));
        });
        return kind.pythonClass() + "(" + sb + ")";
    }

    private static List<Object> betas(Object v) {
        List<Object> items = switch (v) {
            case PythonLiteral.Tuple t -> t.items();
            case List<?> l -> List.copyOf(l);
            // bitsandbytes also accepts the string '(0.9, 0.999)'
            case String s -> ((PythonLiteral.Tuple) asTuple(s)).items();
            default -> List.of();
        };
        if (items.size() != 2) throw badValue("betas", v, "two numbers such as (0.9,0.999)");
        return items;
    }

    private static Object asTuple(String s) {
        Object parsed = PythonLiteral.parse(s);
        if (!(parsed instanceof PythonLiteral.Tuple)) throw badValue("betas", s, "two numbers such as (0.9,0.999)");
        return parsed;
    }

    private static double number(String key, Object v) {
        return switch (v) {
            case Double d -> d;
            case Long l -> l;
            case Boolean b -> b ? 1 : 0; // Python bools are ints
            default -> throw badValue(key, v, "a number");
        };
    }

    private static void requireValue(String key, Object v, Object expected, String why) {
        if (!expected.equals(v)) {
            throw new IllegalArgumentException("--optimizer_args: " + key + "=" + PythonLiteral.str(v)
                    + " is not supported; expected " + key + "=" + PythonLiteral.str(expected) + " (" + why + ")");
        }
    }

    private static IllegalArgumentException badValue(String key, Object v, String expected) {
        return new IllegalArgumentException("--optimizer_args: " + key + " has an invalid value; got "
                + (v instanceof String s ? "'" + s + "'" : PythonLiteral.str(v)) + ", expected " + expected);
    }
}
