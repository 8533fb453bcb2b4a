package dev.wanlora.engine.cuda;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The cuBLASLt algorithms {@link CudaGemm} timed, kept in a small text file so the choice is made once per machine
 * and stays the same across runs (a {@code --resume} on the same machine reads the algorithm back instead of timing
 * again, so it computes with the same one). cuBLASLt documents {@code cublasLtMatmulAlgo_t} (64 bytes) as trivially
 * serializable for the same library version, so the key names the GPU, the driver and the cuBLASLt version besides the
 * GEMM's shape, transposes, dtypes, bias and pointer alignments.
 *
 * <p>File: {@code $WANLORA_CACHE_DIR} (or {@code -Dwanlora.cacheDir}), else {@code $XDG_CACHE_HOME/wanlora}, else
 * {@code ~/.cache/wanlora}; name {@value #FILE_NAME}; one line per GEMM: {@code key TAB 128 hex digits TAB note}
 * (the note says which heuristic rank won and its time, for a reader). A file that cannot be read or parsed, or a
 * folder that cannot be written, costs one info line on stderr and the tuning is redone; it is never fatal. Writes go
 * to a temporary name and are renamed over the file (a crash never leaves half a file).
 *
 * <p>One instance per file per process ({@link #at(Path)}), so two backends in one process (a swapped and a resident
 * run side by side) pick the same algorithm for the same GEMM.
 */
final class GemmAlgorithmCache {
    static final String FILE_NAME = "gemm-algorithms-v1.tsv";
    private static final Map<Path, GemmAlgorithmCache> OPEN = new ConcurrentHashMap<>();

    /** One stored choice: the 64 algorithm bytes and a human note. */
    record Entry(byte[] algo, String note) {}

    private final Path file;
    private final PrintStream info;
    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private boolean isWritable = true;

    GemmAlgorithmCache(Path file, PrintStream info) {
        this.file = file;
        this.info = info;
        load();
    }

    /** The process's cache for {@code file} (loaded once). */
    static GemmAlgorithmCache at(Path file) { return OPEN.computeIfAbsent(file, f -> new GemmAlgorithmCache(f, System.err)); }

    /** The default file (see the class comment). */
    static Path defaultFile() {
        String dir = System.getProperty("wanlora.cacheDir", System.getenv("WANLORA_CACHE_DIR"));
        if (dir != null && !dir.isBlank()) return Path.of(dir).resolve(FILE_NAME);
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home", "."), ".cache");
        return base.resolve("wanlora").resolve(FILE_NAME);
    }

    Path file() { return file; }

    synchronized Entry get(String key) { return entries.get(key); }

    /** Stores a choice and rewrites the file (a no-op on disk once the folder proved unwritable). */
    synchronized void put(String key, byte[] algo, String note) {
        if (algo.length != CublasLt.ALGO_BYTES) throw new IllegalArgumentException("gemm algorithm: " + algo.length + " bytes, expected 64");
        if (key.contains("\t") || key.contains("\n") || note.contains("\t") || note.contains("\n")) {
            throw new IllegalArgumentException("gemm algorithm cache: key and note must not hold tabs or newlines; got " + key + " / " + note);
        }
        entries.put(key, new Entry(algo.clone(), note));
        if (!isWritable) return;
        StringBuilder text = new StringBuilder("# wanlora: cuBLASLt algorithms timed on this machine (safe to delete)\n");
        entries.forEach((k, e) -> text.append(k).append('\t').append(HexFormat.of().formatHex(e.algo())).append('\t')
                .append(e.note()).append('\n'));
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp" + ProcessHandle.current().pid());
        try {
            Files.createDirectories(file.getParent());
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException | RuntimeException e) {
            isWritable = false;
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException | RuntimeException ignored) {
                // the temporary file could not be made either; nothing to remove
            }
            info.println("info: GEMM algorithm cache " + file + " cannot be written (" + e + "); the timed choices hold for"
                    + " this run only");
        }
    }

    private void load() {
        if (!Files.exists(file)) return;
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException | RuntimeException e) {
            info.println("info: GEMM algorithm cache " + file + " cannot be read (" + e + "); ignored, the GEMMs are timed again");
            return;
        }
        Map<String, Entry> read = new LinkedHashMap<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (line.isBlank() || line.startsWith("#")) continue;
            String[] parts = line.split("\t", -1);
            byte[] algo = parts.length == 3 && parts[1].length() == 2 * CublasLt.ALGO_BYTES ? parseHex(parts[1]) : null;
            if (algo == null || parts[0].isBlank()) {
                info.println("info: GEMM algorithm cache " + file + ": line " + (i + 1) + " is not 'key TAB 128 hex digits TAB note';"
                        + " the file is ignored and rewritten, the GEMMs are timed again");
                return;
            }
            read.put(parts[0], new Entry(algo, parts[2]));
        }
        entries.putAll(read);
    }

    private static byte[] parseHex(String s) {
        try {
            return HexFormat.of().parseHex(s);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
