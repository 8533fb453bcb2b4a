package dev.wanlora.cli.train;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.memory.MemoryPlan;
import dev.wanlora.engine.optim.LearningRateSchedule;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.models.lora.LoraMetadata;
import dev.wanlora.pipeline.train.StepsOrRatio;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Flag-level checks of {@code wanlora train}, run before anything is loaded: every out-of-range value, missing path,
 * refused flag and contradictory combination ends in one {@link UserError} line that names the flag, what was
 * found, what was expected, and the fix. Flags that only matter to PyTorch or to musubi's memory tricks are accepted
 * and reported in one info line each. Checks that need the checkpoint or the dataset (e.g. the largest
 * {@code --blocks_to_swap}) happen where those are opened.
 */
public final class TrainChecks {
    private TrainChecks() {}

    /** Tasks of musubi's WAN_CONFIGS that are the Wan2.1 T2V DiT (t2i-14B is t2v-14B trained on images). */
    public static final Set<String> TASKS = Set.of("t2v-14B", "t2v-1.3B", "t2i-14B");
    public static final List<String> TIMESTEP_SAMPLING = List.of("sigma", "uniform", "sigmoid", "shift");
    /** musubi's other --timestep_sampling choices, refused with a pointer to the supported ones. */
    private static final Set<String> MUSUBI_ONLY_TIMESTEP_SAMPLING = Set.of("flux_shift", "flux2_shift", "ideogram4_shift",
            "qwen_shift", "krea2_shift", "logsnr", "qinglong_flux", "qinglong_qwen");

    /**
     * Checks {@code o} and returns the info lines to print (possibly none).
     *
     * @throws UserError for the first problem found
     */
    public static List<String> check(TrainOptions o) {
        checkRanges(o);
        refuseUnsupported(o);
        checkPaths(o);
        List<String> info = new ArrayList<>();
        List<String> pytorchOnly = new ArrayList<>();
        if (o.foreign.sdpa) pytorchOnly.add("--sdpa");
        if (o.foreign.flash_attn) pytorchOnly.add("--flash_attn");
        if (o.foreign.sage_attn) pytorchOnly.add("--sage_attn");
        if (o.foreign.xformers) pytorchOnly.add("--xformers");
        if (o.foreign.flash3) pytorchOnly.add("--flash3");
        if (o.foreign.split_attn) pytorchOnly.add("--split_attn");
        if (o.foreign.max_data_loader_n_workers != 8) pytorchOnly.add("--max_data_loader_n_workers");
        if (o.foreign.persistent_data_loader_workers) pytorchOnly.add("--persistent_data_loader_workers");
        if (o.foreign.disable_numpy_memmap) pytorchOnly.add("--disable_numpy_memmap");
        if (o.foreign.compile || o.foreign.compile_fullgraph || o.foreign.compile_dynamic != null || o.foreign.compile_cache_size_limit != null
                || !o.foreign.compile_backend.equals("inductor") || !o.foreign.compile_mode.equals("default")) pytorchOnly.add("--compile*");
        if (o.foreign.cuda_allow_tf32) pytorchOnly.add("--cuda_allow_tf32");
        if (o.foreign.cuda_cudnn_benchmark) pytorchOnly.add("--cuda_cudnn_benchmark");
        if (!o.foreign.dynamo_backend.equalsIgnoreCase("NO") || o.foreign.dynamo_mode != null || o.foreign.dynamo_fullgraph || o.foreign.dynamo_dynamic) {
            pytorchOnly.add("--dynamo*");
        }
        if (o.foreign.ddp_timeout != null || o.foreign.ddp_gradient_as_bucket_view || o.foreign.ddp_static_graph) pytorchOnly.add("--ddp*");
        if (o.foreign.num_cpu_threads_per_process != null || o.foreign.num_processes != null || o.foreign.num_machines != null || o.foreign.multi_gpu
                || o.foreign.gpu_ids != null || o.foreign.main_process_port != null) pytorchOnly.add("accelerate launch options");
        if (o.guidance_scale != 1.0) pytorchOnly.add("--guidance_scale (HunyuanVideo only)");
        if (!pytorchOnly.isEmpty()) {
            info.add("info: ignoring " + String.join(", ", pytorchOnly)
                    + ": PyTorch settings with no meaning here (wanlora has its own attention kernels and data loading)");
        }
        List<String> memoryKnobs = new ArrayList<>();
        if (o.use_pinned_memory_for_block_swap) memoryKnobs.add("--use_pinned_memory_for_block_swap (always pinned)");
        if (o.block_swap_h2d_only) memoryKnobs.add("--block_swap_h2d_only (always host-to-device only)");
        if (o.gradient_checkpointing_cpu_offload && !o.gradient_checkpointing) {
            memoryKnobs.add("--gradient_checkpointing_cpu_offload (it offloads checkpoints; add --gradient_checkpointing)");
        }
        if (o.img_in_txt_in_offloading) memoryKnobs.add("--img_in_txt_in_offloading (HunyuanVideo only)");
        if (!memoryKnobs.isEmpty()) {
            info.add("info: ignoring " + String.join(", ", memoryKnobs) + "; results do not depend on them");
        }
        if (o.wandb_run_name != null || o.wandb_api_key != null || o.log_tracker_config != null) {
            info.add("info: ignoring --wandb_run_name/--wandb_api_key/--log_tracker_config: wanlora logs to TensorBoard only");
        }
        if ("all".equals(o.log_with)) {
            info.add("info: --log_with all: logging to TensorBoard only (wandb is not supported)");
        }
        OptimizerConfig optimizer = OptimizerConfig.fromFlags(o.optimizer_type, o.optimizer_args == null ? List.of() : o.optimizer_args);
        if (optimizer.kind() == OptimizerConfig.Kind.ADAFACTOR && optimizer.adafactor().relativeStep()) {
            info.add("info: Adafactor relative_step=True (musubi's default): the step size is min(1e-2, 1/sqrt(step))·RMS(weights);"
                    + " --learning_rate and --lr_scheduler are not used (pass --optimizer_args relative_step=False to use them)");
        }
        boolean samplingAsked = o.sample_at_first || o.sample_every_n_epochs != null || o.sample_every_n_steps != null;
        if (samplingAsked && o.sample_prompts == null) {
            info.add("info: --sample_every_n_*/--sample_at_first without --sample_prompts: no samples will be made");
        }
        info.addAll(FlagOverrides.info(o));
        return info;
    }

