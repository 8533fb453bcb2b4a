package dev.wanlora.cli.train;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import dev.wanlora.pipeline.UserError;
import dev.wanlora.models.text.ClosestName;
import dev.wanlora.pipeline.train.StepsOrRatio;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code --config_file}: a TOML file holding {@code wanlora train} flags under their snake_case names, and the
 * effective-configuration dump ({@code {output_dir}/{output_name}-config.toml}) in the same form, so a dump can be
 * passed back as {@code --config_file}.
 *
 * <p>As musubi's {@code read_config_from_file}: a name without {@code .toml} gets it appended; tables are flattened
 * one level ({@code [training] learning_rate = 1e-4} is {@code learning_rate}); a flag given on the command line wins
 * over the file (lists are replaced, not appended). The file's values are turned into {@code --key=value} tokens and
 * parsed by picocli exactly like command-line flags, so both go through the same conversion and checks.
 */
public final class TrainConfigFile {
    private TrainConfigFile() {}

    private static final TomlMapper TOML = new TomlMapper();

    /** The path musubi reads for {@code --config_file NAME}: NAME.toml unless it already ends in .toml. */
    public static Path resolve(Path configFile) {
        String name = configFile.getFileName().toString();
        return name.endsWith(".toml") ? configFile : configFile.resolveSibling(name + ".toml");
    }

    /**
     * The file's flags as picocli tokens, skipping every option in {@code givenOnCommandLine}. Unknown keys,
     * values of the wrong kind, and invalid TOML end in a {@link UserError} naming the file.
     */
    public static List<String> tokens(Path configFile, CommandSpec spec, Set<OptionSpec> givenOnCommandLine) {
        Path file = resolve(configFile);
        Map<String, JsonNode> flat = readFlat(file);
        List<String> tokens = new ArrayList<>();
        for (var entry : flat.entrySet()) {
            String key = entry.getKey();
            JsonNode value = entry.getValue();
            OptionSpec option = spec.findOption("--" + key);
            if (option == null || option.hidden() || key.equals("config_file")) {
                throw new UserError(file + ": unknown key '" + key + "'" + suggestion(key, spec.options())
                        + "; keys are the flags of wanlora train in snake_case (see wanlora train --help)");
            }
            if (givenOnCommandLine.contains(option)) continue;
            String flag = "--" + key;
            if (option.type() == boolean.class || option.type() == Boolean.class) {
                if (!value.isBoolean()) throw wrongKind(file, key, value, "true or false");
                if (value.booleanValue()) tokens.add(flag);
            } else if (option.isMultiValue()) {
                if (value.isArray()) {
                    if (value.isEmpty()) tokens.add(flag);
                    for (JsonNode item : value) tokens.add(flag + "=" + scalar(file, key, item));
                } else {
                    tokens.add(flag + "=" + scalar(file, key, value));
                }
            } else {
                tokens.add(flag + "=" + scalar(file, key, value));
            }
        }
        // Check the file's values on their own first, so that a bad value is reported against the file, not a flag.
        CommandLine probe = new CommandLine(new TrainOptions());
        try {
            probe.parseArgs(tokens.toArray(String[]::new));
        } catch (CommandLine.ParameterException e) {
            throw new UserError(file + ": " + e.getMessage().replace("option '--", "key '").replace("'--", "'"));
        }
        return tokens;
    }

    /**
     * {@code values} (snake_case key → value: String, Number, Boolean, Path, List) as the TOML of the file named
     * {@code fileName}, with a header comment. Null values are left out (TOML has no null; an absent key means musubi's
     * default).
     */
    public static String text(String fileName, Map<String, Object> values) {
        Map<String, Object> toml = new LinkedHashMap<>();
        values.forEach((k, v) -> {
            if (v != null) toml.put(k, tomlValue(v));
        });
        String text;
        try {
            text = TOML.writeValueAsString(toml);
        } catch (JacksonException e) {
            throw new IllegalStateException("TOML: cannot encode the configuration " + toml, e);
        }
        return "# wanlora train: effective configuration of this run; rerun it with --config_file " + fileName + "\n" + text;
    }

    /** Reads {@code file} as the snake_case key → value map that {@link #write} wrote (for tests and tools). */
    public static Map<String, JsonNode> readFlat(Path file) {
        JsonNode root;
        try {
            root = TOML.readTree(Files.readString(file));
        } catch (NoSuchFileException e) {
            throw new UserError(file + ": file not found; check the --config_file path");
        } catch (JacksonException e) {
            JsonLocation at = e.getLocation();
            String where = at == null ? "" : " at line " + at.getLineNr() + ", column " + at.getColumnNr();
            throw new UserError(file + ": invalid TOML" + where + ": " + e.getOriginalMessage().lines().findFirst().orElse("")
                    + "; fix the file's syntax");
        } catch (IOException e) {
            throw new UserError(file + ": cannot read (" + e.getMessage() + ")");
        }
        Map<String, JsonNode> flat = new LinkedHashMap<>();
        for (var entry : root.properties()) {
            if (entry.getValue().isObject()) {
                for (var inner : entry.getValue().properties()) {
                    if (inner.getValue().isObject()) {
                        throw new UserError(file + ": table [" + entry.getKey() + "." + inner.getKey()
                                + "] is nested two levels; put flags at the top level or in one level of tables");
                    }
                    flat.put(inner.getKey(), inner.getValue());
                }
            } else {
                flat.put(entry.getKey(), entry.getValue());
            }
        }
        return flat;
    }

    private static Object tomlValue(Object v) {
        return switch (v) {
            case Path p -> p.toAbsolutePath().normalize().toString();
            case StepsOrRatio s -> s.isRatio() ? (Object) s.ratio() : (Object) s.steps();
            case Collection<?> c -> c.stream().map(TrainConfigFile::tomlValue).toList();
            case String s -> s;
            case Number n -> n;
            case Boolean b -> b;
            default -> v.toString();
        };
    }

    private static String scalar(Path file, String key, JsonNode value) {
        if (value.isTextual()) return value.textValue();
        if (value.isNumber() || value.isBoolean()) return value.asText();
        throw wrongKind(file, key, value, "a string or a number");
    }

    private static UserError wrongKind(Path file, String key, JsonNode value, String expected) {
        return new UserError(file + ": key '" + key + "' is " + value + ", expected " + expected);
    }

    /** "; did you mean network_dim?" for the closest visible option name, or "" when none is close. */
    private static String suggestion(String key, List<OptionSpec> options) {
        String best = ClosestName.of(key, options.stream().filter(o -> !o.hidden())
                .map(o -> o.longestName().substring(2).replace('-', '_')).toList());
        return best == null ? "" : "; did you mean " + best + "?";
    }
}
