package dev.wanlora.engine.cuda;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** The GEMM algorithm cache file: round trip, and that a corrupt file or an unwritable folder is never fatal. */
class GemmAlgorithmCacheTest {
    private final ByteArrayOutputStream infoBytes = new ByteArrayOutputStream();
    private final PrintStream info = new PrintStream(infoBytes, true, StandardCharsets.UTF_8);

    private static byte[] algo(int seed) {
        byte[] a = new byte[(int) CublasLt.ALGO_BYTES];
        for (int i = 0; i < a.length; i++) a[i] = (byte) (seed * 31 + i);
        return a;
    }

    @Test
    void storedChoicesReadBackInANewProcess(@TempDir Path dir) {
        Path file = dir.resolve("sub").resolve(GemmAlgorithmCache.FILE_NAME);
        GemmAlgorithmCache first = new GemmAlgorithmCache(file, info);
        assertNull(first.get("gpu|m1"));
        first.put("gpu|m1", algo(1), "timed: #2 of 8");
        first.put("gpu|m2", algo(2), "heuristic's only candidate");
        GemmAlgorithmCache second = new GemmAlgorithmCache(file, info);
        assertArrayEquals(algo(1), second.get("gpu|m1").algo());
        assertEquals("timed: #2 of 8", second.get("gpu|m1").note());
        assertArrayEquals(algo(2), second.get("gpu|m2").algo());
        assertEquals("", infoBytes.toString(StandardCharsets.UTF_8));
    }

    @Test
    void corruptFileIsIgnoredWithOneInfoLineAndRewritten(@TempDir Path dir) throws Exception {
        Path file = dir.resolve(GemmAlgorithmCache.FILE_NAME);
        Files.writeString(file, "gpu|m1\tnot-hex\tnote\n");
        GemmAlgorithmCache cache = new GemmAlgorithmCache(file, info);
        assertNull(cache.get("gpu|m1"));
        String said = infoBytes.toString(StandardCharsets.UTF_8);
        assertEquals(1, said.lines().count(), said);
        assertTrue(said.startsWith("info: GEMM algorithm cache " + file + ": line 1 "), said);
        cache.put("gpu|m3", algo(3), "timed");
        assertArrayEquals(algo(3), new GemmAlgorithmCache(file, info).get("gpu|m3").algo());
    }

    @Test
    void unwritableFolderKeepsChoicesInMemoryWithOneInfoLine(@TempDir Path dir) throws Exception {
        Path blocker = dir.resolve("a-file");
        Files.writeString(blocker, "x");
        Path file = blocker.resolve("wanlora").resolve(GemmAlgorithmCache.FILE_NAME); // a folder under a regular file
        GemmAlgorithmCache cache = new GemmAlgorithmCache(file, info);
        cache.put("gpu|m1", algo(1), "timed");
        cache.put("gpu|m2", algo(2), "timed");
        assertArrayEquals(algo(1), cache.get("gpu|m1").algo());
        String said = infoBytes.toString(StandardCharsets.UTF_8);
        assertEquals(1, said.lines().count(), said);
        assertTrue(said.startsWith("info: GEMM algorithm cache " + file + " cannot be written"), said);
    }

    @Test
    void defaultFileHonoursTheCacheDirProperty(@TempDir Path dir) {
        String before = System.getProperty("wanlora.cacheDir");
        try {
            System.setProperty("wanlora.cacheDir", dir.toString());
            assertEquals(dir.resolve(GemmAlgorithmCache.FILE_NAME), GemmAlgorithmCache.defaultFile());
        } finally {
            if (before == null) System.clearProperty("wanlora.cacheDir");
            else System.setProperty("wanlora.cacheDir", before);
        }
    }

    /** CudaGemm's choice among timed candidates (µs; NaN: refused by cuBLASLt). */
    @Test
    void pickKeepsTheFirstUnlessAnotherIsTwoPercentFaster() {
        assertEquals(0, CudaGemm.pick(new double[] {100, 99, 98.5}));      // 1.5 % faster: noise, keep the first
        assertEquals(2, CudaGemm.pick(new double[] {100, 99, 97.9}));      // 2.1 % faster: take it
        assertEquals(1, CudaGemm.pick(new double[] {Double.NaN, 120, 130})); // the first refused: the fastest that ran
        assertEquals(0, CudaGemm.pick(new double[] {Double.NaN, Double.NaN}));
        assertEquals(0, CudaGemm.pick(new double[] {100, Double.NaN, 101}));
    }
}
