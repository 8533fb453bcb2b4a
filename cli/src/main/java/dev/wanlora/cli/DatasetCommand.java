package dev.wanlora.cli;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.models.musubi.Bucket;
import dev.wanlora.models.musubi.CacheDataset.DatasetCache;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.DatasetConfig;
import dev.wanlora.models.musubi.DatasetException;
import dev.wanlora.models.musubi.DatasetSpec;
import dev.wanlora.models.text.Counts;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code wanlora dataset --dataset_config F}: what training would see in the caches of a musubi dataset config, counted
 * as musubi counts it (spec §6.4): items and buckets per dataset, batches per epoch (Σ ceil(count × repeats /
 * batch_size)), steps per epoch for the accumulation, and total steps for {@code --max_train_epochs} (or the epochs
 * that {@code --max_train_steps} implies).
 */
@Command(name = "dataset", mixinStandardHelpOptions = true,
        description = "Count the items, buckets, batches and steps of a musubi dataset config's caches.")
final class DatasetCommand implements Callable<Integer> {

    /** musubi's default {@code --max_train_steps}, used when no --max_train_epochs is given. */
    private static final long DEFAULT_MAX_TRAIN_STEPS = 1600;

    @Spec
    CommandSpec spec;

    @Option(names = {"--dataset_config", "--dataset-config"}, required = true, paramLabel = "FILE",
            description = "musubi dataset config (.toml or .json).")
    Path datasetConfig;

    @Option(names = {"--gradient_accumulation_steps", "--gradient-accumulation-steps"}, paramLabel = "N",
            defaultValue = "1", description = "Batches per optimizer step (default: ${DEFAULT-VALUE}).")
    int gradientAccumulationSteps;

    @Option(names = {"--max_train_epochs", "--max-train-epochs"}, paramLabel = "E",
            description = "Epochs to train; sets the total steps as musubi does.")
    Integer maxTrainEpochs;

    @Option(names = {"--max_train_steps", "--max-train-steps"}, paramLabel = "S",
            description = "Total steps when --max_train_epochs is not given (default: musubi's 1600).")
    Long maxTrainSteps;

    @Option(names = {"--skip_bad_items", "--skip-bad-items"},
            description = "Leave out cache items with a missing text cache, a bad header or NaN/Inf values (every cache is read),"
                    + " with a warning, instead of stopping.")
    boolean isSkipBadItems;

    @Override
    public Integer call() {
        if (gradientAccumulationSteps < 1) {
            throw new UserError("--gradient_accumulation_steps " + gradientAccumulationSteps + ": expected a count >= 1");
        }
        if (maxTrainEpochs != null && maxTrainEpochs < 1) {
            throw new UserError("--max_train_epochs " + maxTrainEpochs + ": expected a count >= 1");
        }
        if (maxTrainSteps != null && maxTrainSteps < 1) {
            throw new UserError("--max_train_steps " + maxTrainSteps + ": expected a count >= 1");
        }
        DatasetConfig config;
        CacheDataset data;
        try {
            config = DatasetConfig.load(datasetConfig);
            data = CacheDataset.discover(config, new CacheDataset.Options(isSkipBadItems));
        } catch (DatasetException e) {
            throw new UserError(e.getMessage(), e);
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        for (String w : config.warnings()) err.println("warning: " + w);
        for (String w : data.warnings()) err.println("warning: " + w);
        err.flush();

        out.println("dataset config: " + config.file());
        long items = 0;
        for (DatasetCache d : data.datasets()) {
            items += d.itemCount();
            printDataset(out, d);
        }
        out.println();
        out.printf("all datasets:     %,d items, %,d per epoch with repeats, %,d batches per epoch%n",
                items, data.numTrainItems(), data.batchesPerEpoch());
        long stepsPerEpoch = data.stepsPerEpoch(gradientAccumulationSteps);
        out.printf("steps per epoch:  %,d (ceil(%,d batches / gradient_accumulation_steps %d))%n",
                stepsPerEpoch, data.batchesPerEpoch(), gradientAccumulationSteps);
        if (maxTrainEpochs != null) {
            out.printf("total steps:      %,d (%s x %,d)%n",
                    data.maxTrainSteps(maxTrainEpochs, gradientAccumulationSteps), Counts.of(maxTrainEpochs, "epoch"), stepsPerEpoch);
        } else {
            long steps = maxTrainSteps != null ? maxTrainSteps : DEFAULT_MAX_TRAIN_STEPS;
            long epochs = data.epochsFor(steps, gradientAccumulationSteps);
            out.printf("total steps:      %,d (%s), %,d %s%n", steps,
                    maxTrainSteps != null ? "--max_train_steps" : "musubi's default --max_train_steps",
                    epochs, epochs == 1 ? "epoch" : "epochs");
        }
        out.flush();
        return 0;
    }

    private static void printDataset(PrintWriter out, DatasetCache d) {
        DatasetSpec s = d.spec();
        out.println();
        out.printf("datasets[%d]  %s  %s%n", s.index(), s.isVideo() ? "video" : "image", s.cacheDirectory());
        String frames = s.isVideo()
                ? "  target_frames " + s.frames().targetFrames() + " " + s.frames().extraction().configName() : "";
        out.printf("  resolution %s  bucketing %s  batch_size %d  num_repeats %d%s%n", s.resolution(),
                s.enableBucket() ? (s.bucketNoUpscale() ? "on, no upscale" : "on") : "off", s.batchSize(),
                s.numRepeats(), frames);
        out.printf("  %-16s %10s %10s %10s%n", "bucket WxHxF", "items", "x repeats", "batches");
        for (Bucket b : d.buckets().keySet()) {
            out.printf("  %-16s %,10d %,10d %,10d%n", b, d.buckets().get(b).size(), d.trainItemCount(b),
                    d.batchesPerEpoch(b));
        }
        out.printf("  %-16s %,10d %,10d %,10d%n", "total", d.itemCount(), d.trainItemCount(), d.batchesPerEpoch());
    }
}
