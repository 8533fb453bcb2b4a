package dev.wanlora.pipeline.train;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.models.lora.LoraMetadata;
import dev.wanlora.models.lora.NetworkArgs;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.DatasetSpec;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The LoRA files' ss_* and modelspec.* metadata from the command line and the dataset (spec §7.3). */
final class RunMetadata {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private RunMetadata() {}

    /** The ss_* and modelspec.* facts of this run (spec §7.3), as musubi fills them. */
    static LoraMetadata of(TrainOptions o, CacheDataset data, NetworkArgs args, long sessionId, double trainingStartedAt,
                           int epochs, long maxTrainSteps) {
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
        try {
            var run = new LoraMetadata.Run(sessionId, trainingStartedAt, o.output_name, (int) data.numTrainItems(),
                    (int) data.batchesPerEpoch(), epochs, maxTrainSteps, o.gradient_accumulation_steps,
                    o.gradient_checkpointing, o.gradient_checkpointing_cpu_offload, o.mixed_precision, o.seed,
                    o.training_comment, o.fp8_base, false, false, JSON.writeValueAsString(datasets),
                    o.dit.getFileName().toString(), o.vae == null ? null : o.vae.getFileName().toString());
            var training = new LoraMetadata.Training(o.learning_rate, o.lr_warmup_steps.toString(), o.lr_scheduler,
                    OptimizerConfig.fromFlags(o.optimizer_type, o.optimizer_args == null ? List.of() : o.optimizer_args).metadataName(),
                    o.max_grad_norm, o.weighting_scheme, o.logit_mean, o.logit_std, o.mode_scale, o.guidance_scale,
                    o.timestep_sampling, o.sigmoid_scale, o.discrete_flow_shift, o.min_timestep, o.max_timestep);
            var network = new LoraMetadata.Network(o.network_module == null ? LoraMetadata.NETWORK_MODULE : o.network_module,
                    o.network_dim, o.network_alpha, o.network_dropout, networkArgsJson(o, args));
            var spec = new LoraMetadata.ModelSpec(o.metadata_title, o.metadata_reso, o.metadata_author, o.metadata_description,
                    o.metadata_license, o.metadata_tags, o.metadata_arch);
            return new LoraMetadata(run, training, network, spec);
        } catch (JacksonException e) {
            throw new IllegalStateException("JSON: cannot encode the dataset metadata", e);
        }
    }

    /** musubi's ss_network_args: json.dumps of the key → value strings (Python's ", " and ": " separators), or null. */
    private static String networkArgsJson(TrainOptions o, NetworkArgs args) throws JacksonException {
        if (o.network_args == null || o.network_args.isEmpty()) return null;
        StringBuilder sb = new StringBuilder("{");
        for (var e : args.values().entrySet()) {
            if (sb.length() > 1) sb.append(", ");
            sb.append(JSON.writeValueAsString(e.getKey())).append(": ").append(JSON.writeValueAsString(e.getValue()));
        }
        return sb.append('}').toString();
    }
}
