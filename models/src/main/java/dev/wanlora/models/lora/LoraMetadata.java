package dev.wanlora.models.lora;

import dev.wanlora.engine.io.PythonLiteral;

import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The training facts musubi writes into every LoRA file, filled by the trainer (spec §7.3; musubi
 * {@code training/trainer_base.py} L1812‑1977 and {@code utils/sai_model_spec.py} {@code build_metadata} at 30c658c4).
 * Every value becomes Python's {@code str()} of the argument (None → "None", True → "True", 2e-4 → "0.0002"), in
 * musubi's key order. Null strings/boxes below mean Python None unless a field says it is omitted when null.
 */
public record LoraMetadata(Run run, Training training, Network network, ModelSpec modelSpec) {

    /** ss_base_model_version for Wan2.1 (musubi's ARCHITECTURE_WAN_FULL). */
    public static final String BASE_MODEL_VERSION = "wan";
    /** The default {@code --network_module} for Wan. */
    public static final String NETWORK_MODULE = "networks.lora_wan";

    /**
     * Facts about the run.
     *
     * @param sessionId random.randint(0, 2**32) drawn at start
     * @param trainingStartedAt time.time() at start, seconds
     * @param outputName {@code --output_name}
     * @param datasetsJson json.dumps of the per-dataset metadata list (ss_datasets)
     * @param ditName basename of {@code --dit}; omitted when null
     * @param vaeName basename of {@code --vae}; omitted when null
     */
    public record Run(long sessionId, double trainingStartedAt, String outputName, int numTrainItems,
                      int numBatchesPerEpoch, int numEpochs, long maxTrainSteps, int gradientAccumulationSteps,
                      boolean gradientCheckpointing, boolean gradientCheckpointingCpuOffload, String mixedPrecision,
                      long seed, String trainingComment, boolean fp8Base, boolean fullFp16, boolean fullBf16,
                      String datasetsJson, String ditName, String vaeName) {}

    /**
     * Optimizer, schedule and timestep settings.
     *
     * @param lrWarmupSteps Python str() of the parsed {@code --lr_warmup_steps} (an int such as "100" or a ratio "0.05")
     * @param optimizer the ss_optimizer value, e.g. {@code OptimizerConfig.metadataName()}
     * @param minTimestep {@code --min_timestep} or null when not given
     * @param maxTimestep {@code --max_timestep} or null when not given
     */
    public record Training(double learningRate, String lrWarmupSteps, String lrScheduler, String optimizer,
                           double maxGradNorm, String weightingScheme, double logitMean, double logitStd,
                           double modeScale, double guidanceScale, String timestepSampling, double sigmoidScale,
                           double discreteFlowShift, Integer minTimestep, Integer maxTimestep) {}

    /**
     * The network flags.
     *
     * @param dim {@code --network_dim} as given (null → "None", musubi then uses 4)
     * @param alpha {@code --network_alpha} (a float flag, default 1.0)
     * @param dropout {@code --network_dropout} or null
     * @param argsJson json.dumps of the {@code --network_args} key/value strings; omitted when null
     */
    public record Network(String module, Integer dim, double alpha, Double dropout, String argsJson) {}

    /**
     * The modelspec.* flags ({@code --metadata_title}, {@code --metadata_reso}, …); null means not given.
     *
     * @param architecture {@code --metadata_arch}, replacing "wan2.1" when not null
     */
    public record ModelSpec(String title, String resolution, String author, String description, String license,
                            String tags, String architecture) {}

