package dev.wanlora.models.musubi;

import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.musubi.CacheDataset.DatasetCache;
import dev.wanlora.models.musubi.CacheDataset.Options;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Discovery, bucketing and counting on a synthetic three-section dataset with the real cache shapes.
 *
 * <p>Size choice: the caches have their real shapes ([16,1,96,96], [16,6,52,96], [16,12,26,48] bf16, up to 958 KB
 * each), but their data sections are sparse holes ({@link CacheFixture}), so the 1,676 files cost only their headers
 * on disk. Discovery reads headers only, so it sees exactly what it would see in a real cache folder; reading values
 * is tested on small files in {@link CacheItemTest}.
 */
class CacheDatasetTest {

    @TempDir
    static Path dir;

    private static final int IMAGES = 120;
    private static final int CLIPS = 240;
    private static final int SHORT_CLIPS = 2;   // clips 238 and 239 have 30 frames: too short for 45

    private static CacheDataset data;

    /** Builds the caches once for the class: musubi's naming, original sizes in the names. */
    private static synchronized CacheDataset threeSections() throws IOException {
        if (data != null) return data;
        Path images = Files.createDirectories(dir.resolve("img_cache"));
        Path head = Files.createDirectories(dir.resolve("vid_head"));
        Path uniform = Files.createDirectories(dir.resolve("vid_uniform"));
        // Section 1: 120 images of mixed original sizes, all cached at 768x768 (no bucketing: one bucket).
        int[][] originals = {{1024, 1024}, {1920, 1080}, {800, 1200}};
        for (int i = 0; i < IMAGES; i++) {
            int[] o = originals[i % 3];
            String name = String.format("img%03d", i);
            CacheFixture.latent(images.resolve(String.format("%s_%04dx%04d_wan.safetensors", name, o[0], o[1])),
                    Shape.of(16, 1, 96, 96), o[0], o[1], null, null);
            CacheFixture.text(images.resolve(name + "_wan_te.safetensors"), 10 + i % 50, 4096, null);
        }
        // Sections 2 and 3: 240 clips of 1920x1040; 238 have 81 frames and 2 have 30.
        for (int i = 0; i < CLIPS; i++) {
            String name = String.format("clip%03d", i);
            // head, target_frames [1, 21], bucket 768x416: latents [16,1,52,96] and [16,6,52,96].
            CacheFixture.latent(head.resolve(name + "_00000-001_1920x1040_wan.safetensors"), Shape.of(16, 1, 52, 96),
                    1920, 1040, 1, null);
            CacheFixture.latent(head.resolve(name + "_00000-021_1920x1040_wan.safetensors"), Shape.of(16, 6, 52, 96),
                    1920, 1040, 21, null);
            CacheFixture.text(head.resolve(name + "_wan_te.safetensors"), 30, 4096, null);
            // uniform, target_frames [45], frame_sample 2, bucket 384x208: starts linspace(0, 81-45, 2) = 0, 36.
            CacheFixture.text(uniform.resolve(name + "_wan_te.safetensors"), 30, 4096, null);
            if (i >= CLIPS - SHORT_CLIPS) continue;
            for (int start : new int[] {0, 36}) {
                CacheFixture.latent(uniform.resolve(String.format("%s_%05d-045_1920x1040_wan.safetensors", name, start)),
                        Shape.of(16, 12, 26, 48), 1920, 1040, 45, null);
            }
        }
        Path config = dir.resolve("three.toml");
        Files.writeString(config, """
                [general]
                caption_extension = ".txt"
                enable_bucket = true

                [[datasets]]
                image_directory = "%s"
                resolution = 768
                enable_bucket = false
                batch_size = 7
                num_repeats = 2

                [[datasets]]
                video_directory = "/videos"
                cache_directory = "%s"
                resolution = [768, 416]
                target_frames = [1, 21]
                frame_extraction = "head"
                batch_size = 7
                num_repeats = 3

                [[datasets]]
                video_directory = "/videos"
                cache_directory = "%s"
                resolution = [384, 208]
                target_frames = [45]
                frame_extraction = "uniform"
                frame_sample = 2
                batch_size = 5
                """.formatted(images, head, uniform));
        data = CacheDataset.discover(DatasetConfig.load(config), Options.STRICT);
        return data;
    }

