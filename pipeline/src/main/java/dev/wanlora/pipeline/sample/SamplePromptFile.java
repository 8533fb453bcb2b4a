package dev.wanlora.pipeline.sample;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import dev.wanlora.pipeline.UserError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * musubi's sample prompt files (spec §10; musubi {@code training/sampling_prompts.py} {@code load_prompts} and
 * {@code line_to_prompt_dict}, defaults from {@code trainer_base.py} {@code sample_image_inference}):
 * <ul>
 * <li>{@code .txt}: one prompt per line, blank lines and lines starting with {@code #} skipped (the raw line: one
 *     indented before its {@code #} is a prompt, as in musubi), options after {@code " --"}:
 *     {@code a cat on a sofa --w 832 --h 480 --f 81 --d 42 --s 20 --fs 5.0 --l 5.0 --n ugly}.</li>
 * <li>{@code .toml}: a {@code [prompt]} table of shared values and {@code [[prompt.subset]]} entries, each one prompt;
 *     a subset may not repeat a key of {@code [prompt]} (musubi's {@code dict(**prompt, **subset)} raises).</li>
 * <li>{@code .json}: a list whose items are prompt lines (the .txt syntax) or objects.</li>
 * </ul>
 * Object keys are musubi's dictionary keys: prompt, width, height, frame_count, seed, sample_steps,
 * discrete_flow_shift, cfg_scale, negative_prompt (guidance_scale is accepted and ignored, as musubi does for Wan).
 *
 * <p>Where musubi silently ignores what it cannot parse (an unknown option, {@code --w abc}), this reader fails with
 * one line naming the file, the line and the fix, so a typo does not become a 256×256 sample.
 */
public final class SamplePromptFile {
    private SamplePromptFile() {}

    public static List<SamplePrompt> read(Path file) {
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new UserError(file + ": cannot read the sample prompt file (" + e.getMessage() + "); check --sample_prompts");
        }
        List<SamplePrompt> prompts;
        if (name.endsWith(".txt")) {
            prompts = new ArrayList<>();
            List<String> lines = text.lines().toList();
            for (int i = 0; i < lines.size(); i++) {
                // musubi: a comment is a line whose raw first character is '#'; "  # x" is a prompt
                String raw = lines.get(i);
                if (raw.isBlank() || raw.startsWith("#")) continue;
                prompts.add(fromLine(raw.strip(), prompts.size(), file + " line " + (i + 1)));
            }
        } else if (name.endsWith(".toml") || name.endsWith(".json")) {
            prompts = fromTree(file, text, name.endsWith(".toml"));
        } else {
            throw new UserError(file + ": unknown sample prompt format; expected a .txt, .toml or .json file (musubi's formats)");
        }
        if (prompts.isEmpty()) {
            throw new UserError(file + ": no prompts found; write one prompt per line, e.g. 'a cat on a sofa --w 832 --h 480 --f 81'");
        }
        return prompts;
    }

    /** {@code wanlora sample --prompt "LINE"}: one prompt in the .txt line syntax (index 0). */
    public static SamplePrompt fromCommandLine(String line) {
        return fromLine(line.strip(), 0, "--prompt");
    }

    /** One .txt line: the prompt, then options after {@code " --"}. {@code where} names the line in errors. */
    static SamplePrompt fromLine(String line, int index, String where) {
        String[] parts = line.split(" --", -1);
        SamplePrompt.Builder b = new SamplePrompt.Builder(index, where);
        b.prompt(parts[0].strip());
        for (int i = 1; i < parts.length; i++) {
            String part = parts[i].strip();
            int space = part.indexOf(' ');
            String option = (space < 0 ? part : part.substring(0, space)).toLowerCase(Locale.ROOT);
            String value = space < 0 ? "" : part.substring(space + 1).strip();
            if (value.isEmpty()) {
                throw new UserError(where + ": option --" + option + " has no value; write it as --" + option + " VALUE");
            }
            switch (option) {
                case "w" -> b.width(integer(where, option, value));
                case "h" -> b.height(integer(where, option, value));
                case "f" -> b.frameCount(integer(where, option, value));
                case "d" -> b.seed(integer(where, option, value));
                case "s" -> b.sampleSteps(integer(where, option, value));
                case "fs" -> b.discreteFlowShift(number(where, option, value));
                case "l" -> b.cfgScale(number(where, option, value));
                case "n" -> b.negativePrompt(value);
                case "g" -> number(where, option, value); // embedded guidance: HunyuanVideo only, ignored for Wan as in musubi
                case "i", "ei", "cn", "ci", "of" -> throw new UserError(where + ": option --" + option
                        + " is for image-to-video, control or one-frame models; wanlora trains Wan2.1 T2V, remove it");
                default -> throw new UserError(where + ": unknown option --" + option
                        + "; known: --w --h --f --d --s --fs --l --n --g (musubi's sample prompt syntax)");
            }
        }
        return b.build();
    }

    private static List<SamplePrompt> fromTree(Path file, String text, boolean toml) {
        JsonNode root;
        try {
            root = toml ? new TomlMapper().readTree(text) : new ObjectMapper().readTree(text);
        } catch (JacksonException e) {
            var at = e.getLocation();
            throw new UserError(file + ": invalid " + (toml ? "TOML" : "JSON")
                    + (at == null ? "" : " at line " + at.getLineNr() + ", column " + at.getColumnNr()) + ": "
                    + e.getOriginalMessage().lines().findFirst().orElse("") + "; fix the file's syntax");
        }
        List<SamplePrompt> prompts = new ArrayList<>();
        if (toml) {
            JsonNode prompt = root.get("prompt");
            if (prompt == null || !prompt.isObject() || !prompt.path("subset").isArray()) {
                throw new UserError(file + ": expected a [prompt] table with [[prompt.subset]] entries (musubi's TOML prompt format)");
            }
            for (JsonNode subset : prompt.get("subset")) {
                ObjectNode merged = ((ObjectNode) prompt.deepCopy());
                merged.remove("subset");
                if (!subset.isObject()) throw new UserError(file + ": [[prompt.subset]] entry " + (prompts.size() + 1) + " is not a table");
                for (var key : subset.properties()) {
                    if (merged.has(key.getKey())) { // musubi builds dict(**prompt, **subset): a repeated key is a TypeError
                        throw new UserError(file + ": [[prompt.subset]] entry " + (prompts.size() + 1) + " sets '"
                                + key.getKey() + "', which [prompt] already sets; musubi does not let a subset override"
                                + " [prompt], so set it in one place");
                    }
                }
                merged.setAll((ObjectNode) subset);
                prompts.add(fromObject(merged, prompts.size(), file + " subset " + (prompts.size() + 1)));
            }
        } else {
            if (!root.isArray()) throw new UserError(file + ": expected a JSON list of prompts (strings or objects)");
            for (JsonNode item : root) {
                String where = file + " item " + (prompts.size() + 1);
                if (item.isTextual()) prompts.add(fromLine(item.textValue(), prompts.size(), where));
                else if (item.isObject()) prompts.add(fromObject(item, prompts.size(), where));
                else throw new UserError(where + ": expected a prompt string or an object, got " + item);
            }
        }
        return prompts;
    }

    private static SamplePrompt fromObject(JsonNode o, int index, String where) {
        SamplePrompt.Builder b = new SamplePrompt.Builder(index, where);
        for (var e : o.properties()) {
            String key = e.getKey();
            JsonNode v = e.getValue();
            switch (key) {
                case "prompt" -> b.prompt(text(where, key, v));
                case "width" -> b.width(integer(where, key, v));
                case "height" -> b.height(integer(where, key, v));
                case "frame_count" -> b.frameCount(integer(where, key, v));
                case "seed" -> b.seed(integer(where, key, v));
                case "sample_steps" -> b.sampleSteps(integer(where, key, v));
                case "discrete_flow_shift" -> b.discreteFlowShift(number(where, key, v));
                case "cfg_scale" -> b.cfgScale(number(where, key, v));
                case "negative_prompt" -> b.negativePrompt(text(where, key, v));
                case "guidance_scale", "enum" -> { } // HunyuanVideo's embedded guidance and musubi's own index: unused for Wan
                default -> throw new UserError(where + ": unknown key '" + key + "'; known: prompt, width, height, frame_count,"
                        + " seed, sample_steps, discrete_flow_shift, cfg_scale, negative_prompt");
            }
        }
        return b.build();
    }

    private static long integer(String where, String option, String value) {
        try {
            return Long.parseLong(value);
        } catch (NumberFormatException e) {
            throw new UserError(where + ": --" + option + " " + value + " is not an integer");
        }
    }

    private static double number(String where, String option, String value) {
        try {
            double d = Double.parseDouble(value);
            if (!Double.isFinite(d)) throw new NumberFormatException();
            return d;
        } catch (NumberFormatException e) {
            throw new UserError(where + ": --" + option + " " + value + " is not a number");
        }
    }

    private static long integer(String where, String key, JsonNode v) {
        if (!v.canConvertToExactIntegral()) throw new UserError(where + ": " + key + " = " + v + " is not an integer");
        return v.asLong();
    }

    private static double number(String where, String key, JsonNode v) {
        if (!v.isNumber()) throw new UserError(where + ": " + key + " = " + v + " is not a number");
        return v.asDouble();
    }

    private static String text(String where, String key, JsonNode v) {
        if (!v.isTextual()) throw new UserError(where + ": " + key + " = " + v + " is not a string");
        return v.textValue();
    }
}
