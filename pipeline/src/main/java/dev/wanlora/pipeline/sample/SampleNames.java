package dev.wanlora.pipeline.sample;

import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;

/**
 * Sample file names as musubi writes them (spec §10.5 "Output"; trainer_base.py): in {@code {output_dir}/sample/},
 * stem {@code {output_name}_e{epoch:06d}_{idx:02d}_{YYYYmmddHHMMSS}_{seed}} at an epoch or
 * {@code {output_name}_{step:06d}_{idx:02d}_{YYYYmmddHHMMSS}_{seed}} at a step; a video is {@code {stem}.mp4}, a
 * single frame {@code {stem}_000.png}. musubi leaves out {@code _{seed}} when the prompt has no {@code --d}; wanlora
 * always draws a seed and always names it, so every sample can be reproduced.
 */
public final class SampleNames {
    private static final DateTimeFormatter TIMESTAMP = DateTimeFormatter.ofPattern("yyyyMMddHHmmss");

    private SampleNames() {}

    /** The sample folder of a run: {@code {output_dir}/sample}. */
    public static Path folder(Path outputDir) { return outputDir.resolve("sample"); }

    /** The stem at the end of {@code epoch} (1-based). */
    public static String epochStem(String outputName, long epoch, int index, LocalDateTime time, long seed) {
        return String.format("%s_e%06d_%02d_%s_%d", outputName, epoch, index, TIMESTAMP.format(time), seed);
    }

    /** The stem after global step {@code step} (0 for --sample_at_first). */
    public static String stepStem(String outputName, long step, int index, LocalDateTime time, long seed) {
        return String.format("%s_%06d_%02d_%s_%d", outputName, step, index, TIMESTAMP.format(time), seed);
    }

    /** The file name: {@code {stem}.mp4} for several frames, {@code {stem}_000.png} for one. */
    public static String fileName(String stem, int frames) {
        return frames == 1 ? stem + "_000.png" : stem + ".mp4";
    }
}
