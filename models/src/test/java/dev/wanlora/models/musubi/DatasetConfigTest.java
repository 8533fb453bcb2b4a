package dev.wanlora.models.musubi;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Parsing, musubi's lookup order and defaults, and one test per error message. */
class DatasetConfigTest {

    @TempDir
    Path dir;

    private Path write(String name, String text) throws IOException {
        Path f = dir.resolve(name);
        Files.writeString(f, text);
        return f;
    }

    /** Loads a config that must fail and checks its message is one line naming the file and each fragment. */
    private String failure(String toml, String... fragments) throws IOException {
        Path f = write("bad.toml", toml);
        DatasetException e = assertThrows(DatasetException.class, () -> DatasetConfig.load(f));
        String m = e.getMessage();
        assertFalse(m.contains("\n"), m);
        assertTrue(m.startsWith(f.toString() + ": "), m);
        for (String fragment : fragments) assertTrue(m.contains(fragment), "missing '" + fragment + "' in: " + m);
        return m;
    }

    @Test
    void musubiExampleWithLookupOrder() throws IOException {
        Path f = write("ghibli.toml", """
                [general]
                resolution = [960, 544]
                caption_extension = ".txt"
                batch_size = 2
                enable_bucket = true
                bucket_no_upscale = false

                [[datasets]]
                image_directory = "/data/img"
                cache_directory = "/data/img_cache"
                num_repeats = 3

                [[datasets]]
                video_directory = "/data/vid"
                cache_directory = "/data/vid_cache"
                resolution = 512
                batch_size = 1
                target_frames = [45, 1, 20, 25, 25]
                frame_extraction = "head"
                """);
        DatasetConfig c = DatasetConfig.load(f);
        assertEquals(2, c.datasets().size());

        DatasetSpec img = c.datasets().get(0);
        assertFalse(img.isVideo());
        assertEquals("image_directory", img.sourceKey());
        assertEquals(Path.of("/data/img"), img.source());
        assertEquals(Path.of("/data/img_cache"), img.cacheDirectory());
        assertEquals(new Resolution(960, 544), img.resolution());   // from [general]
        assertEquals(".txt", img.captionExtension());
        assertEquals(2, img.batchSize());                           // from [general]
        assertEquals(3, img.numRepeats());                          // from the dataset
        assertTrue(img.enableBucket());
        assertNull(img.frames());

        DatasetSpec vid = c.datasets().get(1);
        assertTrue(vid.isVideo());
        assertEquals(new Resolution(512, 512), vid.resolution());   // dataset's int beats [general]
        assertEquals(1, vid.batchSize());
        assertEquals(1, vid.numRepeats());                          // dataclass default
        // {45, 1, 20, 25} sorted = [1, 20, 25, 45]; 4n+1 rounding turns 20 into 17.
        assertEquals(List.of(1, 17, 25, 45), vid.frames().targetFrames());
        assertEquals(FrameExtraction.HEAD, vid.frames().extraction());
        assertEquals(129, vid.frames().maxFrames());
        assertNull(vid.frames().sourceFps());
        assertEquals(1, c.warnings().size());
        assertTrue(c.warnings().get(0).contains("datasets[1]: target_frames [1, 20, 25, 45] rounded down to 4n+1: [1, 17, 25, 45]"),
                c.warnings().get(0));
    }

    @Test
    void defaults() throws IOException {
        DatasetConfig c = DatasetConfig.load(write("d.toml", """
                [[datasets]]
                image_directory = "imgs"
                bucket_no_upscale = true

                [[datasets]]
                video_directory = "vids"
                """));
        DatasetSpec img = c.datasets().get(0);
        assertEquals(new Resolution(960, 544), img.resolution());
        assertEquals(1, img.batchSize());
        assertEquals(1, img.numRepeats());
        assertFalse(img.enableBucket());
        assertFalse(img.bucketNoUpscale());                         // forced off without enable_bucket, as musubi
        assertNull(img.captionExtension());
        assertEquals(Path.of("imgs"), img.cacheDirectory());        // cache defaults to the image directory
        FrameSpec fr = c.datasets().get(1).frames();
        assertEquals(Path.of("vids"), c.datasets().get(1).cacheDirectory());
        assertEquals(new FrameSpec(List.of(1), FrameExtraction.HEAD, 1, 1, 129, null), fr);
        assertTrue(c.warnings().isEmpty(), c.warnings().toString());
    }

    @Test
    void videoKeysAndWarnings() throws IOException {
        DatasetConfig c = DatasetConfig.load(write("v.toml", """
                [[datasets]]
                video_jsonl_file = "clips.jsonl"
                cache_directory = "cache_u"
                target_frames = [45]
                frame_extraction = "uniform"
                frame_sample = 1
                source_fps = 30
                control_directory = "ctrl"

                [[datasets]]
                video_directory = "v"
                cache_directory = "cache_s"
                frame_extraction = "slide"
                frame_stride = 10
                max_frames = 81
                source_fps = 29.97
                """));
        FrameSpec u = c.datasets().get(0).frames();
        assertEquals(FrameExtraction.HEAD, u.extraction());        // uniform with frame_sample 1 becomes head
        assertEquals(30.0, u.sourceFps());                         // an integer is accepted (musubi wants 30.0)
        FrameSpec s = c.datasets().get(1).frames();
        assertEquals(new FrameSpec(List.of(1), FrameExtraction.SLIDE, 10, 1, 81, 29.97), s);
        assertEquals(2, c.warnings().size(), c.warnings().toString());
        assertTrue(c.warnings().get(0).contains("key 'control_directory' has no effect"), c.warnings().get(0));
        assertTrue(c.warnings().get(1).contains("becomes \"head\""), c.warnings().get(1));
    }

