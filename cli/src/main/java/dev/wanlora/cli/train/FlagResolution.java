package dev.wanlora.cli.train;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.flow.TimestepSampling;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.optim.LearningRateSchedule;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.lora.LoraMetadata;
import dev.wanlora.models.lora.NetworkArgs;
import dev.wanlora.models.lora.SavePrecision;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.pipeline.UserError;
import dev.wanlora.pipeline.train.BenchRun;
import dev.wanlora.pipeline.train.CheckpointAttention;
import dev.wanlora.pipeline.train.OutputNames;
import dev.wanlora.pipeline.train.RunSaver;
import dev.wanlora.pipeline.train.RunSettings;
import dev.wanlora.pipeline.train.TrainState;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.security.SecureRandom;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The one place where {@code wanlora train}'s checked flags become the run's {@link RunSettings}: the defaults that
 * depend on other files are resolved here, each with its info line: the seed (the resumed state's, or drawn and
 * printed), the task (the checkpoint's) and the compute precision (the checkpoint's dtype's); the checks that need the
 * checkpoint's shape (--network_dim, --blocks_to_swap) run here too. The options object is only read.
 */
final class FlagResolution {
    private FlagResolution() {}

    private static final JsonMapper JSON = JsonMapper.builder().build();
    /** The --max_train_steps default, which is no choice of the user's to report as overridden. */
    static final int DEFAULT_MAX_TRAIN_STEPS = 1600;

    /** {@code o} (after {@link TrainChecks#check}) resolved; prints the resolutions' info lines to {@code out}. */
    static RunSettings resolve(TrainOptions o, PrintWriter out) {
        TrainState resumed = o.dry_run || o.resume == null ? null : TrainState.read(o.resume);
        long seed = o.dry_run ? (o.seed == null ? 0 : o.seed) : seed(o, resumed, out);
        RunSettings.Model model = o.dit != null && Files.exists(o.dit) ? modelFromCheckpoint(o, out) : modelFromTask(o, out);
        OptimizerConfig optimizer;
        NetworkArgs networkArgs;
        try {
            optimizer = OptimizerConfig.fromFlags(o.optimizer_type, o.optimizer_args == null ? List.of() : o.optimizer_args);
            networkArgs = NetworkArgs.parse(o.network_args == null ? List.of() : o.network_args);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        var schedule = new RunSettings.Schedule(LearningRateSchedule.Kind.fromFlag(o.lr_scheduler), o.lr_scheduler,
                o.learning_rate, o.lr_warmup_steps, o.lr_decay_steps, o.lr_scheduler_num_cycles, o.lr_scheduler_power,
                o.lr_scheduler_timescale == null ? 0 : o.lr_scheduler_timescale,
                o.lr_scheduler_min_lr_ratio == null ? Double.NaN : o.lr_scheduler_min_lr_ratio);
        var timesteps = new TimestepSampler.Config(TimestepSampling.fromFlag(o.timestep_sampling), o.discrete_flow_shift,
                o.sigmoid_scale, o.min_timestep == null ? 0 : o.min_timestep, o.max_timestep == null ? 1000 : o.max_timestep,
                o.preserve_distribution_shape, 0);
        var names = new OutputNames(o.output_name, o.save_every_n_epochs, o.save_last_n_epochs, o.save_last_n_epochs_state,
                o.save_every_n_steps, o.save_last_n_steps, o.save_last_n_steps_state);
        var saving = new RunSaver.Settings(o.output_dir, names, o.save_every_n_steps, o.save_every_n_epochs, o.save_state,
                SavePrecision.fromFlag(o.save_precision), o.no_metadata);
        String configDump = o.dry_run ? null : configDump(o, seed, model);
        return new RunSettings(model,
                new RunSettings.Data(o.dataset_config, o.skip_bad_items, o.validation_dataset_config,
                        o.validate_every_n_steps, o.validate_every_n_epochs, List.copyOf(o.validation_timesteps)),
                new RunSettings.Network(o.network_dim, o.network_alpha, networkArgs, o.network_weights),
                new RunSettings.Optimization(optimizer, schedule, o.max_grad_norm, o.gradient_accumulation_steps),
                timesteps, length(o),
                new RunSettings.Memory(o.backend, o.blocks_to_swap, o.block_swap_ring_size, o.gradient_checkpointing,
                        o.checkpoint_attention == null ? CheckpointAttention.AUTO : o.checkpoint_attention,
                        o.gradient_checkpointing_cpu_offload, o.max_vram, o.max_host_ram),
                new RunSettings.Output(saving, o.save_state_on_train_end, o.overwrite, configDump),
                new RunSettings.Logging(o.logging_dir, o.log_prefix, o.log_tracker_name, o.log_config),
                new RunSettings.Samples(o.sample_prompts, o.sample_at_first, o.sample_every_n_epochs, o.sample_every_n_steps,
                        o.sample_solver, o.sample_fps, o.fp8_t5),
                metadata(o, optimizer, networkArgs), o.resume, resumed, seed, o.dry_run);
    }

    /** The run's length; --max_train_epochs overriding a --max_train_steps the user gave is reported by the run. */
    static RunSettings.Length length(TrainOptions o) {
        return new RunSettings.Length(o.max_train_steps, o.max_train_epochs,
                o.max_train_epochs != null && o.max_train_steps != DEFAULT_MAX_TRAIN_STEPS, o.stop_at_step);
    }

    /** --seed, or the resumed state's (they must agree), or drawn as musubi does and printed so the run can be repeated. */
    private static long seed(TrainOptions o, TrainState resumed, PrintWriter out) {
        if (resumed != null) {
            if (o.seed != null && o.seed != resumed.seed()) {
                throw new UserError("--seed " + o.seed + " differs from the seed " + resumed.seed() + " of the state in "
                        + o.resume + "; drop --seed to continue that run");
            }
            return resumed.seed();
        }
        if (o.seed != null) return o.seed;
        long drawn = new SecureRandom().nextLong() & 0x7FFF_FFFFL;
        out.println("info: --seed not given; using --seed " + drawn);
        return drawn;
    }

    /**
     * The model from --dit's header: its shape checked against --task (or naming the task), --network_dim and
     * --blocks_to_swap checked against it, and --mixed_precision from its dtype when not given.
     */
    private static RunSettings.Model modelFromCheckpoint(TrainOptions o, PrintWriter out) {
        try (SafeTensors checkpoint = SafeTensors.open(o.dit, SafeTensors.DIT_PREFIXES)) {
            WanDitConfig config;
            String task;
            try {
                config = WanDitConfig.fromCheckpoint(checkpoint);
                if (o.task != null) {
                    // musubi's t2i-14B is the t2v-14B network trained on images
                    config.requireTask(o.task.equals("t2i-14B") ? "t2v-14B" : o.task, o.dit.getFileName().toString());
                    task = o.task;
                } else {
                    task = config.taskName();
                }
            } catch (IllegalArgumentException e) {
                throw new UserError(e.getMessage(), e);
            }
            if (o.network_dim != null && o.network_dim > config.dim()) {
                throw new UserError("--network_dim " + o.network_dim + ": above the model width " + config.dim()
                        + ", where a LoRA update is already full-rank; pass --network_dim " + config.dim() + " or less");
            }
            checkBlocksToSwap(o, config);
            out.printf(Locale.ROOT, "model: %s, %d blocks, dim %d%s%n", o.dit.getFileName(), config.numLayers(),
                    config.dim(), task == null ? "" : " (" + task + ")");
            return new RunSettings.Model(o.dit, o.vae, task, config, precision(o, checkpoint, out),
                    checkpoint.info("blocks.0.self_attn.q.weight").dtype(), quantization(o), true, o.fp8_compute);
        }
    }

    /** --dry_run without the checkpoint: the shapes of --task's config, a bf16 checkpoint assumed. */
    private static RunSettings.Model modelFromTask(TrainOptions o, PrintWriter out) {
        String task = o.task.equals("t2i-14B") ? "t2v-14B" : o.task;
        WanDitConfig config = BenchRun.taskConfig(task);
        checkBlocksToSwap(o, config);
        out.printf(Locale.ROOT, "model: --task %s, %d blocks, dim %d (shapes from the task's config%s; a bf16 checkpoint"
                + " assumed)%n", o.task, config.numLayers(), config.dim(), o.dit == null ? "" : ": " + o.dit + " is not here");
        // Wan's released checkpoints are bf16; --fp8_scaled then keeps bf16 scales
        ComputePrecision precision = "no".equals(o.mixed_precision) ? ComputePrecision.FP32 : ComputePrecision.BF16_MUSUBI;
        return new RunSettings.Model(o.dit, o.vae, o.task, config, precision, DType.BF16, quantization(o), false,
                o.fp8_compute);
    }

    private static void checkBlocksToSwap(TrainOptions o, WanDitConfig config) {
        int maxSwap = config.numLayers() - 1;
        if (o.blocks_to_swap != null && !o.blocks_to_swap.isAuto() && o.blocks_to_swap.count() > maxSwap) {
            throw new UserError("--blocks_to_swap " + o.blocks_to_swap + ": this model has " + config.numLayers()
                    + " blocks, so at most " + maxSwap + " can be swapped (musubi's limit: blocks − 1)");
        }
    }

    /**
     * musubi's --mixed_precision against the checkpoint's dtype (wan_train_network.py L62‑65): bf16 compute follows
     * musubi's bf16 path; "no" computes in fp32. Not given, the checkpoint's dtype decides (musubi would stop).
     */
    private static ComputePrecision precision(TrainOptions o, SafeTensors checkpoint, PrintWriter out) {
        if ("no".equals(o.mixed_precision)) return ComputePrecision.FP32;
        if ("bf16".equals(o.mixed_precision)) return ComputePrecision.BF16_MUSUBI;
        DType fileDType = checkpoint.info("patch_embedding.weight").dtype();
        ComputePrecision p = fileDType == DType.F32 || fileDType == DType.F16 ? ComputePrecision.FP32 : ComputePrecision.BF16_MUSUBI;
        out.println("info: --mixed_precision not given; using " + (p == ComputePrecision.FP32 ? "no" : "bf16") + " for this "
                + fileDType + " checkpoint");
        return p;
    }

    private static WanDitWeights.Quantization quantization(TrainOptions o) {
        return !o.fp8_base ? WanDitWeights.Quantization.NONE
                : o.fp8_scaled ? WanDitWeights.Quantization.FP8_SCALED : WanDitWeights.Quantization.FP8_BASE;
    }

    /**
     * The effective configuration's TOML ({@code {output_name}-config.toml}): every flag's value as given, with the
     * resolved seed, task and --mixed_precision in their places, so a rerun with it as --config_file repeats the run.
     */
    private static String configDump(TrainOptions o, long seed, RunSettings.Model model) {
        Map<String, Object> values = TrainCommand.values(o);
        values.put("seed", seed);
        values.put("task", model.task());
        values.put("mixed_precision", model.mixedPrecision());
        return TrainConfigFile.text(o.output_name + "-config.toml", values);
    }

    /** The ss_* and modelspec.* metadata that the flags decide (spec §7.3), as musubi fills them. */
    private static RunSettings.Metadata metadata(TrainOptions o, OptimizerConfig optimizer, NetworkArgs args) {
        var training = new LoraMetadata.Training(o.learning_rate, o.lr_warmup_steps.toString(), o.lr_scheduler,
                optimizer.metadataName(), o.max_grad_norm, o.weighting_scheme, o.logit_mean, o.logit_std, o.mode_scale,
                o.guidance_scale, o.timestep_sampling, o.sigmoid_scale, o.discrete_flow_shift, o.min_timestep,
                o.max_timestep);
        var network = new LoraMetadata.Network(o.network_module == null ? LoraMetadata.NETWORK_MODULE : o.network_module,
                o.network_dim, o.network_alpha, o.network_dropout, networkArgsJson(o, args));
        var spec = new LoraMetadata.ModelSpec(o.metadata_title, o.metadata_reso, o.metadata_author, o.metadata_description,
                o.metadata_license, o.metadata_tags, o.metadata_arch);
        return new RunSettings.Metadata(training, network, spec, o.training_comment);
    }

    /** musubi's ss_network_args: json.dumps of the key → value strings (Python's ", " and ": " separators), or null. */
    private static String networkArgsJson(TrainOptions o, NetworkArgs args) {
        if (o.network_args == null || o.network_args.isEmpty()) return null;
        StringBuilder sb = new StringBuilder("{");
        try {
            for (var e : args.values().entrySet()) {
                if (sb.length() > 1) sb.append(", ");
                sb.append(JSON.writeValueAsString(e.getKey())).append(": ").append(JSON.writeValueAsString(e.getValue()));
            }
        } catch (JacksonException e) {
            throw new IllegalStateException("JSON: cannot encode --network_args", e);
        }
        return sb.append('}').toString();
    }
}