    @Test
    void threeSectionCounts() throws IOException {
        long t0 = System.nanoTime();
        CacheDataset d = threeSections();
        System.out.printf("three-section discovery (1676 files, first call builds them): %.2f s%n",
                (System.nanoTime() - t0) / 1e9);
        assertTrue(d.warnings().isEmpty(), d.warnings().toString());

        DatasetCache images = d.datasets().get(0);
        assertEquals(Map.of(new Bucket(768, 768, 1), IMAGES), sizes(images));
        // 120 items x 2 repeats = 240, batch 7: ceil(240/7) = 35 (34 full batches + one of 2).
        assertEquals(35, images.batchesPerEpoch());

        DatasetCache head = d.datasets().get(1);
        assertEquals(Map.of(new Bucket(768, 416, 1), CLIPS, new Bucket(768, 416, 21), CLIPS), sizes(head));
        // per bucket 240 x 3 repeats = 720, batch 7: ceil(720/7) = 103 (102 full + one of 6); two buckets: 206.
        assertEquals(206, head.batchesPerEpoch());
        CacheItem clip = head.buckets().get(new Bucket(768, 416, 21)).get(0);
        assertEquals(Shape.of(16, 6, 52, 96), clip.latentShape());
        assertEquals("clip000", clip.itemKey());
        assertEquals(21, clip.frameCount());
        assertEquals(Shape.of(30, 4096), clip.textShape());

        DatasetCache uniform = d.datasets().get(2);
        // (240 - 2) clips x 2 windows = 476 items in one bucket, repeats 1, batch 5: ceil(476/5) = 96.
        assertEquals(Map.of(new Bucket(384, 208, 45), 476), sizes(uniform));
        assertEquals(96, uniform.batchesPerEpoch());
        assertEquals(Shape.of(16, 12, 26, 48), uniform.buckets().get(new Bucket(384, 208, 45)).get(0).latentShape());

        // Total 35 + 206 + 96 = 337 batches; items 240 + 1440 + 476 = 2156.
        assertEquals(337, d.batchesPerEpoch());
        assertEquals(2156, d.numTrainItems());
        // gradient_accumulation_steps 4: ceil(337/4) = 85 steps per epoch; 10 epochs: 850 steps.
        assertEquals(85, d.stepsPerEpoch(4));
        assertEquals(850, d.maxTrainSteps(10, 4));
        assertEquals(337, d.stepsPerEpoch(1));
        // --max_train_steps 1600 (musubi's default) at accumulation 4: ceil(1600/85) = 19 epochs.
        assertEquals(19, d.epochsFor(1600, 4));
    }

    @Test
    void framesWindowsAgreeWithTheCacheNames() {
        FrameSpec uniform = new FrameSpec(List.of(45), FrameExtraction.UNIFORM, 1, 2, 129, null);
        assertEquals(List.of(new FrameWindows.Window(0, 45), new FrameWindows.Window(36, 45)),
                FrameWindows.windows(uniform, 81));
        assertEquals(List.of(), FrameWindows.windows(uniform, 30));
        assertEquals(12, new FrameWindows.Window(0, 45).latentFrames());
    }

    @Test
    void scheduleGroupsLikeMusubiAndIsDeterministic() throws IOException {
        CacheDataset d = threeSections();
        BatchSchedule schedule = new BatchSchedule(d, 2025);
        List<Batch> epoch1 = schedule.epoch(1);
        assertEquals(337, epoch1.size());
        assertEquals(epoch1, schedule.epoch(1));                                 // same seed and epoch: same order
        assertNotEquals(epoch1, schedule.epoch(2));
        assertNotEquals(epoch1, new BatchSchedule(d, 2026).epoch(1));
        assertEquals(epoch1.subList(100, 337), schedule.epochFrom(1, 100));       // resume at batch 100

        // Batch sizes per (dataset, bucket): the last batch of each bucket is the short one.
        Map<String, List<Integer>> sizes = new HashMap<>();
        Map<CacheItem, Integer> uses = new HashMap<>();
        for (int i = 0; i < epoch1.size(); i++) {
            Batch b = epoch1.get(i);
            assertEquals(i, b.position());
            sizes.computeIfAbsent(b.datasetIndex() + ":" + b.bucket(), k -> new ArrayList<>()).add(b.items().size());
            for (CacheItem item : b.items()) {
                assertEquals(b.items().get(0).latentShape(), item.latentShape());
                uses.merge(item, 1, Integer::sum);
            }
        }
        assertEquals(sizeMultiset(34, 7, 2), sorted(sizes.get("0:768x768x1")));
        assertEquals(sizeMultiset(102, 7, 6), sorted(sizes.get("1:768x416x1")));
        assertEquals(sizeMultiset(102, 7, 6), sorted(sizes.get("1:768x416x21")));
        assertEquals(sizeMultiset(95, 5, 1), sorted(sizes.get("2:384x208x45")));
        assertEquals(4, sizes.size());
        // Every item appears num_repeats times per epoch.
        for (DatasetCache ds : d.datasets()) {
            for (List<CacheItem> items : ds.buckets().values()) {
                for (CacheItem item : items) assertEquals(ds.spec().numRepeats(), uses.get(item));
            }
        }
        assertEquals(Shape.of(5, 16, 12, 26, 48), epoch1.stream().filter(b -> b.datasetIndex() == 2)
                .filter(b -> b.items().size() == 5).findFirst().orElseThrow().latentShape());
    }

    private static Map<Bucket, Integer> sizes(DatasetCache d) {
        Map<Bucket, Integer> m = new HashMap<>();
        d.buckets().forEach((k, v) -> m.put(k, v.size()));
        return m;
    }

    private static List<Integer> sizeMultiset(int full, int size, int last) {
        List<Integer> l = new ArrayList<>();
        l.add(last);
        for (int i = 0; i < full; i++) l.add(size);
        return l;
    }

    private static List<Integer> sorted(List<Integer> l) {
        return l.stream().sorted().toList();
    }
}
