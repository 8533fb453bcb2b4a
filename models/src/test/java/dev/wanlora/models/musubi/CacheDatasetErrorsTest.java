package dev.wanlora.models.musubi;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.musubi.CacheDataset.Options;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * One test per cache error: the strict run fails with one line naming the file and the musubi script to re-run;
 * with skipBadItems the item is left out with a warning and the good items remain.
 */
class CacheDatasetErrorsTest {

    @TempDir
    Path dir;

    /** An image dataset over dir/cache with one good 32x32 item ("good"); returns the cache folder. */
    private Path imageCache() throws IOException {
        Path cache = Files.createDirectories(dir.resolve("cache"));
        CacheFixture.latent(cache.resolve("good_0032x0032_wan.safetensors"), Shape.of(16, 1, 4, 4), 32, 32, null, null);
        CacheFixture.text(cache.resolve("good_wan_te.safetensors"), 5, 4096, null);
        return cache;
    }

    private Path videoCache() throws IOException {
        Path cache = Files.createDirectories(dir.resolve("vcache"));
        CacheFixture.latent(cache.resolve("good_00000-021_0064x0032_wan.safetensors"), Shape.of(16, 6, 4, 8), 64, 32,
                21, null);
        CacheFixture.text(cache.resolve("good_wan_te.safetensors"), 5, 4096, null);
        return cache;
    }

    private DatasetConfig config(String datasetBody) throws IOException {
        Path f = dir.resolve("c.toml");
        Files.writeString(f, "[[datasets]]\n" + datasetBody);
        return DatasetConfig.load(f);
    }

    private DatasetConfig images(Path cache) throws IOException {
        return config("image_directory = \"%s\"\nresolution = 32\n".formatted(cache));
    }

    private DatasetConfig videos(Path cache) throws IOException {
        return config("video_directory = \"%s\"\nresolution = [64, 32]\ntarget_frames = [21]\n".formatted(cache));
    }

    /** Strict discovery fails with one line holding each fragment; lenient discovery keeps only "good". */
    private void expectBadItem(DatasetConfig config, String... fragments) {
        DatasetException e = assertThrows(DatasetException.class, () -> CacheDataset.discover(config, Options.STRICT));
        String m = e.getMessage();
        assertFalse(m.contains("\n"), m);
        for (String fragment : fragments) assertTrue(m.contains(fragment), "missing '" + fragment + "' in: " + m);
        CacheDataset lenient = CacheDataset.discover(config, new Options(true));
        assertEquals(1, lenient.datasets().get(0).itemCount());
        assertEquals("good", lenient.datasets().get(0).buckets().values().iterator().next().get(0).itemKey());
        assertEquals(1, lenient.warnings().size(), lenient.warnings().toString());
        assertTrue(lenient.warnings().get(0).startsWith(m), lenient.warnings().get(0));
    }

    @Test
    void missingTextCache() throws IOException {
        Path cache = imageCache();
        CacheFixture.latent(cache.resolve("lonely_0032x0032_wan.safetensors"), Shape.of(16, 1, 4, 4), 32, 32, null, null);
        expectBadItem(images(cache), cache.resolve("lonely_0032x0032_wan.safetensors")
                + ": no text-encoder cache lonely_wan_te.safetensors beside it",
                "re-run musubi's wan_cache_text_encoder_outputs.py");
    }

    @Test
    void latentKeyContradictsShape() throws IOException {
        Path cache = videoCache();
        Path bad = cache.resolve("ghibli_00000-045_1920x1040_wan.safetensors");
        CacheFixture.latent(bad, "latents_12x26x48_bfloat16", DType.BF16, Shape.of(16, 12, 26, 47), 1920, 1040, 45, null);
        CacheFixture.text(cache.resolve("ghibli_wan_te.safetensors"), 5, 4096, null);
        expectBadItem(videos(cache), bad + ": key latents_12x26x48_bfloat16 has shape [16,12,26,47], expected "
                + "[16,12,26,48]. hint: re-run musubi's wan_cache_latents.py");
    }

    @Test
    void latentFramesContradictName() throws IOException {
        Path cache = videoCache();
        Path bad = cache.resolve("b_00000-021_0064x0032_wan.safetensors");
        CacheFixture.latent(bad, Shape.of(16, 5, 4, 8), 64, 32, 21, null);
        CacheFixture.text(cache.resolve("b_wan_te.safetensors"), 5, 4096, null);
        expectBadItem(videos(cache), bad + ": key latents_5x4x8_bfloat16 has 5 latent frames, expected 6 for 21 frames");
    }

    @Test
    void wrongChannelCount() throws IOException {
        Path cache = imageCache();
        Path bad = cache.resolve("wan22_0032x0032_wan.safetensors");
        CacheFixture.latent(bad, Shape.of(48, 1, 4, 4), 32, 32, null, null);
        CacheFixture.text(cache.resolve("wan22_wan_te.safetensors"), 5, 4096, null);
        expectBadItem(images(cache), bad + ": key latents_1x4x4_bfloat16 has 48 channels [48,1,4,4], expected 16 "
                + "(the Wan2.1 VAE)", "re-run musubi's wan_cache_latents.py with the Wan2.1 VAE");
    }

