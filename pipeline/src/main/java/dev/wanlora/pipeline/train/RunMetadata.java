package dev.wanlora.pipeline.train;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.models.lora.LoraMetadata;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.DatasetSpec;
import dev.wanlora.models.wan.WanDitWeights;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The LoRA files' ss_* and modelspec.* metadata (spec §7.3): what the flags decide ({@link RunSettings.Metadata}) with
 * the run's own facts: its session, length, seed, precision and datasets.
 */
final class RunMetadata {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private RunMetadata() {}

    /** The ss_* and modelspec.* facts of this run (spec §7.3), as musubi fills them. */
    static LoraMetadata of(RunSettings settings, CacheDataset data, long sessionId, double trainingStartedAt, int epochs,
                           long maxTrainSteps) {
        List<Map<String, Object>> datasets = new ArrayList<>();
        for (CacheDataset.DatasetCache d : data.datasets()) {
            DatasetSpec s = d.spec();
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("resolution", List.of(s.resolution().width(), s.resolution().height()));
            m.put("caption_extension", s.captionExtension());
            m.put("batch_size_per_device", s.batchSize());
            m.put("num_repeats", s.numRepeats());
            m.put("enable_bucket", s.enableBucket());
            m.put("bucket_no_upscale", s.bucketNoUpscale());
            m.put(s.sourceKey(), s.source().getFileName().toString());
            if (s.isVideo()) {
                m.put("frame_extraction", s.frames().extraction().configName());
                m.put("frame_stride", s.frames().frameStride());
                m.put("frame_sample", s.frames().frameSample());
                m.put("target_frames", s.frames().targetFrames());
                m.put("max_frames", s.frames().maxFrames());
                m.put("source_fps", s.frames().sourceFps());
            }
            m.put("has_control", false);
            datasets.add(m);
        }
        RunSettings.Model model = settings.model();
        RunSettings.Metadata flags = settings.metadata();
        try {
            var run = new LoraMetadata.Run(sessionId, trainingStartedAt, settings.output().names().name(),
                    (int) data.numTrainItems(), (int) data.batchesPerEpoch(), epochs, maxTrainSteps,
                    settings.optimization().gradientAccumulationSteps(), settings.memory().gradientCheckpointing(),
                    settings.memory().cpuOffload(), model.mixedPrecision(), settings.seed(), flags.trainingComment(),
                    model.quantization() != WanDitWeights.Quantization.NONE, false, false, JSON.writeValueAsString(datasets),
                    model.dit().getFileName().toString(), model.vae() == null ? null : model.vae().getFileName().toString());
            return new LoraMetadata(run, flags.training(), flags.network(), flags.modelSpec());
        } catch (JacksonException e) {
            throw new IllegalStateException("JSON: cannot encode the dataset metadata", e);
        }
    }
}
