package dev.wanlora.cli.demo;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.pipeline.sample.SampleModels;
import dev.wanlora.cli.train.TrainCommand;
import dev.wanlora.engine.io.AtomicFiles;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * {@code wanlora demo}: the whole pipeline in well under a minute with nothing to download. In a work folder it makes
 * a tiny random Wan2.1 DiT (the golden tiny shape: dim 256, 2 heads, 2 blocks, real text and latent widths),
 * synthetic musubi caches (three images in one bucket, two video clips in another) and a dataset TOML, then runs
 * {@code wanlora train} on them for two epochs on the best backend, printing the loss of every step, and samples
 * two prompts after each epoch (an .mp4 and a .png, with the demo's stand-ins for umT5 and the VAE).
 *
 * <p>The work folder is never one the demo did not make: it must be absent, empty, or hold the demo's marker file
 * (then its previous contents are replaced).
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Train a LoRA on a tiny random Wan model and synthetic musubi caches (2 epochs, samples after each),"
                + " to see wanlora work.")
public final class DemoCommand implements Callable<Integer> {

    /** Marks a folder as made by the demo, so a later run may replace it. */
    static final String MARKER = ".wanlora-demo";
    static final String OUTPUT_NAME = "demo";
    static final long SEED = 42;

    @Option(names = "--dir", paramLabel = "DIR", defaultValue = "demo-run",
            description = "Work folder (default ${DEFAULT-VALUE}); made by the demo, never one it did not make.")
    Path dir;

    @Option(names = "--backend", paramLabel = "auto|cpu|cuda", defaultValue = "auto",
            description = "Where to train (default ${DEFAULT-VALUE}: the GPU when there is one).")
    String backend;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        prepareFolder();
        out.println("wanlora demo: work folder " + dir.toAbsolutePath());

        Path model = dir.resolve("model/wan-tiny-random.safetensors");
        WanDitConfig config = new WanDitConfig(256, 512, 2, 2, 16, 16, 4096, 256, WanDitConfig.TEXT_LEN, 1e-6f,
                WanDitConfig.PATCH_1_2_2);
        Path images = dir.resolve("cache/images");
        Path videos = dir.resolve("cache/videos");
        try {
            Files.createDirectories(model.getParent());
            Files.createDirectories(images);
            Files.createDirectories(videos);
            Files.createDirectories(dir.resolve("images"));
            Files.createDirectories(dir.resolve("videos"));
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot create the demo folders (" + e.getMessage() + ")", e);
        }
        SafeTensorsWriter.write(model, WanDitWeights.randomCheckpoint(config, SEED), Map.of());
        int item = 0;
        for (String name : List.of("red_fox", "blue_lake", "green_hill")) {
            SyntheticCaches.image(images, name, 64, 64, 12 + item, SEED + item++);
        }
        for (String name : List.of("waves", "clouds")) {
            SyntheticCaches.video(videos, name, 64, 48, 9, 20 + item, SEED + item++);
        }
        Path dataset = dir.resolve("dataset.toml");
        AtomicFiles.writeString(dataset, """
                # musubi dataset config written by wanlora demo: one image and one video dataset, one bucket each
                [general]
                batch_size = 1
                enable_bucket = false

                [[datasets]]
                image_directory = "%s"
                cache_directory = "%s"
                resolution = [64, 64]

                [[datasets]]
                video_directory = "%s"
                cache_directory = "%s"
                resolution = [64, 48]
                target_frames = [9]
                """.formatted(toml(dir.resolve("images")), toml(images), toml(dir.resolve("videos")), toml(videos)));
        Path prompts = dir.resolve("sample_prompts.txt");
        AtomicFiles.writeString(prompts, """
                # sample prompts written by wanlora demo (musubi's .txt syntax): a 9-frame clip and a still image
                a red fox running through the snow --w 64 --h 48 --f 9 --s 10 --fs 3.0 --d 1
                a calm blue lake --w 64 --h 64 --s 10 --fs 3.0 --d 2
                """);
        out.println("made: " + model + " (random, " + config.numLayers() + " blocks, dim " + config.dim() + "), 3 image and"
                + " 2 video caches, " + dataset + ", " + prompts);
        out.println("note: samples use the demo's random stand-ins for umT5 and the VAE, so they show the latent's structure,"
                + " not a picture; with --t5 and --vae, wanlora train makes real ones");
        out.flush();

        Path output = dir.resolve("output");
        String[] args = {"--dit", model.toString(), "--dataset_config", dataset.toString(), "--output_dir", output.toString(),
                "--output_name", OUTPUT_NAME, "--network_dim", "4", "--network_alpha", "4", "--learning_rate", "2e-3",
                "--optimizer_type", "adamw", "--timestep_sampling", "shift", "--discrete_flow_shift", "3.0",
                "--max_train_epochs", "2", "--save_every_n_epochs", "1", "--mixed_precision", "bf16",
                "--gradient_checkpointing", "--seed", Long.toString(SEED), "--logging_dir", dir.resolve("logs").toString(),
                "--sample_prompts", prompts.toString(), "--sample_every_n_epochs", "1", "--backend", backend};
        out.println("training: wanlora train " + String.join(" ", args));
        out.flush();
        int code = TrainCommand.run(args, out, SampleModels.demoStandIns());
        if (code != 0) return code;

        // musubi writes no epoch file for the last epoch, only {name}.safetensors; the demo promises both epochs.
        Path last = output.resolve(OUTPUT_NAME + ".safetensors");
        Path epoch2 = output.resolve(OUTPUT_NAME + "-000002.safetensors");
        AtomicFiles.write(epoch2, temp -> Files.copy(last, temp, StandardCopyOption.REPLACE_EXISTING));
        out.println("note: like musubi, training saved the last epoch as " + last.getFileName() + "; the demo also copied it to "
                + epoch2.getFileName() + " so that both epochs have a file");
        out.println("LoRA files: " + output.resolve(OUTPUT_NAME + "-000001.safetensors") + ", " + epoch2);
        out.println("samples: " + output.resolve("sample") + " (one .mp4 and one .png per epoch)");
        out.println("TensorBoard: tensorboard --logdir " + dir.resolve("logs"));
        return 0;
    }

    /** Creates the work folder, or empties one the demo made earlier; refuses any other existing folder. */
    private void prepareFolder() {
        try {
            if (Files.exists(dir)) {
                if (!Files.isDirectory(dir)) throw new UserError(dir + ": is a file; pass --dir with a folder name");
                boolean isOurs = Files.exists(dir.resolve(MARKER));
                boolean isEmpty;
                try (Stream<Path> entries = Files.list(dir)) {
                    isEmpty = entries.findAny().isEmpty();
                }
                if (!isOurs && !isEmpty) {
                    throw new UserError(dir + ": exists and was not made by wanlora demo; the demo never overwrites it."
                            + " Pass --dir with a new folder, or remove this one");
                }
                if (isOurs) deleteContents(dir);
            }
            Files.createDirectories(dir);
            Files.writeString(dir.resolve(MARKER), "made by wanlora demo; the demo replaces this folder's contents when run again\n");
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot prepare the work folder (" + e.getMessage() + ")", e);
        }
    }

    private static void deleteContents(Path folder) throws IOException {
        try (Stream<Path> paths = Files.walk(folder)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                if (!p.equals(folder)) Files.delete(p);
            }
        }
    }

    /** A TOML basic string's contents: absolute path with backslashes and quotes escaped (Windows paths). */
    private static String toml(Path p) {
        return p.toAbsolutePath().toString().replace("\\", "\\\\").replace("\"", "\\\"");
    }
}
