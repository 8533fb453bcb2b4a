package dev.wanlora.models.musubi;

import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.io.SafeTensorsWriter.Entry;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.musubi.CacheDataset.Options;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Loading a batch's tensors from small caches with known values. */
class CacheItemTest {

    @TempDir
    Path dir;

    @Test
    void readsLatentsAndTextWidenedFromBf16() throws IOException {
        Path cache = Files.createDirectories(dir.resolve("cache"));
        SplittableRandom random = new SplittableRandom(7);
        float[] latent = new float[16 * 2 * 2 * 4];                 // [16, F=2, H=2, W=4]: a 5-frame clip
        for (int i = 0; i < latent.length; i++) latent[i] = (float) random.nextGaussian();
        float[] text = new float[3 * 4096];                          // [L=3, 4096]
        for (int i = 0; i < text.length; i++) text[i] = (float) (random.nextDouble() * 8 - 4);
        // Written by the project's own writer, with musubi's metadata (cache_io.py).
        SafeTensorsWriter.write(cache.resolve("clip_00004-005_0064x0032_wan.safetensors"),
                List.of(Entry.ofFloats("latents_2x2x4_bfloat16", DType.BF16, Shape.of(16, 2, 2, 4), latent)),
                Map.of("architecture", "wan", "width", "64", "height", "32", "format_version", "1.0.1",
                        "frame_count", "5"));
        SafeTensorsWriter.write(cache.resolve("clip_wan_te.safetensors"),
                List.of(Entry.ofFloats("varlen_t5_bfloat16", DType.BF16, Shape.of(3, 4096), text)),
                Map.of("architecture", "wan", "caption1", "a clip", "format_version", "1.0.1"));
        Path config = dir.resolve("c.toml");
        Files.writeString(config, """
                [[datasets]]
                video_directory = "%s"
                resolution = [64, 32]
                target_frames = [5]
                """.formatted(cache));

        CacheDataset data = CacheDataset.discover(DatasetConfig.load(config), Options.STRICT);
        // No bucketing: the one bucket is the resolution, with the clip's 5 frames.
        List<CacheItem> items = data.datasets().get(0).buckets().get(new Bucket(64, 32, 5));
        CacheItem item = items.get(0);
        assertEquals(4, item.frameStart());
        assertEquals(64, item.originalWidth());
        assertEquals("latents_2x2x4_bfloat16", item.latentKey());
        assertEquals("varlen_t5_bfloat16", item.textKey());

        // The file stores bf16 (round to nearest even); reading widens exactly, so we get the rounded values back.
        float[] expectedLatent = latent.clone();
        Bf16.roundInPlace(expectedLatent);
        LoadedTensor l = item.readLatents();
        assertEquals(Shape.of(16, 2, 2, 4), l.shape());
        assertArrayEquals(expectedLatent, l.values());
        float[] expectedText = text.clone();
        Bf16.roundInPlace(expectedText);
        LoadedTensor t = item.readText();
        assertEquals(Shape.of(3, 4096), t.shape());
        assertArrayEquals(expectedText, t.values());
    }

    @Test
    void refusesACacheRewrittenAfterDiscovery() throws IOException {
        Path cache = Files.createDirectories(dir.resolve("img"));
        Path latentFile = cache.resolve("a_0032x0032_wan.safetensors");
        CacheFixture.latent(latentFile, Shape.of(16, 1, 4, 4), 32, 32, null, new float[256]);
        CacheFixture.text(cache.resolve("a_wan_te.safetensors"), 2, 4096, null);
        Path config = dir.resolve("c.toml");
        Files.writeString(config, "[[datasets]]\nimage_directory = \"%s\"\nresolution = 32\n".formatted(cache));
        CacheItem item = CacheDataset.discover(DatasetConfig.load(config), Options.STRICT).datasets().get(0)
                .buckets().values().iterator().next().get(0);
        CacheFixture.latent(latentFile, Shape.of(16, 1, 4, 4), 32, 32, null, new float[256]);
        assertEquals(256, item.readLatents().values().length);                      // same header: fine
        CacheFixture.latent(latentFile, "latents_1x4x4_bfloat16", DType.F32,
                Shape.of(16, 1, 4, 4), 32, 32, null, new float[256]);
        DatasetException e = assertThrows(DatasetException.class, item::readLatents);
        assertTrue(e.getMessage().contains("key latents_1x4x4_bfloat16 is now F32 [16,1,4,4], expected BF16"),
                e.getMessage());
    }
}
