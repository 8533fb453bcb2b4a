package dev.wanlora.models.musubi;

import java.nio.file.Path;
import java.util.List;

/**
 * A musubi dataset config ({@code --dataset_config}), read and checked as musubi's {@code config_utils.py} does.
 *
 * <p>The file ({@code .toml}, or {@code .json} with the same structure) has an optional {@code [general]} table and
 * a {@code [[datasets]]} array. Every parameter is looked up in the dataset's table, then in {@code [general]}, then
 * takes musubi's dataclass default. (musubi also consults the training command line between {@code [general]} and the
 * default, but at the pinned commit no training flag shares a name with a dataset key, so that level is empty.)
 * Keys outside musubi's schema are an error, as in musubi; see {@link DatasetConfigReader} for the schema.
 *
 * @param file     the config file
 * @param datasets the datasets in file order
 * @param warnings what musubi would log as a warning (rounded target_frames, keys without effect for T2V, ...),
 *                 each one line starting with the file name
 */
public record DatasetConfig(Path file, List<DatasetSpec> datasets, List<String> warnings) {

    public DatasetConfig {
        datasets = List.copyOf(datasets);
        warnings = List.copyOf(warnings);
    }

    /**
     * Reads and checks a config file.
     *
     * @throws DatasetException with one line naming the file, the dataset and the key, on any mistake
     */
    public static DatasetConfig load(Path file) {
        return new DatasetConfigReader(file).read();
    }
}