    @Test
    void textWidthIsNot4096() throws IOException {
        Path cache = imageCache();
        CacheFixture.latent(cache.resolve("clip_0032x0032_wan.safetensors"), Shape.of(16, 1, 4, 4), 32, 32, null, null);
        Path te = cache.resolve("clip_wan_te.safetensors");
        CacheFixture.text(te, 77, 768, null);
        expectBadItem(images(cache), te + ": key varlen_t5_bfloat16 has shape [77,768], expected [L,4096] "
                + "(umT5-XXL output)", "re-run musubi's wan_cache_text_encoder_outputs.py");
    }

    @Test
    void textTooLong() throws IOException {
        Path cache = imageCache();
        CacheFixture.latent(cache.resolve("long_0032x0032_wan.safetensors"), Shape.of(16, 1, 4, 4), 32, 32, null, null);
        Path te = cache.resolve("long_wan_te.safetensors");
        CacheFixture.text(te, 513, 4096, null);
        expectBadItem(images(cache), te + ": key varlen_t5_bfloat16 has 513 rows [513,4096], expected 1 to 512");
    }

    @Test
    void dtypeContradictsKey() throws IOException {
        Path cache = imageCache();
        Path bad = cache.resolve("f32_0032x0032_wan.safetensors");
        CacheFixture.latent(bad, "latents_1x4x4_bfloat16", DType.F32, Shape.of(16, 1, 4, 4), 32, 32, null, null);
        CacheFixture.text(cache.resolve("f32_wan_te.safetensors"), 5, 4096, null);
        expectBadItem(images(cache), bad + ": key latents_1x4x4_bfloat16 holds F32 data; expected BF16 as its name says");
    }

    @Test
    void noLatentKey() throws IOException {
        Path cache = imageCache();
        Path bad = cache.resolve("other_0032x0032_wan.safetensors");
        CacheFixture.write(bad, java.util.Map.of(), "latents_image_1x4x4_bfloat16", DType.BF16, Shape.of(20, 1, 4, 4), null);
        CacheFixture.text(cache.resolve("other_wan_te.safetensors"), 5, 4096, null);
        expectBadItem(images(cache), bad + ": no latents_{F}x{H}x{W}_{dtype} key (keys: [latents_image_1x4x4_bfloat16])");
    }

    @Test
    void nameWithoutFrameRangeInAVideoDataset() throws IOException {
        Path cache = videoCache();
        Path bad = cache.resolve("still_0064x0032_wan.safetensors");
        CacheFixture.latent(bad, Shape.of(16, 1, 4, 8), 64, 32, null, null);
        expectBadItem(videos(cache), bad + ": name does not follow musubi's latent cache pattern; expected "
                + "{video}_{start:05d}-{count:03d}_{W:04d}x{H:04d}_wan.safetensors in a video dataset");
    }

    @Test
    void corruptFile() throws IOException {
        Path cache = imageCache();
        Path bad = cache.resolve("cut_0032x0032_wan.safetensors");
        Files.write(bad, new byte[] {1, 2, 3});
        CacheFixture.text(cache.resolve("cut_wan_te.safetensors"), 5, 4096, null);
        expectBadItem(images(cache), bad.toString(), "shorter than the 8-byte header length");
    }

    @Test
    void emptyAndMissingCacheDirectories() throws IOException {
        Path empty = Files.createDirectories(dir.resolve("empty"));
        Files.writeString(empty.resolve("notes.txt"), "not a cache");
        DatasetConfig config = images(empty);
        DatasetException e = assertThrows(DatasetException.class, () -> CacheDataset.discover(config, Options.STRICT));
        assertEquals(empty + ": no latent caches (*_wan.safetensors) for datasets[0]; expected the output of musubi's "
                + "wan_cache_latents.py. hint: run wan_cache_latents.py and wan_cache_text_encoder_outputs.py with this "
                + "dataset config, or fix cache_directory", e.getMessage());
        // Lenient: the dataset is skipped, and with nothing left, training has no items (musubi's own error).
        e = assertThrows(DatasetException.class, () -> CacheDataset.discover(config, new Options(true)));
        assertTrue(e.getMessage().contains("no training items in any dataset's cache directory"), e.getMessage());

        Path missing = dir.resolve("missing");
        e = assertThrows(DatasetException.class, () -> CacheDataset.discover(images(missing), Options.STRICT));
        assertTrue(e.getMessage().startsWith(missing + ": cache directory of datasets[0] does not exist"), e.getMessage());
    }

    @Test
    void bucketMixingLatentShapesWithBatches() throws IOException {
        // Videos are always bucketed while caching; a config with enable_bucket = false puts both clips in the one
        // bucket 64x32x21 although they were cached at different sizes.
        Path cache = videoCache();
        CacheFixture.latent(cache.resolve("tall_00000-021_0032x0064_wan.safetensors"), Shape.of(16, 6, 8, 4), 32, 64,
                21, null);
        CacheFixture.text(cache.resolve("tall_wan_te.safetensors"), 5, 4096, null);
        DatasetConfig batched = config("video_directory = \"%s\"\nresolution = [64, 32]\ntarget_frames = [21]\n"
                .formatted(cache) + "batch_size = 2\n");
        DatasetException e = assertThrows(DatasetException.class, () -> CacheDataset.discover(batched, Options.STRICT));
        assertTrue(e.getMessage().contains("bucket 64x32x21 of datasets[0] mixes latent shapes [16,6,4,8] "
                + "(good_00000-021_0064x0032_wan.safetensors) and [16,6,8,4]"), e.getMessage());
        // batch_size 1 never stacks, so musubi trains it; so do we.
        assertEquals(2, CacheDataset.discover(videos(cache), Options.STRICT).datasets().get(0).itemCount());
    }
}
