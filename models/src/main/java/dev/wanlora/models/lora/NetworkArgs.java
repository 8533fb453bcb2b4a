package dev.wanlora.models.lora;

import dev.wanlora.engine.io.PythonLiteral;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * musubi's {@code --network_args key=value ...} for networks.lora_wan, parsed as musubi parses them (trainer_base
 * L1560‑1564 at 30c658c4: {@code key, value = net_arg.split("=")}, values kept as strings) and read as lora_wan.py /
 * lora.py read them (L29‑38, L433‑484):
 * <ul>
 * <li>{@code exclude_patterns}, {@code include_patterns}: Python lists of regular expressions (ast.literal_eval),
 * matched with re.fullmatch against a block Linear's original name ({@code blocks.3.self_attn.q}); lora_wan always
 * appends {@link #WAN_EXCLUDE}. A module is left out when an exclude pattern matches and no include pattern does.
 * <li>{@code loraplus_lr_ratio}: LoRA+: the lora_up parameters train with learning rate × ratio.
 * <li>{@code verbose}: "True" lists the modules (any other value is False, as upstream).
 * </ul>
 * The dropouts ({@code rank_dropout}, {@code module_dropout}) are not supported and any other key is unknown: both end
 * in one line naming the key and the keys wanlora knows (musubi ignores unknown keys silently).
 *
 * @param values the arguments as given, in order (musubi's ss_network_args)
 */
public record NetworkArgs(Map<String, String> values, List<Pattern> excludePatterns, List<Pattern> includePatterns,
                          double loraplusLrRatio, boolean isVerbose) {

    /** lora_wan.py's default exclude pattern (the DiT's non-block Linears; inside blocks it matches none). */
    public static final String WAN_EXCLUDE = ".*(patch_embedding|text_embedding|time_embedding|time_projection|norm|head).*";
    static final List<String> KNOWN = List.of("exclude_patterns", "include_patterns", "loraplus_lr_ratio", "verbose");

    public NetworkArgs {
        values = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(values));
        excludePatterns = List.copyOf(excludePatterns);
        includePatterns = List.copyOf(includePatterns);
    }

    /** No --network_args: every module, no LoRA+. */
    public static NetworkArgs none() {
        return parse(List.of());
    }

    public static NetworkArgs parse(List<String> args) {
        Map<String, String> values = new LinkedHashMap<>();
        for (String arg : args) {
            String[] kv = arg.split("=", -1);
            if (kv.length != 2) {
                throw new IllegalArgumentException("--network_args: expected key=value with one '='; got '" + arg
                        + "'. hint: e.g. --network_args loraplus_lr_ratio=4 \"exclude_patterns=['.*ffn.*']\"");
            }
            String key = kv[0];
            if (key.equals("rank_dropout") || key.equals("module_dropout")) {
                throw new IllegalArgumentException("--network_args " + key + ": not supported (LoRA rank and module dropout"
                        + " need random masks in the LoRA forward and backward); supported keys: " + String.join(", ", KNOWN));
            }
            if (!KNOWN.contains(key)) {
                throw new IllegalArgumentException("--network_args: unknown key '" + key + "'; networks.lora_wan keys wanlora"
                        + " supports: " + String.join(", ", KNOWN));
            }
            values.put(key, kv[1]);
        }
        List<Pattern> exclude = patterns("exclude_patterns", values.get("exclude_patterns"));
        exclude.add(Pattern.compile(WAN_EXCLUDE));
        List<Pattern> include = patterns("include_patterns", values.get("include_patterns"));
        double ratio = 1;
        if (values.containsKey("loraplus_lr_ratio")) {
            try {
                ratio = Double.parseDouble(values.get("loraplus_lr_ratio").strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--network_args loraplus_lr_ratio: not a number; got '"
                        + values.get("loraplus_lr_ratio") + "', expected e.g. 4 or 16");
            }
            if (!(ratio > 0) || Double.isInfinite(ratio)) {
                throw new IllegalArgumentException("--network_args loraplus_lr_ratio: got " + ratio + ", expected a positive number");
            }
        }
        return new NetworkArgs(values, exclude, include, ratio, "True".equals(values.get("verbose")));
    }

    /** Whether LoRA+ is on (the ratio was given). */
    public boolean hasLoraplus() {
        return values.containsKey("loraplus_lr_ratio");
    }

    /** Whether a block Linear of this original name gets an adapter. */
    public Predicate<String> selection() {
        return name -> {
            boolean excluded = excludePatterns.stream().anyMatch(p -> p.matcher(name).matches());
            boolean included = includePatterns.stream().anyMatch(p -> p.matcher(name).matches());
            return !excluded || included;
        };
    }

    private static List<Pattern> patterns(String key, String text) {
        List<Pattern> patterns = new ArrayList<>();
        if (text == null) return patterns;
        Object parsed;
        try {
            parsed = PythonLiteral.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--network_args " + key + ": " + e.getMessage());
        }
        if (!(parsed instanceof List<?> list) || !list.stream().allMatch(o -> o instanceof String)) {
            throw new IllegalArgumentException("--network_args " + key + ": expected a Python list of regular expressions;"
                    + " got " + text + ". hint: \"" + key + "=['.*ffn.*']\"");
        }
        for (Object o : list) {
            try {
                patterns.add(Pattern.compile((String) o));
            } catch (PatternSyntaxException e) {
                throw new IllegalArgumentException("--network_args " + key + ": invalid regular expression '" + o + "': "
                        + e.getDescription());
            }
        }
        return patterns;
    }
}
