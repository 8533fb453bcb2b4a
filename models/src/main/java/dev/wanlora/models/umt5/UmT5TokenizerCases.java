package dev.wanlora.models.umt5;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.engine.numeric.ErrorStats;
import dev.wanlora.models.golden.GoldenVerifier.Comparison;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

/**
 * Runs every case of a golden {@code tokenizer_cases.json} (sampling-tiny's format: text, cleaned, input_ids,
 * attention_mask, seq_len per case; text_len at the top) through {@link UmT5Tokenizer} with the golden's
 * {@code tokenizer/}: cleaning, ids and mask must match exactly.
 */
public final class UmT5TokenizerCases {
    private UmT5TokenizerCases() {}

    /** Does nothing when {@code dir} has no tokenizer_cases.json. */
    public static void run(Path dir, Consumer<Comparison> sink) {
        Path cases = dir.resolve("tokenizer_cases.json");
        if (!Files.isRegularFile(cases)) return;
        JsonNode root;
        try {
            root = JsonMapper.builder().build().readTree(cases.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(cases + ": cannot read (" + e.getMessage() + ")", e);
        }
        int textLength = root.get("text_len").asInt();
        try (UmT5Tokenizer tokenizer = UmT5Tokenizer.open(dir.resolve("tokenizer"))) {
            int i = 0;
            for (JsonNode c : root.get("cases")) {
                UmT5Tokenizer.Tokens t = tokenizer.encode(c.get("text").asText(), textLength);
                String label = "case " + i++ + " " + abbreviate(c.get("text").asText());
                boolean cleanedOk = t.cleaned().equals(c.get("cleaned").asText());
                sink.accept(exact("tokens", label + " cleaned" + (cleanedOk ? "" : " got '" + abbreviate(t.cleaned()) + "'"),
                        cleanedOk));
                sink.accept(exact("tokens", label + " ids", equal(t.ids(), c.get("input_ids"))));
                sink.accept(exact("tokens", label + " mask", equal(t.mask(), c.get("attention_mask"))
                        && t.seqLen() == c.get("seq_len").asInt()));
            }
        }
    }

    private static boolean equal(long[] actual, JsonNode expected) {
        if (expected.size() != actual.length) return false;
        for (int i = 0; i < actual.length; i++) if (expected.get(i).asLong() != actual[i]) return false;
        return true;
    }

    /** A pass/fail line: relL2 0 for a match, 1 for a mismatch, judged exactly. */
    private static Comparison exact(String file, String key, boolean isEqual) {
        ErrorStats stats = ErrorStats.compare(new float[] {isEqual ? 1 : 0}, new float[] {1});
        return new Comparison(file, key, stats, 0, Double.NaN, true);
    }

    private static String abbreviate(String s) {
        String line = s.codePoints().map(cp -> cp < 0x20 || cp == 0x7f || cp >= 0x80 && cp <= 0x9f ? '?' : cp)
                .collect(StringBuilder::new, StringBuilder::appendCodePoint, StringBuilder::append).toString();
        return line.length() <= 30 ? line : line.substring(0, 27) + "...";
    }
}
