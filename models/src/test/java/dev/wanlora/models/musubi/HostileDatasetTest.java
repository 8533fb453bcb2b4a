package dev.wanlora.models.musubi;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.musubi.CacheDataset.Options;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15 items 3, 4 and 6 at the dataset layer: numbers no real run can mean (they hung or overflowed), numbers in
 * names and keys too large to parse, and a cache holding NaN or Inf (named, and skippable with --skip_bad_items).
 */
class HostileDatasetTest {

    @TempDir
    Path dir;

    private Path imageCache() throws IOException {
        Path cache = Files.createDirectories(dir.resolve("cache"));
        CacheFixture.latent(cache.resolve("good_0032x0032_wan.safetensors"), Shape.of(16, 1, 4, 4), 32, 32, null, null);
        CacheFixture.text(cache.resolve("good_wan_te.safetensors"), 5, 4096, null);
        return cache;
    }

    private Path toml(String body) throws IOException {
        return Files.writeString(dir.resolve("c.toml"), body);
    }

    private static String oneLine(Runnable r) {
        DatasetException e = assertThrows(DatasetException.class, r::run);
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        return e.getMessage();
    }

    /** Item 3: resolution [1e9, 1e9] with bucketing hung listing buckets; [2^31-1, 2^31-1] overflowed. */
    @Test
    @Timeout(20)
    void unboundedNumbersAreRefusedAtLoad() throws IOException {
        Path cache = imageCache();
        for (String resolution : new String[] {"[1000000000, 1000000000]", "[2147483647, 2147483647]", "8193"}) {
            Path f = toml("[general]\nenable_bucket = true\n[[datasets]]\nimage_directory = \"%s\"\nresolution = %s\n"
                    .formatted(cache, resolution));
            String m = oneLine(() -> DatasetConfig.load(f));
            assertTrue(m.contains("key 'resolution' is out of range") && m.contains("expected sizes from 1 to 8192"), m);
        }
        String[][] cases = {{"num_repeats", "2147483647", "from 0 to 10000"}, {"batch_size", "100000", "from 1 to 1024"}};
        for (String[] c : cases) {
            Path f = toml("[[datasets]]\nimage_directory = \"%s\"\nresolution = 32\n%s = %s\n".formatted(cache, c[0], c[1]));
            String m = oneLine(() -> DatasetConfig.load(f));
            assertTrue(m.contains("key '" + c[0] + "' is out of range") && m.contains(c[2]), m);
        }
        Path frames = toml("[[datasets]]\nvideo_directory = \"%s\"\nresolution = 32\ntarget_frames = [1, 2147483647]\n".formatted(cache));
        assertTrue(oneLine(() -> DatasetConfig.load(frames)).contains("each from 1 to 10000"));
        // the largest accepted resolution lists its buckets at once
        Path largest = toml("[general]\nenable_bucket = true\n[[datasets]]\nimage_directory = \"%s\"\nresolution = [8192, 8192]\n"
                .formatted(cache));
        DatasetConfig.load(largest);
    }

    /** Item 3: repeats × items beyond what an epoch's batch list can hold is refused before BatchSchedule builds it. */
    @Test
    void itemsPerEpochAreBounded() throws IOException {
        Path cache = imageCache();
        for (int i = 0; i < 1000; i++) {
            CacheFixture.latent(cache.resolve("i" + i + "_0032x0032_wan.safetensors"), Shape.of(16, 1, 4, 4), 32, 32, null, null);
            CacheFixture.text(cache.resolve("i" + i + "_wan_te.safetensors"), 5, 4096, null);
        }
        Path f = toml("[[datasets]]\nimage_directory = \"%s\"\nresolution = 32\nnum_repeats = 10000\n".formatted(cache));
        String m = oneLine(() -> CacheDataset.discover(DatasetConfig.load(f), Options.STRICT));
        assertTrue(m.contains("10010000 items per epoch (repeats included), more than 10000000"), m);
    }

    /** Item 4: a 20-digit number in a latent key threw NumberFormatException from discovery. */
    @Test
    void hugeNumbersInKeysAndNamesAreOneLine() throws IOException {
        Path cache = imageCache();
        Path bad = cache.resolve("bad_0032x0032_wan.safetensors");
        CacheFixture.latent(bad, "latents_99999999999999999999x4x4_bfloat16", DType.BF16, Shape.of(16, 1, 4, 4), 32, 32, null, null);
        CacheFixture.text(cache.resolve("bad_wan_te.safetensors"), 5, 4096, null);
        Path f = toml("[[datasets]]\nimage_directory = \"%s\"\nresolution = 32\n".formatted(cache));
        String m = oneLine(() -> CacheDataset.discover(DatasetConfig.load(f), Options.STRICT));
        assertTrue(m.startsWith(bad + ": key latents_99999999999999999999x4x4_bfloat16 has the number 99999999999999999999"), m);
        assertEquals(1, CacheDataset.discover(DatasetConfig.load(f), new Options(true)).datasets().getFirst().itemCount());

        Files.delete(bad);
        Path bigName = cache.resolve("big_99999999999999999999x32_wan.safetensors");
        CacheFixture.latent(bigName, Shape.of(16, 1, 4, 4), 32, 32, null, null);
        CacheFixture.text(cache.resolve("big_wan_te.safetensors"), 5, 4096, null);
        assertTrue(oneLine(() -> CacheDataset.discover(DatasetConfig.load(f), Options.STRICT)).contains("in the name is too large"));
    }

    /** Item 6: NaN in a cache passed discovery and stopped training with exit 3 without naming the file. */
    @Test
    void nonFiniteCacheIsNamedAndSkippable() throws IOException {
        Path cache = Files.createDirectories(dir.resolve("values"));
        float[] latents = new float[16 * 4 * 4];
        Arrays.fill(latents, 0.5f);
        CacheFixture.latent(cache.resolve("good_0032x0032_wan.safetensors"), Shape.of(16, 1, 4, 4), 32, 32, null, latents);
        CacheFixture.text(cache.resolve("good_wan_te.safetensors"), 2, 4096, new float[2 * 4096]);
        float[] poisoned = latents.clone();
        poisoned[37] = Float.NaN;
        Path bad = cache.resolve("nan_0032x0032_wan.safetensors");
        CacheFixture.latent(bad, Shape.of(16, 1, 4, 4), 32, 32, null, poisoned);
        CacheFixture.text(cache.resolve("nan_wan_te.safetensors"), 2, 4096, new float[2 * 4096]);
        Path f = toml("[[datasets]]\nimage_directory = \"%s\"\nresolution = 32\n".formatted(cache));

        // headers only: discovery accepts it, reading the batch names the file and the flag
        CacheDataset strict = CacheDataset.discover(DatasetConfig.load(f), Options.STRICT);
        CacheItem item = strict.datasets().getFirst().buckets().values().iterator().next().stream()
                .filter(i -> i.itemKey().equals("nan")).findFirst().orElseThrow();
        String m = oneLine(item::readLatents);
        assertTrue(m.startsWith(bad + ": key latents_1x4x4_bfloat16 holds NaN at element 37; expected finite values"), m);
        assertTrue(m.contains("--skip_bad_items"), m);

        CacheDataset skipping = CacheDataset.discover(DatasetConfig.load(f), new Options(true));
        assertEquals(1, skipping.datasets().getFirst().itemCount());
        assertEquals(1, skipping.warnings().size());
        assertTrue(skipping.warnings().getFirst().startsWith(m), skipping.warnings().getFirst());
    }
}
