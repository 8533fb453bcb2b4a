package dev.wanlora.pipeline.train;

import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LoadProgressTest {

    @Test
    void summaryLine() {
        // 26.6 GiB = 28,561,532,518 bytes; in 21 s that is 1.36e9 bytes/s
        assertEquals("loaded model.safetensors, 26.6 GiB in 21.0 s (1.36 GB/s)",
                LoadProgress.summary("model.safetensors", 28_561_532_518L, 21.0));
        assertEquals("loaded 6.2 MiB in 0.5 s (0.01 GB/s)", LoadProgress.summary("", 6_518_400, 0.5));
    }

    /** Without a terminal: no progress line within the first 5 s, then the summary with the bytes reported. */
    @Test
    void plainLinesEndWithTheSummary() {
        StringWriter text = new StringWriter();
        try (LoadProgress p = LoadProgress.start(new PrintWriter(text), false, "m.safetensors", 3L << 30)) {
            p.accept(1L << 30);
            p.accept(2L << 30);
        }
        assertTrue(text.toString().startsWith("loaded m.safetensors, 3.0 GiB in "), text.toString());
        assertEquals(1, text.toString().lines().count(), text.toString());
    }
}
