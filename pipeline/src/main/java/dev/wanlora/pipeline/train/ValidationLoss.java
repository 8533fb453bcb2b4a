package dev.wanlora.pipeline.train;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.flow.TimestepSampling;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.musubi.Batch;
import dev.wanlora.models.musubi.BatchSchedule;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.wan.WanDit;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/**
 * musubi has no validation loss. Ours: every validation batch (a fixed order) at every fixed noise level t of
 * --validation_timesteps, with noise fixed by (seed, batch, level), no gradient; the loss is the mean squared error
 * averaged over batches (weighted by batch size) and levels ({@link FlowMatchingObjective#prepareAt}).
 *
 * @param data     the validation dataset
 * @param levels   the noise levels t
 * @param mode     the training sampler's mode (its model-timestep convention)
 * @param seed     the run's seed (the batch order)
 * @param noiseSeed the validation noise's stream
 */
public record ValidationLoss(CacheDataset data, List<Double> levels, TimestepSampling mode, long seed, long noiseSeed) {

    /** The loss at each level (in the order given), their average, over {@code items} items. */
    public record Result(List<Double> levels, List<Double> losses, double average, long items) {
        /** Level → loss, for the log (a level given twice appears once). */
        public Map<Double, Double> byLevel() {
            Map<Double, Double> m = new LinkedHashMap<>();
            for (int j = 0; j < levels.size(); j++) m.put(levels.get(j), losses.get(j));
            return m;
        }

        /** "validation at step N: loss L (K items; t=0.10:… t=0.90:…)" */
        public String line(long step) {
            StringBuilder each = new StringBuilder();
            for (int j = 0; j < levels.size(); j++) each.append(String.format(Locale.ROOT, " t=%.2f:%.4f", levels.get(j), losses.get(j)));
            return String.format(Locale.ROOT, "validation at step %d: loss %.4f (%d items;%s)", step, average, items, each);
        }
    }

    /** {@code uploaded}: a batch's caches in the reused buffers of its shape (a bad cache: the caller's one-line error). */
    public Result compute(Backend backend, WanDit dit, LoraNetwork lora, Function<Batch, BatchTensors> uploaded) {
        List<Batch> batches = new BatchSchedule(data, seed).epoch(0);
        double[] sum = new double[levels.size()];
        long items = 0;
        for (int bi = 0; bi < batches.size(); bi++) {
            BatchTensors b = uploaded.apply(batches.get(bi));
            int n = b.batchSize();
            items += n;
            for (int j = 0; j < levels.size(); j++) {
                FlowMatchingObjective.prepareAt(b, levels.get(j).floatValue(), mode, noiseSeed, (long) bi * levels.size() + j);
                sum[j] += FlowMatchingObjective.meanSquaredError(backend, dit, lora, b) * n;
            }
        }
        List<Double> losses = new ArrayList<>();
        double total = 0;
        for (int j = 0; j < levels.size(); j++) {
            double l = sum[j] / items;
            losses.add(l);
            total += l;
        }
        return new Result(List.copyOf(levels), losses, total / levels.size(), items);
    }
}
