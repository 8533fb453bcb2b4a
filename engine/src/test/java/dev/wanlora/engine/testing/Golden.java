package dev.wanlora.engine.testing;

import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Locates the golden data: the repository's own byte-identical copy in {@code testdata/golden} (see its
 * PROVENANCE.md), so a clone tests itself with nothing beside it. When a folder is missing (a damaged checkout), a
 * test prints one loud SKIPPED line and is skipped — unless {@code -Dgolden.required=true} (set by the {@code ci}
 * profile when CI=true), where it fails (STYLE.md §4). {@code -Dwanlora.goldenDir=DIR} overrides the location
 * ({@code DIR/<name>}), e.g. for a hidden variant with other sizes.
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

    /** The golden folder {@code testdata/golden/<name>} (e.g. "wan-tiny"), or skip/fail as described above. */
    public static Path dir(String name) {
        String missing = missing(name);
        if (missing != null) {
            String msg = "SKIPPED: " + missing;
            if (Boolean.getBoolean("golden.required")) throw new AssertionError(missing + "; golden.required=true");
            System.out.println(msg);
            Assumptions.abort(msg);
        }
        return location(name);
    }

    /** Null when the golden folder {@code name} is present, else why it is not (one line). */
    public static String missing(String name) {
        Path d = location(name);
        return Files.isDirectory(d) ? null
                : "golden data " + d + " not found (the repository keeps its copy in testdata/golden)";
    }

    private static Path location(String name) {
        String override = System.getProperty("wanlora.goldenDir");
        if (override != null && !override.isBlank()) return Path.of(override).resolve(name).toAbsolutePath().normalize();
        return repoRoot().resolve("testdata/golden").resolve(name).normalize();
    }
}
