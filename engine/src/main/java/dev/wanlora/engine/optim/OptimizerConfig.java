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
 * <p>Prodigy ({@code --optimizer_type prodigyopt.Prodigy}, the class path musubi imports; "prodigy" is accepted
 * too) takes betas, eps and weight_decay (default 0) here and its other arguments in {@link #prodigy()}. Adafactor
 * ({@code --optimizer_type adafactor}) is musubi's special case (trainer_base L191‑223): relative_step defaults to
 * True (and is added to the arguments, so it shows in ss_optimizer), warmup_init=True forces it True; its arguments
 * are in {@link #adafactor()}, with eps = eps1 and beta1 (0 when None) here.
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
                "args", "min_8bit_size", "is_paged")),
        PRODIGY("prodigyopt.prodigy.Prodigy", Set.of("betas", "beta3", "eps", "weight_decay", "decouple",
                "use_bias_correction", "safeguard_warmup", "d0", "d_coef", "growth_rate", "fsdp_in_use", "slice_p")),
        ADAFACTOR("transformers.optimization.Adafactor", Set.of("eps", "clip_threshold", "decay_rate", "beta1",
                "weight_decay", "scale_parameter", "relative_step", "warmup_init"));

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

    private static final String SUPPORTED = "AdamW, adamw, torch.optim.AdamW, AdamW8bit, adamw8bit, bitsandbytes.optim.AdamW8bit,"
            + " prodigyopt.Prodigy (or prodigy), Adafactor (adafactor, transformers.optimization.Adafactor)";

    /** prodigyopt.Prodigy's arguments besides betas, eps and weight_decay, with its defaults. */
    public record ProdigySettings(float beta3, float d0, float dCoef, float growthRate, boolean decouple,
                                  boolean useBiasCorrection, boolean safeguardWarmup) {}

    /** transformers' Adafactor arguments; beta1 NaN means None (no first moment). */
    public record AdafactorSettings(float eps1, float eps2, float clipThreshold, float decayRate, float beta1,
                                    float weightDecay, boolean scaleParameter, boolean relativeStep, boolean warmupInit) {
        public boolean hasFirstMoment() {
            return !Float.isNaN(beta1);
        }
    }

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
        if (kind == Kind.ADAFACTOR) {
            // musubi: relative_step defaults to True; warmup_init=True turns it on
            if (!args.containsKey("relative_step") || Boolean.TRUE.equals(args.get("warmup_init"))) {
                args.put("relative_step", Boolean.TRUE);
            }
            OptimizerConfig config = new OptimizerConfig(kind, 0.9f, 0.999f, 1e-8f, 0, 4096, args);
            AdafactorSettings a = config.adafactor();
            return new OptimizerConfig(kind, a.hasFirstMoment() ? a.beta1() : 0, 0, a.eps1(), a.weightDecay(), 4096, args);
        }
        float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weightDecay = kind == Kind.PRODIGY ? 0 : 0.01f;
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
                // Prodigy's own arguments: read by prodigy()
                case "beta3", "decouple", "use_bias_correction", "safeguard_warmup", "d0", "d_coef", "growth_rate",
                     "fsdp_in_use", "slice_p" -> {}
                default -> throw new IllegalStateException("unreachable: " + key);
            }
        }
        OptimizerConfig config = new OptimizerConfig(kind, beta1, beta2, eps, weightDecay, min8bitSize, args);
        if (kind == Kind.PRODIGY) {
            // Prodigy's constructor checks (eps > 0 where AdamW allows 0), and the arguments in range
            if (!(eps > 0)) throw new IllegalArgumentException("--optimizer_args: Prodigy needs eps > 0; got " + eps);
            config.prodigy();
        }
        return config;
    }

    /** Prodigy's arguments (from {@link #args()}, with prodigyopt's defaults). */
    public ProdigySettings prodigy() {
        Object beta3 = args.getOrDefault("beta3", PythonLiteral.NONE);
        // upstream: beta3 = math.sqrt(beta2), beta2 the Python float as given
        double b2 = args.containsKey("betas") ? number("betas", betas(args.get("betas")).get(1)) : 0.999;
        float b3 = beta3 == PythonLiteral.NONE ? (float) Math.sqrt(b2) : (float) number("beta3", beta3);
        float d0 = (float) number("d0", args.getOrDefault("d0", 1e-6));
        float dCoef = (float) number("d_coef", args.getOrDefault("d_coef", 1.0));
        float growthRate = (float) number("growth_rate", args.getOrDefault("growth_rate", Double.POSITIVE_INFINITY));
        if (!(d0 > 0)) throw badValue("d0", args.get("d0"), "a number > 0 (Prodigy's initial d, default 1e-6)");
        if (!(b3 >= 0 && b3 < 1)) throw badValue("beta3", beta3, "None or a number in [0, 1)");
        if (!(dCoef > 0)) throw badValue("d_coef", args.get("d_coef"), "a number > 0 (default 1.0)");
        if (!(growthRate >= 1)) throw badValue("growth_rate", args.get("growth_rate"), "a number ≥ 1 (default inf)");
        if (args.containsKey("slice_p")) requireValue("slice_p", args.get("slice_p"), 1L, "wanlora computes Prodigy's statistics on every element");
        if (args.containsKey("fsdp_in_use")) requireValue("fsdp_in_use", args.get("fsdp_in_use"), Boolean.FALSE, "wanlora trains on one device");
        return new ProdigySettings(b3, d0, dCoef, growthRate, flag("decouple", true), flag("use_bias_correction", false),
                flag("safeguard_warmup", false));
    }

    /** Adafactor's arguments (from {@link #args()}, with transformers' defaults and musubi's relative_step). */
    public AdafactorSettings adafactor() {
        float eps1 = 1e-30f, eps2 = 1e-3f;
        if (args.containsKey("eps")) {
            List<?> items = switch (args.get("eps")) {
                case PythonLiteral.Tuple t -> t.items();
                case List<?> l -> l;
                default -> List.of();
            };
            if (items.size() != 2) throw badValue("eps", args.get("eps"), "two numbers such as (1e-30,1e-3)");
            eps1 = (float) number("eps", items.get(0));
            eps2 = (float) number("eps", items.get(1));
        }
        float clipThreshold = (float) number("clip_threshold", args.getOrDefault("clip_threshold", 1.0));
        float decayRate = (float) number("decay_rate", args.getOrDefault("decay_rate", -0.8));
        Object beta1 = args.getOrDefault("beta1", PythonLiteral.NONE);
        float b1 = beta1 == PythonLiteral.NONE ? Float.NaN : (float) number("beta1", beta1);
        float weightDecay = (float) number("weight_decay", args.getOrDefault("weight_decay", 0.0));
        if (!(eps1 >= 0) || !(eps2 >= 0)) throw badValue("eps", args.get("eps"), "two numbers ≥ 0 such as (1e-30,1e-3)");
        if (!(clipThreshold > 0)) throw badValue("clip_threshold", args.get("clip_threshold"), "a number > 0 (default 1.0)");
        if (!(decayRate < 0)) throw badValue("decay_rate", args.get("decay_rate"), "a negative number (default -0.8)");
        if (!Float.isNaN(b1) && !(b1 >= 0 && b1 < 1)) throw badValue("beta1", beta1, "None or a number in [0, 1)");
        if (!(weightDecay >= 0)) throw badValue("weight_decay", args.get("weight_decay"), "a number ≥ 0");
        return new AdafactorSettings(eps1, eps2, clipThreshold, decayRate, b1, weightDecay, flag("scale_parameter", true),
                flag("relative_step", true), flag("warmup_init", false));
    }

    /** Every setting of the new optimizers as text, compared when resuming (empty for AdamW and AdamW8bit). */
    String resumeSettings() {
        return switch (kind) {
            case ADAMW, ADAMW_8BIT -> "";
            case PRODIGY -> prodigy().toString();
            case ADAFACTOR -> adafactor().toString();
        };
    }

    private boolean flag(String key, boolean defaultValue) {
        Object v = args.getOrDefault(key, defaultValue);
        if (!(v instanceof Boolean b)) throw badValue(key, v, "True or False");
        return b;
    }

    private static Kind kindOf(String optimizerType) {
        String lower = optimizerType.strip().toLowerCase(Locale.ROOT);
        return switch (lower) {
            case "", "adamw" -> Kind.ADAMW;
            case "adamw8bit" -> Kind.ADAMW_8BIT;
            case "adafactor" -> Kind.ADAFACTOR;
            case "prodigy" -> Kind.PRODIGY;
            default -> switch (optimizerType.strip()) {
                case "torch.optim.AdamW", "torch.optim.adamw.AdamW" -> Kind.ADAMW;
                case "bitsandbytes.optim.AdamW8bit", "bitsandbytes.optim.adamw.AdamW8bit" -> Kind.ADAMW_8BIT;
                case "prodigyopt.Prodigy", "prodigyopt.prodigy.Prodigy" -> Kind.PRODIGY;
                case "transformers.optimization.Adafactor", "transformers.Adafactor" -> Kind.ADAFACTOR;
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
