package dev.wanlora.pipeline.train;

import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.optim.LearningRateSchedule;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.lora.LoraMetadata;
import dev.wanlora.models.lora.NetworkArgs;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.models.text.Counts;

import java.nio.file.Path;
import java.util.List;

/**
 * Everything one {@link TrainingRun} reads, resolved once before it starts: the command line merged with its config
 * file and checked, with the defaults that depend on other files filled in (the seed from the resumed state or drawn,
 * the task and the compute precision from the checkpoint). Immutable: the run reads it and writes nothing back. Made
 * by the command line ({@code cli.train.FlagResolution}); each value keeps the meaning of musubi's flag of that name
 * (spec §4), named in the comments.
 *
 * @param resume  --resume: the state folder to continue from, or null
 * @param resumed that folder's state.json, read when the settings were resolved; null without --resume or under --dry_run
 * @param seed    --seed, the resumed run's, or drawn; 0 under --dry_run, which draws nothing
 * @param isDryRun --dry_run: print the memory plan and stop
 */
public record RunSettings(Model model, Data data, Network network, Optimization optimization,
                          TimestepSampler.Config timesteps, Length length, Memory memory, Output output, Logging logging,
                          Samples samples, Metadata metadata, Path resume, TrainState resumed, long seed,
                          boolean isDryRun) {

    /**
     * The DiT and the files named beside it.
     *
     * @param dit        --dit (under --dry_run --task it may be null or absent)
     * @param vae        --vae, or null (its name goes into the metadata)
     * @param task       --task, or the checkpoint's (musubi's name: t2v-14B, t2v-1.3B, t2i-14B)
     * @param config     the network's shape, from the checkpoint's tensors or (dry run) the task
     * @param precision  --mixed_precision, or the checkpoint's dtype's
     * @param blockDType the dtype of the checkpoint's block weights (bf16 assumed without a checkpoint)
     * @param quantization --fp8_base / --fp8_scaled
     * @param isCheckpointHere whether --dit was read (false only under --dry_run --task without the file)
     * @param fp8Compute --fp8_compute (opt-in; {@link Fp8Compute})
     */
    public record Model(Path dit, Path vae, String task, WanDitConfig config, ComputePrecision precision,
                        DType blockDType, WanDitWeights.Quantization quantization, boolean isCheckpointHere,
                        boolean fp8Compute) {

        /** Without --fp8_compute. */
        public Model(Path dit, Path vae, String task, WanDitConfig config, ComputePrecision precision, DType blockDType,
                     WanDitWeights.Quantization quantization, boolean isCheckpointHere) {
            this(dit, vae, task, config, precision, blockDType, quantization, isCheckpointHere, false);
        }

        /** musubi's --mixed_precision value of {@link #precision}: no (fp32) or bf16. */
        public String mixedPrecision() {
            return precision == ComputePrecision.FP32 ? "no" : "bf16";
        }
    }

    /**
     * The training and validation data.
     *
     * @param config     --dataset_config
     * @param skipBadItems --skip_bad_items
     * @param validationConfig --validation_dataset_config, or null
     * @param validateEveryNSteps --validate_every_n_steps, or null
     * @param validateEveryNEpochs --validate_every_n_epochs, or null
     * @param validationTimesteps --validation_timesteps: the fixed noise levels t in (0, 1)
     */
    public record Data(Path config, boolean skipBadItems, Path validationConfig, Integer validateEveryNSteps,
                       Integer validateEveryNEpochs, List<Double> validationTimesteps) {

        /** Epochs between validations: the flag; with neither interval given, every epoch; else 0 (none). */
        public int validationEpochs() {
            return validateEveryNEpochs != null ? validateEveryNEpochs : validateEveryNSteps == null ? 1 : 0;
        }
    }

    /**
     * The LoRA.
     *
     * @param rank    --network_dim, or null (the rank of the file it starts from, else 4)
     * @param alpha   --network_alpha
     * @param args    --network_args as musubi's lora_wan reads them
     * @param weights --network_weights, or null
     */
    public record Network(Integer rank, double alpha, NetworkArgs args, Path weights) {}

    /**
     * The optimizer and its learning-rate schedule.
     *
     * @param optimizer   --optimizer_type and --optimizer_args
     * @param maxGradNorm --max_grad_norm (0: no clipping)
     * @param gradientAccumulationSteps --gradient_accumulation_steps
     */
    public record Optimization(OptimizerConfig optimizer, Schedule schedule, double maxGradNorm,
                               int gradientAccumulationSteps) {}

    /**
     * --lr_scheduler and its settings.
     *
     * @param name       the flag's value, as printed
     * @param timescale  --lr_scheduler_timescale, 0 when not given (the warm-up steps)
     * @param minLrRatio --lr_scheduler_min_lr_ratio, NaN when not given
     */
    public record Schedule(LearningRateSchedule.Kind kind, String name, double learningRate, StepsOrRatio warmup,
                           StepsOrRatio decay, int numCycles, double power, int timescale, double minLrRatio) {

        /** The schedule over a run of {@code maxTrainSteps} steps (ratios of warm-up and decay resolve against it). */
        public LearningRateSchedule over(long maxTrainSteps) {
            return new LearningRateSchedule(kind, learningRate, warmup.resolve(maxTrainSteps), maxTrainSteps, numCycles,
                    power).with(decay.resolve(maxTrainSteps), timescale, minLrRatio);
        }
    }

    /**
     * How long the run trains.
     *
     * @param maxTrainSteps  --max_train_steps
     * @param maxTrainEpochs --max_train_epochs, or null; it overrides the steps
     * @param isStepsOverridden whether the user's own --max_train_steps is overridden by --max_train_epochs (reported)
     * @param stopAtStep     the hidden --stop_at_step test hook (acts as Ctrl-C after that step), or null
     */
    public record Length(int maxTrainSteps, Integer maxTrainEpochs, boolean isStepsOverridden, Integer stopAtStep) {

        /** The line for --max_train_epochs winning over the user's --max_train_steps (musubi prints it too), or null. */
        public String epochsOverSteps(long steps, int epochs) {
            if (!isStepsOverridden) return null;
            return "info: --max_train_epochs " + maxTrainEpochs + " overrides --max_train_steps " + maxTrainSteps
                    + ": " + Counts.of(steps, "step") + " in " + Counts.of(epochs, "epoch") + " (as in musubi)";
        }
    }

    /**
     * Where the work runs and how memory is spent; none of it changes a result.
     *
     * @param backend      --backend: auto, cpu or cuda
     * @param blocksToSwap --blocks_to_swap, or null (none)
     * @param ringSize     --block_swap_ring_size
     * @param gradientCheckpointing --gradient_checkpointing
     * @param checkpointAttention  --checkpoint_attention
     * @param cpuOffload   --gradient_checkpointing_cpu_offload
     * @param maxVram      --max_vram, or null (the GPU's memory)
     * @param maxHostRam   --max_host_ram, or null (what the OS reports available)
     */
    public record Memory(String backend, BlocksToSwap blocksToSwap, int ringSize, boolean gradientCheckpointing,
                         CheckpointAttention checkpointAttention, boolean cpuOffload, String maxVram,
                         String maxHostRam) {}

    /**
     * What the run writes and when.
     *
     * @param saving     the LoRA files and states (--output_dir, --output_name, --save_*)
     * @param saveStateOnTrainEnd --save_state_on_train_end
     * @param overwrite  --overwrite: replace another run's files
     * @param configDump the effective configuration as TOML ({output_name}-config.toml); null under --dry_run
     */
    public record Output(RunSaver.Settings saving, boolean saveStateOnTrainEnd, boolean overwrite, String configDump) {

        public Path dir() { return saving.outputDir(); }

        public OutputNames names() { return saving.names(); }
    }

    /**
     * The TensorBoard log.
     *
     * @param dir         --logging_dir, or null (no log)
     * @param prefix      --log_prefix, or null
     * @param trackerName --log_tracker_name, or null (network_train)
     * @param logConfig   --log_config
     */
    public record Logging(Path dir, String prefix, String trackerName, boolean logConfig) {}

    /**
     * Samples during training.
     *
     * @param prompts --sample_prompts, or null
     * @param solver  --sample_solver
     * @param fps     --sample_fps
     * @param fp8T5   --fp8_t5 (named in the one-line refusal when the prompt encoding does not fit)
     */
    public record Samples(Path prompts, boolean atFirst, Integer everyNEpochs, Integer everyNSteps, String solver,
                          int fps, boolean fp8T5) {

        /** Whether samples are made: prompts and an interval (or --sample_at_first). */
        public boolean isAsked() {
            return prompts != null && (atFirst || everyNEpochs != null || everyNSteps != null);
        }
    }

    /**
     * The LoRA files' metadata that the flags decide (spec §7.3); the run adds its own facts ({@link RunMetadata}).
     *
     * @param trainingComment --training_comment, or null
     */
    public record Metadata(LoraMetadata.Training training, LoraMetadata.Network network, LoraMetadata.ModelSpec modelSpec,
                           String trainingComment) {}
}