    @Test
    void jsonIsAccepted() throws IOException {
        DatasetConfig c = DatasetConfig.load(write("c.json", """
                {"general": {"resolution": [832, 480], "enable_bucket": true},
                 "datasets": [{"video_directory": "v", "target_frames": [1, 81], "frame_extraction": "full"}]}
                """));
        DatasetSpec d = c.datasets().get(0);
        assertEquals(new Resolution(832, 480), d.resolution());
        assertEquals(List.of(1, 81), d.frames().targetFrames());
        assertEquals(FrameExtraction.FULL, d.frames().extraction());
    }

    @Test
    void deprecatedKeyIsRenamed() throws IOException {
        DatasetConfig c = DatasetConfig.load(write("dep.toml", """
                [[datasets]]
                image_directory = "i"
                flux_kontext_no_resize_control = true
                """));
        assertTrue(c.warnings().get(0).contains("deprecated key 'flux_kontext_no_resize_control'; use 'no_resize_control'"));
    }

    // ---- errors

    @Test
    void unknownKeyNamesTheClosestKey() throws IOException {
        failure("""
                [[datasets]]
                video_directory = "v"
                target_frame = [1]
                """, "datasets[0]: unknown key 'target_frame'", "did you mean 'target_frames'?");
        failure("""
                [general]
                batchsize = 2
                [[datasets]]
                image_directory = "i"
                """, "[general]: unknown key 'batchsize'", "did you mean 'batch_size'?");
        failure("""
                dataset = []
                """, "top level: unknown key 'dataset'", "did you mean 'datasets'?");
    }

    @Test
    void keyOfTheOtherKind() throws IOException {
        failure("""
                [[datasets]]
                image_directory = "i"
                target_frames = [1, 21]
                """, "datasets[0]: key 'target_frames' is only valid in a video dataset");
        failure("""
                [[datasets]]
                video_directory = "v"
                image_directory = "i"
                """, "datasets[0]: key 'image_directory' is only valid in an image dataset");
        failure("""
                [general]
                cache_directory = "c"
                [[datasets]]
                image_directory = "i"
                """, "[general]: key 'cache_directory' is only valid inside a [[datasets]] table");
    }

    @Test
    void wrongTypes() throws IOException {
        failure("""
                [[datasets]]
                image_directory = "i"
                batch_size = "4"
                """, "datasets[0]: key 'batch_size' has the wrong type; got \"4\" (a string), expected an integer");
        failure("""
                [general]
                resolution = [960, 544, 1]
                [[datasets]]
                image_directory = "i"
                """, "[general]: key 'resolution' has the wrong type", "expected an integer or an array [width, height]");
        failure("""
                [[datasets]]
                image_directory = "i"
                enable_bucket = 1
                """, "key 'enable_bucket' has the wrong type; got 1 (an integer), expected true or false");
        failure("""
                [[datasets]]
                video_directory = "v"
                target_frames = 21
                """, "key 'target_frames' has the wrong type", "expected an array of integers");
        failure("""
                [[datasets]]
                image_directory = "i"
                num_repeats = 2.5
                """, "key 'num_repeats' has the wrong type; got 2.5 (a floating-point number)");
    }

    @Test
    void outOfRange() throws IOException {
        failure("""
                [general]
                batch_size = 0
                [[datasets]]
                image_directory = "i"
                """, "[general]: key 'batch_size' is out of range; got 0, expected an integer from 1 to 1024");
        failure("""
                [[datasets]]
                video_directory = "v"
                target_frames = [0, 21]
                """, "datasets[0]: key 'target_frames' is out of range; got [0,21]");
        failure("""
                [[datasets]]
                video_directory = "v"
                frame_extraction = "middle"
                """, "key 'frame_extraction' is out of range; got \"middle\", expected one of \"head\"");
        failure("""
                [[datasets]]
                video_directory = "v"
                source_fps = 0.0
                """, "key 'source_fps' is out of range");
        failure("""
                [[datasets]]
                image_directory = "i"
                resolution = [24, 24]
                enable_bucket = true
                """, "datasets[0]: key 'resolution' is too small for bucketing; got 24x24");
    }

    @Test
    void cacheDirectoryMustBeUnique() throws IOException {
        failure("""
                [[datasets]]
                image_directory = "a"
                cache_directory = "shared"
                [[datasets]]
                image_directory = "b"
                [[datasets]]
                video_directory = "c"
                cache_directory = "./shared/"
                """, "datasets[0] and datasets[2] use the same cache directory", "give one of them its own cache_directory");
        failure("""
                [[datasets]]
                image_directory = "a"
                [[datasets]]
                video_directory = "a"
                """, "datasets[0] and datasets[1] use the same cache directory 'a'");
    }

    @Test
    void structuralMistakes() throws IOException {
        failure("""
                [[datasets]]
                image_jsonl_file = "x.jsonl"
                """, "datasets[0]: a dataset read from image_jsonl_file has no cache_directory");
        failure("""
                [[datasets]]
                caption_extension = ".txt"
                """, "datasets[0]: no media source");
        failure("""
                [general]
                batch_size = 1
                """, "no [[datasets]] entries");
        failure("""
                [[datasets]
                image_directory = "i"
                """, "not valid TOML at line", "expected ARRAY_TABLE_CLOSE");
        Path missing = dir.resolve("nope.toml");
        DatasetException e = assertThrows(DatasetException.class, () -> DatasetConfig.load(missing));
        assertEquals(missing + ": dataset config not found; expected a .toml or .json file. hint: check the "
                + "--dataset_config path", e.getMessage());
        Path yaml = write("c.yaml", "datasets: []");
        e = assertThrows(DatasetException.class, () -> DatasetConfig.load(yaml));
        assertTrue(e.getMessage().contains("expected a name ending in .toml or .json"), e.getMessage());
    }
}