    /**
     * The metadata of one saved file: the ss_* keys (only musubi's minimum set with {@code noMetadata}, as
     * {@code --no_metadata} does) followed by the modelspec.* keys. The sshs_* hashes are added by
     * {@link LoraFile#write}.
     *
     * @param savedAt time.time() of the save, seconds (ss_training_finished_at and modelspec.date)
     * @param steps global step (ss_steps)
     * @param epoch 1-based epoch (ss_epoch)
     * @param zone the local time zone of modelspec.date (Python's datetime.fromtimestamp)
     */
    public Map<String, String> toMap(boolean noMetadata, double savedAt, long steps, int epoch, ZoneId zone) {
        Map<String, String> m = new LinkedHashMap<>();
        if (noMetadata) {
            m.put("ss_base_model_version", BASE_MODEL_VERSION);
            m.put("ss_network_module", str(network.module()));
            m.put("ss_network_dim", str(network.dim()));
            m.put("ss_network_alpha", str(network.alpha()));
            if (network.argsJson() != null) m.put("ss_network_args", network.argsJson());
        } else {
            m.put("ss_session_id", str(run.sessionId()));
            m.put("ss_training_started_at", str(run.trainingStartedAt()));
            m.put("ss_output_name", str(run.outputName()));
            m.put("ss_learning_rate", str(training.learningRate()));
            m.put("ss_num_train_items", str(run.numTrainItems()));
            m.put("ss_num_batches_per_epoch", str(run.numBatchesPerEpoch()));
            m.put("ss_num_epochs", str(run.numEpochs()));
            m.put("ss_gradient_checkpointing", str(run.gradientCheckpointing()));
            m.put("ss_gradient_checkpointing_cpu_offload", str(run.gradientCheckpointingCpuOffload()));
            m.put("ss_gradient_accumulation_steps", str(run.gradientAccumulationSteps()));
            m.put("ss_max_train_steps", str(run.maxTrainSteps()));
            m.put("ss_lr_warmup_steps", str(training.lrWarmupSteps()));
            m.put("ss_lr_scheduler", str(training.lrScheduler()));
            m.put("ss_base_model_version", BASE_MODEL_VERSION);
            m.put("ss_network_module", str(network.module()));
            m.put("ss_network_dim", str(network.dim()));
            m.put("ss_network_alpha", str(network.alpha()));
            m.put("ss_network_dropout", str(network.dropout()));
            m.put("ss_mixed_precision", str(run.mixedPrecision()));
            m.put("ss_seed", str(run.seed()));
            m.put("ss_training_comment", str(run.trainingComment()));
            m.put("ss_optimizer", str(training.optimizer()));
            m.put("ss_max_grad_norm", str(training.maxGradNorm()));
            m.put("ss_fp8_base", str(run.fp8Base()));
            m.put("ss_full_fp16", str(run.fullFp16()));
            m.put("ss_full_bf16", str(run.fullBf16()));
            m.put("ss_weighting_scheme", str(training.weightingScheme()));
            m.put("ss_logit_mean", str(training.logitMean()));
            m.put("ss_logit_std", str(training.logitStd()));
            m.put("ss_mode_scale", str(training.modeScale()));
            m.put("ss_guidance_scale", str(training.guidanceScale()));
            m.put("ss_timestep_sampling", str(training.timestepSampling()));
            m.put("ss_sigmoid_scale", str(training.sigmoidScale()));
            m.put("ss_discrete_flow_shift", str(training.discreteFlowShift()));
            m.put("ss_datasets", str(run.datasetsJson()));
            if (network.argsJson() != null) m.put("ss_network_args", network.argsJson());
            if (run.ditName() != null) m.put("ss_sd_model_name", run.ditName());
            if (run.vaeName() != null) m.put("ss_vae_name", run.vaeName());
            m.put("ss_training_finished_at", str(savedAt));
            m.put("ss_steps", str(steps));
            m.put("ss_epoch", str(epoch));
        }
        m.putAll(modelSpecMap(savedAt, zone));
        return m;
    }

    /** sai_model_spec.build_metadata for a Wan LoRA, in BASE_METADATA's key order. */
    private Map<String, String> modelSpecMap(double savedAt, ZoneId zone) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("modelspec.sai_model_spec", "1.0.0");
        m.put("modelspec.architecture", (modelSpec.architecture() != null ? modelSpec.architecture() : "wan2.1") + "/lora");
        m.put("modelspec.implementation", "https://github.com/Wan-Video/Wan2.1");
        // musubi passes --metadata_title, else --output_name; build_metadata falls back to "LoRA@<time.time()>"
        String title = modelSpec.title() != null ? modelSpec.title() : run.outputName();
        m.put("modelspec.title", title != null ? title : "LoRA@" + str(savedAt));
        m.put("modelspec.resolution", resolution(modelSpec.resolution()));
        if (modelSpec.description() != null) m.put("modelspec.description", modelSpec.description());
        if (modelSpec.author() != null) m.put("modelspec.author", modelSpec.author());
        LocalDateTime date = LocalDateTime.ofInstant(Instant.ofEpochSecond((long) savedAt), zone);
        m.put("modelspec.date", date.format(DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss")));
        if (modelSpec.license() != null) m.put("modelspec.license", modelSpec.license());
        if (modelSpec.tags() != null) m.put("modelspec.tags", modelSpec.tags());
        if (training.minTimestep() != null || training.maxTimestep() != null) {
            int min = training.minTimestep() != null ? training.minTimestep() : 0;
            int max = training.maxTimestep() != null ? training.maxTimestep() : 1000;
            m.put("modelspec.timestep_range", min + "," + max);
        }
        return m;
    }

    /**
     * build_metadata's resolution: "W,H" or "S" from --metadata_reso, else the placeholder 1280x720. The trainer calls
     * it before training too, so a bad value stops the run at start, not at the first save.
     *
     * @throws IllegalArgumentException naming the flag when it is not one or two integers
     */
    public static String resolution(String flag) {
        if (flag == null) return "1280x720";
        String[] parts = flag.split(",");
        try {
            int w = Integer.parseInt(parts[0].strip());
            int h = parts.length > 1 ? Integer.parseInt(parts[1].strip()) : w;
            return w + "x" + h;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--metadata_reso: not a resolution; got '" + flag
                    + "', expected WIDTH,HEIGHT or SIZE, e.g. 1280,720");
        }
    }

    private static String str(Object v) {
        return v == null ? "None" : PythonLiteral.str(v);
    }
}
