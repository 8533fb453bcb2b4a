package dev.wanlora.cli;

import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.io.SafeTensorsWriter.Entry;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static dev.wanlora.cli.CommandRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code wanlora dataset}: the table on a small image + video cache set, and its one-line errors. */
class DatasetCommandTest {

    @TempDir
    Path tmp;

    private static void cache(Path file, String key, Shape shape) {
        SafeTensorsWriter.write(file, List.of(Entry.ofFloats(key, DType.BF16, shape, new float[(int) shape.numElements()])),
                Map.of("architecture", "wan", "format_version", "1.0.1"));
    }

    /**
     * 5 images (64x64, latent [16,1,8,8]) and 3 clips (128x64, head target_frames [1, 5] in bucket 64x32: latents
     * [16,1,4,8] and [16,2,4,8]); returns the config.
     */
    private Path smallDataset() throws IOException {
        Path img = Files.createDirectories(tmp.resolve("img"));
        for (int i = 0; i < 5; i++) {
            cache(img.resolve("im" + i + "_0064x0064_wan.safetensors"), "latents_1x8x8_bfloat16", Shape.of(16, 1, 8, 8));
            cache(img.resolve("im" + i + "_wan_te.safetensors"), "varlen_t5_bfloat16", Shape.of(7, 4096));
        }
        Path vid = Files.createDirectories(tmp.resolve("vid"));
        for (int i = 0; i < 3; i++) {
            cache(vid.resolve("v" + i + "_00000-001_0128x0064_wan.safetensors"), "latents_1x4x8_bfloat16", Shape.of(16, 1, 4, 8));
            cache(vid.resolve("v" + i + "_00000-005_0128x0064_wan.safetensors"), "latents_2x4x8_bfloat16", Shape.of(16, 2, 4, 8));
            cache(vid.resolve("v" + i + "_wan_te.safetensors"), "varlen_t5_bfloat16", Shape.of(9, 4096));
        }
        Path config = tmp.resolve("small.toml");
        Files.writeString(config, """
                [general]
                batch_size = 2

                [[datasets]]
                image_directory = "%s"
                resolution = 64
                num_repeats = 3

                [[datasets]]
                video_directory = "%s"
                resolution = [64, 32]
                enable_bucket = true
                target_frames = [1, 5]
                """.formatted(img, vid));
        return config;
    }

    @Test
    void printsMusubiCounts() throws IOException {
        Path config = smallDataset();
        // images: 5 x 3 repeats = 15, batch 2: ceil(15/2) = 8. videos: two buckets of 3, batch 2: 2 + 2 = 4.
        // 12 batches; accumulation 5: ceil(12/5) = 3 steps per epoch; 4 epochs: 12 steps.
        CommandRun r = run("dataset", "--dataset_config", config.toString(), "--gradient_accumulation_steps", "5",
                "--max_train_epochs", "4");
        assertEquals(0, r.exitCode(), r.err());
        assertEquals("", r.err());
        assertEquals("""
                dataset config: %s

                datasets[0]  image  %s
                  resolution 64x64  bucketing off  batch_size 2  num_repeats 3
                  bucket WxHxF          items  x repeats    batches
                  64x64x1                   5         15          8
                  total                     5         15          8

                datasets[1]  video  %s
                  resolution 64x32  bucketing on  batch_size 2  num_repeats 1  target_frames [1, 5] head
                  bucket WxHxF          items  x repeats    batches
                  64x32x1                   3          3          2
                  64x32x5                   3          3          2
                  total                     6          6          4

                all datasets:     11 items, 21 per epoch with repeats, 12 batches per epoch
                steps per epoch:  3 (ceil(12 batches / gradient_accumulation_steps 5))
                total steps:      12 (4 epochs x 3)
                """.formatted(config, tmp.resolve("img"), tmp.resolve("vid")), r.out());

        // Without --max_train_epochs musubi trains 1600 steps: ceil(1600/3) = 534 epochs.
        r = run("dataset", "--dataset-config", config.toString(), "--gradient-accumulation-steps", "5");
        assertTrue(r.out().endsWith("total steps:      1,600 (musubi's default --max_train_steps), 534 epochs\n"), r.out());
    }

    @Test
    void badItemIsOneLineOrAWarning() throws IOException {
        Path config = smallDataset();
        Files.delete(tmp.resolve("vid").resolve("v1_wan_te.safetensors"));
        CommandRun r = run("dataset", "--dataset_config", config.toString());
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals("wanlora dataset: " + tmp.resolve("vid").resolve("v1_00000-001_0128x0064_wan.safetensors")
                + ": no text-encoder cache v1_wan_te.safetensors beside it; expected one per image or video. hint: "
                + "re-run musubi's wan_cache_text_encoder_outputs.py with this dataset config\n", r.err());

        // Both clips of v1 are left out: 5 images (8 batches) + 2 clips per bucket (1 + 1) = 10 batches.
        r = run("dataset", "--dataset_config", config.toString(), "--skip_bad_items");
        assertEquals(0, r.exitCode(), r.err());
        assertEquals(2, r.err().lines().filter(l -> l.startsWith("warning: ") && l.endsWith("[skipped: --skip_bad_items]")).count(), r.err());
        assertTrue(r.out().contains("all datasets:     9 items, 19 per epoch with repeats, 10 batches per epoch\n"), r.out());
    }

    @Test
    void badConfigAndFlags() throws IOException {
        Path config = tmp.resolve("typo.toml");
        Files.writeString(config, "[[datasets]]\nimage_directory = \"x\"\nnum_repeat = 2\n");
        CommandRun r = run("dataset", "--dataset_config", config.toString());
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals("wanlora dataset: " + config + ": datasets[0]: unknown key 'num_repeat'; expected an image dataset "
                + "key (musubi's dataset schema is strict). hint: did you mean 'num_repeats'?\n", r.err());

        r = run("dataset", "--dataset_config", config.toString(), "--gradient_accumulation_steps", "0");
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals("wanlora dataset: --gradient_accumulation_steps 0: expected a count >= 1\n", r.err());
    }
}
