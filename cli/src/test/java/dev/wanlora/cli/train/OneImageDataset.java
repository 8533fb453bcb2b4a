package dev.wanlora.cli.train;

import dev.wanlora.cli.demo.SyntheticCaches;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The smallest training data the memory-plan tests need: one 64×64 image cache and its dataset TOML. */
final class OneImageDataset {
    private OneImageDataset() {}

    /**
     * Writes one image cache ("cat", latent (1, 16, 1, 8, 8), 7 text rows) under {@code dir/cache/images} and the
     * dataset TOML {@code dir/tomlName} that reads it (batch 1, no bucketing); returns the TOML's path.
     */
    static Path write(Path dir, String tomlName) throws IOException {
        Path images = Files.createDirectories(dir.resolve("cache/images"));
        SyntheticCaches.image(images, "cat", 64, 64, 7, 1);
        return Files.writeString(dir.resolve(tomlName), """
                [general]
                batch_size = 1
                enable_bucket = false

                [[datasets]]
                image_directory = "%s"
                cache_directory = "%s"
                resolution = [64, 64]
                """.formatted(dir.resolve("images"), images));
    }
}
