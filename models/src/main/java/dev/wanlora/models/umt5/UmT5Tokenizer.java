package dev.wanlora.models.umt5;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * umT5's tokenizer as Wan calls it (spec §10.2): {@link TextCleaning#clean}, then umT5's {@code tokenizer.json} through
 * the Rust {@code tokenizers} library (DJL's binding, natives bundled in its jar; the normalizer, pre-tokenizer,
 * Unigram model and {@code </s>} template all come from the file), truncated to {@code textLength − 1} pieces plus
 * {@code </s>}, padded with {@code <pad>} to {@code textLength} (512 in Wan) with the attention mask.
 */
public final class UmT5Tokenizer implements AutoCloseable {

    /** Wan's text_len. */
    public static final int TEXT_LENGTH = 512;

    /** One tokenized prompt: ids and mask padded to the text length, and the number of real tokens. */
    public record Tokens(String cleaned, long[] ids, long[] mask, int seqLen) {}

    private final Path file;
    private final HuggingFaceTokenizer tokenizer;
    private final long padId, eosId;

    private UmT5Tokenizer(Path file, HuggingFaceTokenizer tokenizer, long padId, long eosId) {
        this.file = file;
        this.tokenizer = tokenizer;
        this.padId = padId;
        this.eosId = eosId;
    }

    /** Opens a tokenizer.json (or a folder holding one). Runs offline: the natives come from the jar. */
    public static UmT5Tokenizer open(Path fileOrDir) {
        Path file = Files.isDirectory(fileOrDir) ? fileOrDir.resolve("tokenizer.json") : fileOrDir;
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(file + ": no tokenizer.json. hint: " + WHERE_TO_GET);
        }
        // DJL looks for its natives in the jar first; offline mode forbids any download attempt besides.
        if (System.getProperty("ai.djl.offline") == null) System.setProperty("ai.djl.offline", "true");
        HuggingFaceTokenizer t;
        try {
            t = HuggingFaceTokenizer.newInstance(file, Map.of("addSpecialTokens", "true", "padding", "false",
                    "truncation", "false", "modelMaxLength", "1000000"));
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException(file + ": cannot load the tokenizer (" + oneLine(e) + ")"
                    + ". hint: the file is not a Hugging Face tokenizer.json; " + WHERE_TO_GET, e);
        }
        long pad = idOf(t, "<pad>"), eos = idOf(t, "</s>");
        return new UmT5Tokenizer(file, t, pad, eos);
    }

    private static final String WHERE_TO_GET = "umT5's tokenizer is the google/umt5-xxl folder of the Wan2.1 release"
            + " (Wan-AI/Wan2.1-T2V-14B on Hugging Face: google/umt5-xxl/tokenizer.json); pass it with --t5_tokenizer FILE|DIR";

    /**
     * Where the tokenizer is found, first match wins: {@code explicit} (--t5_tokenizer FILE|DIR); beside the T5
     * checkpoint (tokenizer.json, then tokenizer/ in its folder as ComfyUI-style downloads keep it, then
     * google/umt5-xxl/, the Wan release layout); the Hugging Face hub
     * cache ({@code $HF_HOME/hub} or {@code ~/.cache/huggingface/hub}, models--google--umt5-xxl/snapshots/*). None:
     * an IllegalArgumentException saying where to get it.
     */
    public static Path locate(Path explicit, Path t5Checkpoint) {
        List<Path> tried = new ArrayList<>();
        if (explicit != null) {
            Path f = Files.isDirectory(explicit) ? explicit.resolve("tokenizer.json") : explicit;
            if (Files.isRegularFile(f)) return f;
            throw new IllegalArgumentException("--t5_tokenizer " + explicit + ": no tokenizer.json there. hint: " + WHERE_TO_GET);
        }
        if (t5Checkpoint != null && t5Checkpoint.toAbsolutePath().getParent() != null) {
            Path dir = t5Checkpoint.toAbsolutePath().getParent();
            tried.add(dir.resolve("tokenizer.json"));
            tried.add(dir.resolve("tokenizer/tokenizer.json"));
            tried.add(dir.resolve("google/umt5-xxl/tokenizer.json"));
        }
        String hfHome = System.getenv("HF_HOME");
        Path hub = hfHome != null ? Path.of(hfHome, "hub") : Path.of(System.getProperty("user.home"), ".cache", "huggingface", "hub");
        Path snapshots = hub.resolve("models--google--umt5-xxl").resolve("snapshots");
        if (Files.isDirectory(snapshots)) {
            try (DirectoryStream<Path> s = Files.newDirectoryStream(snapshots)) {
                for (Path snap : s) tried.add(snap.resolve("tokenizer.json"));
            } catch (IOException e) {
                // an unreadable cache is the same as no cache: fall through to the message below
            }
        }
        for (Path p : tried) if (Files.isRegularFile(p)) return p;
        throw new IllegalArgumentException("no umT5 tokenizer.json found (looked beside the T5 checkpoint, in its"
                + " tokenizer/ and google/umt5-xxl/ folders and in " + snapshots + "). hint: " + WHERE_TO_GET);
    }

    public Path file() { return file; }

    /** Cleans and tokenizes {@code text} to {@code textLength} ids (Wan: 512). */
    public Tokens encode(String text, int textLength) {
        String cleaned = TextCleaning.clean(text);
        Encoding e = tokenizer.encode(cleaned, true, false);
        long[] raw = e.getIds();
        long[] ids = new long[textLength], mask = new long[textLength];
        java.util.Arrays.fill(ids, padId);
        int n = Math.min(raw.length, textLength);
        System.arraycopy(raw, 0, ids, 0, n);
        if (raw.length > textLength) ids[textLength - 1] = eosId; // truncation keeps textLength − 1 pieces, then </s>
        for (int i = 0; i < n; i++) mask[i] = 1;
        return new Tokens(cleaned, ids, mask, n);
    }

    /** The pieces of {@code text} without cleaning, padding or truncation (for diagnostics and tests). */
    public String[] pieces(String cleaned) {
        return tokenizer.encode(cleaned, true, false).getTokens();
    }

    private static long idOf(HuggingFaceTokenizer t, String token) {
        long[] ids = t.encode(token, false, false).getIds();
        return ids.length == 1 ? ids[0] : (token.equals("<pad>") ? 0 : 1);
    }

    private static String oneLine(Throwable e) {
        return String.valueOf(e.getMessage()).replace('\n', ' ');
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
