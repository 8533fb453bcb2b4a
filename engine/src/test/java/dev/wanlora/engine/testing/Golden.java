package dev.wanlora.engine.testing;

import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Locates the shared golden data ({@code ../shared/golden} beside the repository, as in CI). When it is missing,
 * a test prints one loud SKIPPED line and is skipped — unless {@code -Dgolden.required=true} (set by the {@code ci}
 * profile when CI=true), where it fails (STYLE.md §4). {@code -Dwanlora.goldenDir=DIR} overrides the location
 * ({@code DIR/<name>}): the GPU bundle carries its own copy, because the GPU machine gets the repository only.
 */
public final class Golden {
    private Golden() {}

    public static Path repoRoot() {
        String p = System.getProperty("wanlora.repoRoot");
        Path start = p != null ? Path.of(p) : Path.of("").toAbsolutePath();
        for (Path d = start.toAbsolutePath(); d != null; d = d.getParent()) {
            if (Files.isRegularFile(d.resolve("wanlora")) && Files.isDirectory(d.resolve("engine"))) return d;
        }
        return start.toAbsolutePath();
    }

    /**
     * The golden folder {@code ../shared/golden/<name>} (e.g. "wan-tiny"), or skip/fail as described above. A
     * checkout one level deeper (a git worktree in {@code wt/<name>/}) finds {@code ../../shared/golden} instead.
     */
    public static Path dir(String name) {
        String override = System.getProperty("wanlora.goldenDir");
        if (override != null && !override.isBlank()) return found(Path.of(override).resolve(name).toAbsolutePath().normalize());
        Path d = repoRoot().resolve("../shared/golden").resolve(name).normalize();
        Path deeper = repoRoot().resolve("../../shared/golden").resolve(name).normalize();
        if (!Files.isDirectory(d) && Files.isDirectory(deeper)) d = deeper;
        return found(d);
    }

    private static Path found(Path d) {
        if (!Files.isDirectory(d)) {
            String msg = "SKIPPED: golden data " + d + " not found (it lives in ../shared/golden beside the repository)";
            if (Boolean.getBoolean("golden.required")) throw new AssertionError(msg.replace("SKIPPED: ", "") + "; golden.required=true");
            System.out.println(msg);
            Assumptions.abort(msg);
        }
        return d;
    }
}