    private static void refuseUnsupported(TrainOptions o) {
        if (o.task != null && !TASKS.contains(o.task)) {
            throw new UserError("--task " + o.task + ": wanlora trains the Wan2.1 text-to-video DiT only; supported: "
                    + String.join(", ", TASKS.stream().sorted().toList()) + " (or leave --task out: the checkpoint decides)");
        }
        if (o.network_module != null && !o.network_module.equals("networks.lora_wan")) {
            throw new UserError("--network_module " + o.network_module
                    + ": wanlora trains musubi's networks.lora_wan LoRA only; pass networks.lora_wan or leave the flag out");
        }
        refuseIf(o.network_dropout != null && o.network_dropout != 0, "--network_dropout", "LoRA dropout is not supported", "leave it out");
        refuseIf(o.dim_from_weights, "--dim_from_weights", "is not supported", "pass --network_dim with the rank of --network_weights");
        refuseIf(o.scale_weight_norms != null, "--scale_weight_norms", "max-norm regularization is not supported", "leave it out");
        refuseIf(o.base_weights != null && !o.base_weights.isEmpty(), "--base_weights",
                "merging LoRA files into the DiT before training is not supported", "merge them beforehand");
        refuseIf(o.base_weights_multiplier != null && !o.base_weights_multiplier.isEmpty(), "--base_weights_multiplier",
                "is not supported (nor is --base_weights)", "leave it out");
        try {
            var networkArgs = dev.wanlora.models.lora.NetworkArgs.parse(o.network_args == null ? List.of() : o.network_args);
            OptimizerConfig optimizer = OptimizerConfig.fromFlags(o.optimizer_type, o.optimizer_args == null ? List.of() : o.optimizer_args);
            refuseIf(networkArgs.hasLoraplus() && optimizer.kind() == OptimizerConfig.Kind.PRODIGY,
                    "--network_args loraplus_lr_ratio", "Prodigy takes one learning rate for all parameters (prodigyopt"
                            + " raises for LoRA+'s second group)", "remove loraplus_lr_ratio or use AdamW/AdamW8bit/Adafactor");
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        LearningRateSchedule.Kind scheduler;
        OptimizerConfig optimizer;
        try {
            scheduler = LearningRateSchedule.Kind.fromFlag(o.lr_scheduler);
            optimizer = OptimizerConfig.fromFlags(o.optimizer_type, o.optimizer_args == null ? List.of() : o.optimizer_args);
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
        // musubi: Adafactor's relative_step replaces the scheduler with AdafactorSchedule, which refuses warm-up
        refuseIf(optimizer.kind() == OptimizerConfig.Kind.ADAFACTOR && optimizer.adafactor().relativeStep()
                        && !o.lr_warmup_steps.toString().equals("0"), "--lr_warmup_steps " + o.lr_warmup_steps,
                "Adafactor with relative_step=True makes its own step size and takes no warm-up (musubi refuses it too)",
                "remove it, or pass --optimizer_args relative_step=False to use --learning_rate and --lr_scheduler");
        refuseIf(scheduler == LearningRateSchedule.Kind.CONSTANT && !o.lr_warmup_steps.toString().equals("0"),
                "--lr_warmup_steps " + o.lr_warmup_steps, "the constant scheduler has no warm-up (musubi refuses it too)",
                "use --lr_scheduler constant_with_warmup");
        refuseIf(scheduler == LearningRateSchedule.Kind.COSINE_WITH_MIN_LR && o.lr_scheduler_min_lr_ratio == null,
                "--lr_scheduler cosine_with_min_lr", "needs the final lr ratio (transformers refuses it without one)",
                "add --lr_scheduler_min_lr_ratio, e.g. 0.1");
        if (o.lr_scheduler_min_lr_ratio != null && !(o.lr_scheduler_min_lr_ratio >= 0 && o.lr_scheduler_min_lr_ratio <= 1)) {
            throw new UserError("--lr_scheduler_min_lr_ratio " + o.lr_scheduler_min_lr_ratio + ": expected a ratio in [0, 1]");
        }
        atLeast("--lr_scheduler_timescale", o.lr_scheduler_timescale, 1);
        stepsOrRatio("--lr_decay_steps", o.lr_decay_steps);
        refuseIf(!o.lr_scheduler_type.isEmpty(), "--lr_scheduler_type", "custom PyTorch schedulers are not supported",
                "use --lr_scheduler with one of musubi's scheduler names");
        refuseIf(o.lr_scheduler_args != null && !o.lr_scheduler_args.isEmpty(), "--lr_scheduler_args",
                "arguments of custom PyTorch schedulers are not supported", "use --lr_scheduler with --lr_scheduler_num_cycles/--lr_scheduler_power");
        refuseIf(!o.weighting_scheme.equals("none"), "--weighting_scheme " + o.weighting_scheme,
                "loss weighting is not supported (Wan training uses none)", "leave it out");
        refuseIf(o.num_timestep_buckets != null, "--num_timestep_buckets", "stratified timestep sampling is not supported", "leave it out");
        refuseIf(o.show_timesteps != null, "--show_timesteps", "is not supported", "leave it out");
        if (!TIMESTEP_SAMPLING.contains(o.timestep_sampling)) {
            throw new UserError("--timestep_sampling " + o.timestep_sampling + ": "
                    + (MUSUBI_ONLY_TIMESTEP_SAMPLING.contains(o.timestep_sampling) ? "this musubi mode is not supported" : "unknown mode")
                    + "; supported: " + String.join(", ", TIMESTEP_SAMPLING));
        }
        if (o.mixed_precision != null && !Set.of("no", "bf16", "fp16").contains(o.mixed_precision)) {
            throw new UserError("--mixed_precision " + o.mixed_precision + ": expected one of no, bf16 (fp16 is not supported)");
        }
        refuseIf("fp16".equals(o.mixed_precision), "--mixed_precision fp16", "fp16 compute is not supported",
                "use --mixed_precision bf16 (or no for fp32)");
        if (o.save_precision != null && !Set.of("float", "fp32", "fp16", "bf16").contains(o.save_precision)) {
            throw new UserError("--save_precision " + o.save_precision + ": expected one of float, fp32, fp16, bf16");
        }
        if (o.log_with != null && !Set.of("tensorboard", "wandb", "all").contains(o.log_with)) {
            throw new UserError("--log_with " + o.log_with + ": expected one of tensorboard, wandb, all");
        }
        refuseIf("wandb".equals(o.log_with), "--log_with wandb", "wandb is not supported", "use --log_with tensorboard --logging_dir DIR");
        if (("tensorboard".equals(o.log_with) || "all".equals(o.log_with)) && o.logging_dir == null) {
            throw new UserError("--log_with " + o.log_with + ": needs --logging_dir; add e.g. --logging_dir logs");
        }
        if (!Set.of("auto", "cpu", "cuda").contains(o.backend)) {
            throw new UserError("--backend " + o.backend + ": expected one of auto, cpu, cuda");
        }
        refuseIf(o.fp8_scaled && !o.fp8_base, "--fp8_scaled", "needs --fp8_base, as in musubi", "add --fp8_base");
        refuseIf(o.fp8_compute && !o.fp8_base, "--fp8_compute", "multiplies fp8 weights",
                "add --fp8_base (and --fp8_scaled for a bf16 checkpoint)");
        refuseIf(o.foreign.clip != null, "--clip", "image-to-video training is not supported (T2V only)", "leave it out");
        refuseIf(o.foreign.one_frame, "--one_frame", "one-frame training is not supported", "leave it out");
        refuseIf(o.foreign.dit_high_noise != null || o.foreign.timestep_boundary != null || o.foreign.offload_inactive_dit || o.foreign.force_v2_1_time_embedding,
                "--dit_high_noise/--timestep_boundary/--offload_inactive_dit/--force_v2_1_time_embedding",
                "Wan 2.2 training is not supported (Wan2.1 T2V only)", "leave them out");
        refuseIf(o.foreign.huggingface_repo_id != null || o.foreign.huggingface_repo_type != null || o.foreign.huggingface_path_in_repo != null
                        || o.foreign.huggingface_token != null || o.foreign.huggingface_repo_visibility != null || o.foreign.save_state_to_huggingface
                        || o.foreign.resume_from_huggingface || o.foreign.async_upload,
                "--huggingface_*/--save_state_to_huggingface/--resume_from_huggingface/--async_upload",
                "uploading to or resuming from Hugging Face is not supported", "upload the files in --output_dir yourself");
        refuseIf((o.validate_every_n_steps != null || o.validate_every_n_epochs != null) && o.validation_dataset_config == null,
                "--validate_every_n_*", "needs a validation set", "add --validation_dataset_config TOML");
    }

    private static void checkRanges(TrainOptions o) {
        between("--network_dim", o.network_dim, 1, MAX_NETWORK_DIM);
        // both reach the GPU as float: a double beyond float's range would become Inf there
        if (!(o.network_alpha >= 0) || Float.isInfinite((float) o.network_alpha)) {
            throw new UserError("--network_alpha " + o.network_alpha + ": expected a number >= 0 (0 means alpha = rank)");
        }
        if (!(o.learning_rate > 0) || Float.isInfinite((float) o.learning_rate)) {
            throw new UserError("--learning_rate " + o.learning_rate + ": expected a positive number, e.g. 2e-4");
        }
        if (!(o.max_grad_norm >= 0) || Double.isInfinite(o.max_grad_norm)) {
            throw new UserError("--max_grad_norm " + o.max_grad_norm + ": expected a number >= 0 (0 disables clipping)");
        }
        atLeast("--max_train_steps", o.max_train_steps, 1);
        atLeast("--max_train_epochs", o.max_train_epochs, 1);
        between("--gradient_accumulation_steps", o.gradient_accumulation_steps, 1, MAX_ACCUMULATION_STEPS);
        stepsOrRatio("--lr_warmup_steps", o.lr_warmup_steps);
        atLeast("--lr_scheduler_num_cycles", o.lr_scheduler_num_cycles, 1);
        if (!(o.lr_scheduler_power > 0) || Double.isInfinite(o.lr_scheduler_power)) {
            throw new UserError("--lr_scheduler_power " + o.lr_scheduler_power + ": expected a positive number");
        }
        if (!(o.discrete_flow_shift > 0) || Double.isInfinite(o.discrete_flow_shift)) {
            throw new UserError("--discrete_flow_shift " + o.discrete_flow_shift + ": expected a positive number, e.g. 3.0");
        }
        if (!(o.sigmoid_scale > 0) || Double.isInfinite(o.sigmoid_scale)) {
            throw new UserError("--sigmoid_scale " + o.sigmoid_scale + ": expected a positive number, e.g. 1.0");
        }
        if (o.min_timestep != null && (o.min_timestep < 0 || o.min_timestep > 999)) {
            throw new UserError("--min_timestep " + o.min_timestep + ": expected 0..999");
        }
        if (o.max_timestep != null && (o.max_timestep < 1 || o.max_timestep > 1000)) {
            throw new UserError("--max_timestep " + o.max_timestep + ": expected 1..1000");
        }
        int min = o.min_timestep == null ? 0 : o.min_timestep;
        int max = o.max_timestep == null ? 1000 : o.max_timestep;
        if (min >= max) {
            throw new UserError("--min_timestep " + min + " / --max_timestep " + max + ": the minimum must be below the maximum");
        }
        if (o.blocks_to_swap != null && !o.blocks_to_swap.isAuto()) atLeast("--blocks_to_swap", o.blocks_to_swap.count(), 0);
        // one slot could not load the next block while the current one computes
        between("--block_swap_ring_size", o.block_swap_ring_size, 2, MAX_RING_SIZE);
        if (o.max_vram != null) {
            try {
                MemoryPlan.parseBytes("--max_vram", o.max_vram);
            } catch (IllegalArgumentException e) {
                throw new UserError(e.getMessage(), e);
            }
        }
        atLeast("--save_every_n_epochs", o.save_every_n_epochs, 1);
        atLeast("--save_every_n_steps", o.save_every_n_steps, 1);
        atLeast("--save_last_n_epochs", o.save_last_n_epochs, 1);
        atLeast("--save_last_n_epochs_state", o.save_last_n_epochs_state, 1);
        atLeast("--save_last_n_steps", o.save_last_n_steps, 1);
        atLeast("--save_last_n_steps_state", o.save_last_n_steps_state, 1);
        if ((o.save_last_n_epochs != null || o.save_last_n_epochs_state != null) && o.save_every_n_epochs == null) {
            throw new UserError("--save_last_n_epochs: keeps the last N of the files saved by --save_every_n_epochs; add --save_every_n_epochs N");
        }
        if ((o.save_last_n_steps != null || o.save_last_n_steps_state != null) && o.save_every_n_steps == null) {
            throw new UserError("--save_last_n_steps: keeps the files saved by --save_every_n_steps in the last N steps; add --save_every_n_steps N");
        }
        atLeast("--sample_every_n_epochs", o.sample_every_n_epochs, 1);
        atLeast("--sample_every_n_steps", o.sample_every_n_steps, 1);
        atLeast("--validate_every_n_epochs", o.validate_every_n_epochs, 1);
        atLeast("--validate_every_n_steps", o.validate_every_n_steps, 1);
        for (double t : o.validation_timesteps) {
            if (!(t > 0 && t < 1)) {
                throw new UserError("--validation_timesteps " + t + ": expected noise levels strictly between 0 and 1, e.g. 0.1,0.5,0.9");
            }
        }
        atLeast("--stop_at_step", o.stop_at_step, 1);
        try {
            LoraMetadata.resolution(o.metadata_reso); // checked now: it is first read when the first LoRA file is saved
        } catch (IllegalArgumentException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    private static void checkPaths(TrainOptions o) {
        // --dry_run plans from --task when the checkpoint is not on this machine, and writes nothing
        boolean dryTask = o.dry_run && o.task != null && (o.dit == null || !Files.exists(o.dit));
        if (o.dit == null && !dryTask) {
            throw new UserError("--dit is required: the Wan2.1 DiT checkpoint, e.g. --dit wan2.1_t2v_14B_bf16.safetensors"
                    + (o.dry_run ? " (or --task t2v-14B|t2v-1.3B to plan without it)" : ""));
        }
        if (o.dataset_config == null) {
            throw new UserError("--dataset_config is required: musubi's dataset TOML with the cached latents and text-encoder outputs");
        }
        if (o.output_dir == null && !o.dry_run) throw new UserError("--output_dir is required: the folder for LoRA files, e.g. --output_dir out");
        if ((o.output_name == null || o.output_name.isBlank()) && !o.dry_run) {
            throw new UserError("--output_name is required: the base name of the LoRA files, e.g. --output_name my-lora");
        }
        if (o.output_name != null && (o.output_name.contains("/") || o.output_name.contains("\\"))) {
            throw new UserError("--output_name " + o.output_name + ": a file name without folders is expected; put folders in --output_dir");
        }
        if (!dryTask) existingFile("--dit", o.dit);
        existingFile("--dataset_config", o.dataset_config);
        existingFile("--vae", o.vae);
        existingFile("--t5", o.t5);
        ModelFiles.require("--vae", o.vae, ModelFiles.Kind.VAE);
        ModelFiles.require("--t5", o.t5, ModelFiles.Kind.T5);
        existingFile("--network_weights", o.network_weights);
        existingFile("--sample_prompts", o.sample_prompts);
        existingFile("--validation_dataset_config", o.validation_dataset_config);
        if (o.resume != null && Files.isRegularFile(o.resume)) {
            throw new UserError("--resume " + o.resume + ": is a file; --resume takes a state folder written by --save_state"
                    + " (e.g. out/" + o.output_name + "-000002-state), --network_weights takes a LoRA file to start from");
        }
        if (o.resume != null && !Files.isDirectory(o.resume)) {
            throw new UserError("--resume " + o.resume + ": no such folder; pass a state folder written by --save_state, e.g. "
                    + "out/" + o.output_name + "-000002-state");
        }
        if (o.output_dir != null && Files.exists(o.output_dir) && !Files.isDirectory(o.output_dir)) {
            throw new UserError("--output_dir " + o.output_dir + ": is a file, expected a folder");
        }
    }

    private static void existingFile(String flag, Path path) {
        if (path == null) return;
        if (Files.isDirectory(path)) throw new UserError(flag + " " + path + ": is a folder, expected a file");
        if (!Files.isRegularFile(path)) throw new UserError(flag + " " + path + ": file not found; check the path");
    }

    /**
     * Largest --network_dim: the 14B model's width (5120) rounded up; a larger rank is a full-rank update of every
     * adapted layer, whose LoRA alone would not fit in memory. The model's own width is checked once it is read.
     */
    static final int MAX_NETWORK_DIM = 8192;
    /** Largest --gradient_accumulation_steps: far beyond any real run, small enough to size a per-step buffer by. */
    static final int MAX_ACCUMULATION_STEPS = 65_536;
    /** Largest --block_swap_ring_size: more device slots than the 14B model's 40 blocks buy nothing. */
    static final int MAX_RING_SIZE = 64;

    private static void between(String flag, Integer value, int min, int max) {
        if (value != null && (value < min || value > max)) {
            throw new UserError(flag + " " + value + ": expected an integer from " + min + " to " + max);
        }
    }

    private static void atLeast(String flag, Integer value, int min) {
        if (value != null && value < min) throw new UserError(flag + " " + value + ": expected an integer >= " + min);
    }

    private static void stepsOrRatio(String flag, StepsOrRatio v) {
        if (v.isRatio() ? !(v.ratio() >= 0 && v.ratio() < 1) : v.steps() < 0) {
            throw new UserError(flag + " " + v + ": expected a step count >= 0 or a ratio in [0, 1)");
        }
    }

    private static void refuseIf(boolean condition, String flag, String why, String fix) {
        if (condition) throw new UserError(flag + ": " + why + "; " + fix);
    }
}
