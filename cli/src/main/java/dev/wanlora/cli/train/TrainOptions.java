package dev.wanlora.cli.train;

import dev.wanlora.pipeline.train.BlocksToSwap;
import dev.wanlora.pipeline.train.CheckpointAttention;
import dev.wanlora.pipeline.train.StepsOrRatio;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.List;

/**
 * Every flag of {@code wanlora train}: musubi-tuner's {@code wan_train_network.py} flags with musubi's names and
 * defaults (spec §4.2, §7.2, §9, §10, §11; source: musubi {@code training/parser_common.py} and
 * {@code wan_train_network.py} at the spec's pinned commit), then wanlora's own additions.
 *
 * <p>Invariant: every option's first name is its snake_case musubi name ({@code --network_dim}) and its second the
 * kebab-case spelling ({@code --network-dim}); {@link TrainConfigFile} uses the first name, without dashes, as the
 * TOML key. A {@code null} value means "not given" where musubi's default is {@code None}.
 *
 * <p>Flags are grouped as musubi groups them; the groups wanlora does not act on (other models, Hugging Face upload,
 * PyTorch and accelerate) are the {@link ForeignFlags} mixin, declared where musubi lists them, so the order of
 * {@code --help} and of the config dump is unchanged. Which flags wanlora acts on, ignores with an info line, or
 * refuses is decided in {@link TrainChecks} and what they resolve to in {@link FlagResolution}, not here: this class
 * only parses.
 */
public final class TrainOptions {

    // ------------------------------------------------------------------ general

    @Option(names = {"--config_file", "--config-file"}, paramLabel = "TOML",
            description = "Read flags from a TOML file with the same keys (snake_case); flags on the command line win.")
    public Path config_file;

    @Option(names = {"--dataset_config", "--dataset-config"}, paramLabel = "TOML",
            description = "musubi dataset config (the cached latents and text-encoder outputs to train on).")
    public Path dataset_config;

    // ------------------------------------------------------------------ model

    @Option(names = {"--task"}, paramLabel = "TASK",
            description = "t2v-14B, t2v-1.3B or t2i-14B. Optional: the model configuration comes from the checkpoint's tensor shapes.")
    public String task;

    @Option(names = {"--dit"}, paramLabel = "FILE", description = "DiT checkpoint (.safetensors, a shard set's index.json, or a shard).")
    public Path dit;

    @Option(names = {"--vae"}, paramLabel = "FILE", description = "Wan 2.1 VAE checkpoint (needed for samples).")
    public Path vae;

    @Option(names = {"--vae_dtype", "--vae-dtype"}, paramLabel = "DTYPE", description = "VAE data type (default bfloat16).")
    public String vae_dtype;

    @Option(names = {"--t5"}, paramLabel = "FILE", description = "umT5-XXL text encoder checkpoint (needed for samples).")
    public Path t5;

    @Option(names = {"--t5_tokenizer", "--t5-tokenizer"}, paramLabel = "FILE|DIR", description = "umT5 tokenizer.json"
            + " or its folder. Default: beside --t5, its google/umt5-xxl/, then the Hugging Face cache (models--google--umt5-xxl).")
    public Path t5_tokenizer;

    @Option(names = {"--fp8_t5", "--fp8-t5"}, description = "Run the text encoder in fp8 (samples).")
    public boolean fp8_t5;

    @Option(names = {"--fp8_base", "--fp8-base"}, description = "Keep the frozen DiT weights in fp8.")
    public boolean fp8_base;

    @Option(names = {"--fp8_scaled", "--fp8-scaled"}, description = "With --fp8_base: block-wise scaled fp8 (musubi's quantizer).")
    public boolean fp8_scaled;

    @Option(names = {"--fp8_compute", "--fp8-compute"}, description = "Opt-in, with --fp8_base (not musubi's): the block"
            + " Linears' forward GEMMs in per-tensor fp8 (cuBLASLt's fp8 GEMM; compute capability 8.9+), the weights"
            + " re-quantized per tensor at load; the backward multiplies by the same codes in bf16. Off by default.")
    public boolean fp8_compute;

    @Option(names = {"--blocks_to_swap", "--blocks-to-swap"}, paramLabel = "N|auto", converter = TrainConverters.BlocksToSwapConverter.class,
            description = "Stream the Linear weights of the last N blocks from host memory; auto: the smallest N whose"
                    + " memory plan fits the GPU (or --max_vram).")
    public BlocksToSwap blocks_to_swap;

    @Option(names = {"--gradient_checkpointing", "--gradient-checkpointing"},
            description = "Recompute each block's activations in the backward pass.")
    public boolean gradient_checkpointing;

    @Option(names = {"--checkpoint_attention", "--checkpoint-attention"}, paramLabel = "auto|on|off",
            converter = CheckpointAttentionConverter.class, defaultValue = "auto",
            description = "With --gradient_checkpointing, keep each block's self-attention output so the recompute skips"
                    + " it (same results, faster, more memory); auto (default): on when the memory plan with it fits.")
    public CheckpointAttention checkpoint_attention;

    @Option(names = {"--mixed_precision", "--mixed-precision"}, paramLabel = "no|fp16|bf16",
            description = "Compute precision of the DiT: no or bf16 (default: the checkpoint's dtype; fp16: not supported).")
    public String mixed_precision;

    // ------------------------------------------------------------------ network

    @Option(names = {"--network_module", "--network-module"}, paramLabel = "MODULE",
            description = "Must be networks.lora_wan (the default).")
    public String network_module;

    @Option(names = {"--network_dim", "--network-dim"}, paramLabel = "RANK", description = "LoRA rank (default 4).")
    public Integer network_dim;

    @Option(names = {"--network_alpha", "--network-alpha"}, paramLabel = "ALPHA", defaultValue = "1",
            description = "LoRA alpha; scale = alpha / rank; 0 means alpha = rank (default ${DEFAULT-VALUE}).")
    public double network_alpha;

    @Option(names = {"--network_args", "--network-args"}, paramLabel = "KEY=VALUE", arity = "0..*",
            description = "LoRA arguments: exclude_patterns=[...], include_patterns=[...], loraplus_lr_ratio=R, verbose=True"
                    + " (rank_dropout, module_dropout: not supported).")
    public List<String> network_args;

    @Option(names = {"--network_weights", "--network-weights"}, paramLabel = "FILE",
            description = "Start from these LoRA weights.")
    public Path network_weights;

    @Option(names = {"--network_dropout", "--network-dropout"}, paramLabel = "P", description = "LoRA dropout (not supported).")
    public Double network_dropout;

    @Option(names = {"--dim_from_weights", "--dim-from-weights"}, description = "Rank from --network_weights (not supported).")
    public boolean dim_from_weights;

    @Option(names = {"--scale_weight_norms", "--scale-weight-norms"}, paramLabel = "X", description = "Max-norm regularization (not supported).")
    public Double scale_weight_norms;

    @Option(names = {"--base_weights", "--base-weights"}, paramLabel = "FILE", arity = "0..*",
            description = "LoRA files merged into the DiT before training (not supported).")
    public List<String> base_weights;

    @Option(names = {"--base_weights_multiplier", "--base-weights-multiplier"}, paramLabel = "X", arity = "0..*",
            description = "Multipliers for --base_weights (not supported).")
    public List<Double> base_weights_multiplier;

    @Option(names = {"--no_metadata", "--no-metadata"}, description = "Write only the minimal ss_* metadata.")
    public boolean no_metadata;

    @Option(names = {"--training_comment", "--training-comment"}, paramLabel = "TEXT", description = "Stored as ss_training_comment.")
    public String training_comment;

    // ------------------------------------------------------------------ optimizer and schedule

    @Option(names = {"--optimizer_type", "--optimizer-type"}, paramLabel = "TYPE", defaultValue = "",
            description = "AdamW (the default when empty), AdamW8bit, prodigyopt.Prodigy or Adafactor (other classes:"
                    + " not supported).")
    public String optimizer_type;

    @Option(names = {"--optimizer_args", "--optimizer-args"}, paramLabel = "KEY=VALUE", arity = "0..*",
            description = "Optimizer arguments, e.g. weight_decay=0.01 betas=0.9,0.999 (Prodigy: decouple=True"
                    + " use_bias_correction=True safeguard_warmup=True d_coef=1; Adafactor: relative_step=False"
                    + " scale_parameter=False warmup_init=False).")
    public List<String> optimizer_args;

    @Option(names = {"--learning_rate", "--learning-rate"}, paramLabel = "LR", defaultValue = "2.0e-6",
            description = "Learning rate (default ${DEFAULT-VALUE}).")
    public double learning_rate;

    @Option(names = {"--max_grad_norm", "--max-grad-norm"}, paramLabel = "X", defaultValue = "1.0",
            description = "Global gradient-norm clip; 0 disables it (default ${DEFAULT-VALUE}).")
    public double max_grad_norm;

    @Option(names = {"--lr_scheduler", "--lr-scheduler"}, paramLabel = "NAME", defaultValue = "constant",
            description = "constant, constant_with_warmup, linear, cosine, cosine_with_restarts, polynomial, inverse_sqrt,"
                    + " cosine_with_min_lr, warmup_stable_decay, rex (default ${DEFAULT-VALUE}; piecewise_constant,"
                    + " cosine_warmup_with_min_lr, reduce_lr_on_plateau: not supported).")
    public String lr_scheduler;

    @Option(names = {"--lr_warmup_steps", "--lr-warmup-steps"}, paramLabel = "N|RATIO", defaultValue = "0",
            converter = TrainConverters.StepsOrRatioConverter.class,
            description = "Warm-up steps, or a ratio of the training steps when < 1 (e.g. 0.05 or 5%%).")
    public StepsOrRatio lr_warmup_steps;

    @Option(names = {"--lr_decay_steps", "--lr-decay-steps"}, paramLabel = "N|RATIO", defaultValue = "0",
            converter = TrainConverters.StepsOrRatioConverter.class,
            description = "Decay steps (warmup_stable_decay), or a ratio of the training steps when < 1.")
    public StepsOrRatio lr_decay_steps;

    @Option(names = {"--lr_scheduler_num_cycles", "--lr-scheduler-num-cycles"}, paramLabel = "N", defaultValue = "1",
            description = "Restarts of cosine_with_restarts (default ${DEFAULT-VALUE}).")
    public int lr_scheduler_num_cycles;

    @Option(names = {"--lr_scheduler_power", "--lr-scheduler-power"}, paramLabel = "X", defaultValue = "1",
            description = "Power of the polynomial scheduler (default ${DEFAULT-VALUE}).")
    public double lr_scheduler_power;

    @Option(names = {"--lr_scheduler_timescale", "--lr-scheduler-timescale"}, paramLabel = "N",
            description = "Timescale of the inverse-sqrt scheduler (default: the warm-up steps).")
    public Integer lr_scheduler_timescale;

    @Option(names = {"--lr_scheduler_min_lr_ratio", "--lr-scheduler-min-lr-ratio"}, paramLabel = "X",
            description = "Minimum lr as a ratio of the initial lr (cosine_with_min_lr, warmup_stable_decay, rex).")
    public Double lr_scheduler_min_lr_ratio;

    @Option(names = {"--lr_scheduler_type", "--lr-scheduler-type"}, paramLabel = "CLASS", defaultValue = "",
            description = "A custom PyTorch scheduler class (not supported).")
    public String lr_scheduler_type;

    @Option(names = {"--lr_scheduler_args", "--lr-scheduler-args"}, paramLabel = "KEY=VALUE", arity = "0..*",
            description = "Arguments of --lr_scheduler_type (not supported).")
    public List<String> lr_scheduler_args;

    // ------------------------------------------------------------------ timesteps

    @Option(names = {"--timestep_sampling", "--timestep-sampling"}, paramLabel = "MODE", defaultValue = "sigma",
            description = "sigma, uniform, sigmoid or shift (default ${DEFAULT-VALUE}; musubi's other modes: not supported).")
    public String timestep_sampling;

    @Option(names = {"--discrete_flow_shift", "--discrete-flow-shift"}, paramLabel = "S", defaultValue = "1.0",
            description = "Shift s of the shift sampler: t <- s*t/(1+(s-1)*t) (default ${DEFAULT-VALUE}).")
    public double discrete_flow_shift;

    @Option(names = {"--sigmoid_scale", "--sigmoid-scale"}, paramLabel = "X", defaultValue = "1.0",
            description = "Scale of z in the sigmoid and shift samplers (default ${DEFAULT-VALUE}).")
    public double sigmoid_scale;

    @Option(names = {"--min_timestep", "--min-timestep"}, paramLabel = "T", description = "Lowest timestep, 0..999 (default 0).")
    public Integer min_timestep;

    @Option(names = {"--max_timestep", "--max-timestep"}, paramLabel = "T", description = "Highest timestep, 1..1000 (default 1000).")
    public Integer max_timestep;

    @Option(names = {"--preserve_distribution_shape", "--preserve-distribution-shape"},
            description = "Keep the sampler's shape inside [min, max] by rejection instead of squeezing.")
    public boolean preserve_distribution_shape;

    @Option(names = {"--weighting_scheme", "--weighting-scheme"}, paramLabel = "NAME", defaultValue = "none",
            description = "Loss weighting: none (the others: not supported).")
    public String weighting_scheme;

    @Option(names = {"--logit_mean", "--logit-mean"}, paramLabel = "X", defaultValue = "0.0",
            description = "logit_normal weighting mean (weighting not supported).")
    public double logit_mean;

    @Option(names = {"--logit_std", "--logit-std"}, paramLabel = "X", defaultValue = "1.0",
            description = "logit_normal weighting std (weighting not supported).")
    public double logit_std;

    @Option(names = {"--mode_scale", "--mode-scale"}, paramLabel = "X", defaultValue = "1.29",
            description = "mode weighting scale (weighting not supported).")
    public double mode_scale;

    @Option(names = {"--num_timestep_buckets", "--num-timestep-buckets"}, paramLabel = "N",
            description = "Stratified timestep sampling (not supported).")
    public Integer num_timestep_buckets;

    @Option(names = {"--show_timesteps", "--show-timesteps"}, paramLabel = "image|console",
            description = "Show the timestep distribution and exit (not supported).")
    public String show_timesteps;

    @Option(names = {"--guidance_scale", "--guidance-scale"}, paramLabel = "X", defaultValue = "1.0",
            description = "Embedded guidance (HunyuanVideo only; Wan ignores it).")
    public double guidance_scale;

    // ------------------------------------------------------------------ length, seed, accumulation

    @Option(names = {"--max_train_steps", "--max-train-steps"}, paramLabel = "N", defaultValue = "1600",
            description = "Training steps (default ${DEFAULT-VALUE}); --max_train_epochs overrides it.")
    public int max_train_steps;

    @Option(names = {"--max_train_epochs", "--max-train-epochs"}, paramLabel = "N", description = "Training epochs.")
    public Integer max_train_epochs;

    @Option(names = {"--gradient_accumulation_steps", "--gradient-accumulation-steps"}, paramLabel = "N", defaultValue = "1",
            description = "Batches per optimizer step (default ${DEFAULT-VALUE}).")
    public int gradient_accumulation_steps;

    @Option(names = {"--seed"}, paramLabel = "N", description = "Random seed (default: random; the seed used is printed and saved).")
    public Long seed;

    // ------------------------------------------------------------------ saving and resuming

    @Option(names = {"--output_dir", "--output-dir"}, paramLabel = "DIR", description = "Where LoRA files and states go.")
    public Path output_dir;

    @Option(names = {"--output_name", "--output-name"}, paramLabel = "NAME", description = "Base name of the LoRA files.")
    public String output_name;

    @Option(names = {"--save_precision", "--save-precision"}, paramLabel = "float|fp32|fp16|bf16",
            description = "dtype of saved LoRA tensors (default fp32).")
    public String save_precision;

    @Option(names = {"--save_every_n_epochs", "--save-every-n-epochs"}, paramLabel = "N", description = "Save every N epochs.")
    public Integer save_every_n_epochs;

    @Option(names = {"--save_every_n_steps", "--save-every-n-steps"}, paramLabel = "N", description = "Save every N steps.")
    public Integer save_every_n_steps;

    @Option(names = {"--save_last_n_epochs", "--save-last-n-epochs"}, paramLabel = "N",
            description = "Keep only the last N epoch files (with --save_every_n_epochs).")
    public Integer save_last_n_epochs;

    @Option(names = {"--save_last_n_epochs_state", "--save-last-n-epochs-state"}, paramLabel = "N",
            description = "Keep only the last N epoch states (overrides --save_last_n_epochs for states).")
    public Integer save_last_n_epochs_state;

    @Option(names = {"--save_last_n_steps", "--save-last-n-steps"}, paramLabel = "N",
            description = "Keep step files of the last N steps only (with --save_every_n_steps).")
    public Integer save_last_n_steps;

    @Option(names = {"--save_last_n_steps_state", "--save-last-n-steps-state"}, paramLabel = "N",
            description = "Keep step states of the last N steps only (overrides --save_last_n_steps for states).")
    public Integer save_last_n_steps_state;

    @Option(names = {"--save_state", "--save-state"}, description = "Also save a resumable state folder at every save.")
    public boolean save_state;

    @Option(names = {"--save_state_on_train_end", "--save-state-on-train-end"},
            description = "Save a state folder when training ends, even without --save_state.")
    public boolean save_state_on_train_end;

    @Option(names = {"--resume"}, paramLabel = "DIR", description = "Continue from a state folder.")
    public Path resume;

    // ------------------------------------------------------------------ samples

    @Option(names = {"--sample_prompts", "--sample-prompts"}, paramLabel = "FILE", description = "Sample prompt file (.txt, .toml or .json).")
    public Path sample_prompts;

    @Option(names = {"--sample_every_n_epochs", "--sample-every-n-epochs"}, paramLabel = "N", description = "Sample every N epochs.")
    public Integer sample_every_n_epochs;

    @Option(names = {"--sample_every_n_steps", "--sample-every-n-steps"}, paramLabel = "N", description = "Sample every N steps.")
    public Integer sample_every_n_steps;

    @Option(names = {"--sample_at_first", "--sample-at-first"}, description = "Sample before training.")
    public boolean sample_at_first;

    @Option(names = {"--sample_solver", "--sample-solver"}, paramLabel = "unipc|euler", defaultValue = "unipc",
            description = "Flow solver of the samples: unipc (musubi's) or euler (default ${DEFAULT-VALUE}).")
    public String sample_solver;

    @Option(names = {"--sample_fps", "--sample-fps"}, paramLabel = "N", defaultValue = "16",
            description = "Frame rate of sample videos (default ${DEFAULT-VALUE}, Wan's native rate; musubi writes 24).")
    public int sample_fps;

    // ------------------------------------------------------------------ logging

    @Option(names = {"--log_with", "--log-with"}, paramLabel = "tensorboard|wandb|all",
            description = "Logger (default tensorboard when --logging_dir is given; wandb: not supported).")
    public String log_with;

    @Option(names = {"--logging_dir", "--logging-dir"}, paramLabel = "DIR", description = "TensorBoard log folder.")
    public Path logging_dir;

    @Option(names = {"--log_prefix", "--log-prefix"}, paramLabel = "TEXT", description = "Prefix of the run's log folder name.")
    public String log_prefix;

    @Option(names = {"--log_tracker_name", "--log-tracker-name"}, paramLabel = "NAME",
            description = "Tracker (sub-folder) name (default network_train).")
    public String log_tracker_name;

    @Option(names = {"--log_tracker_config", "--log-tracker-config"}, paramLabel = "FILE", description = "Tracker config (wandb; not supported).")
    public Path log_tracker_config;

    @Option(names = {"--wandb_run_name", "--wandb-run-name"}, paramLabel = "NAME", description = "wandb run name (not supported).")
    public String wandb_run_name;

    @Option(names = {"--wandb_api_key", "--wandb-api-key"}, paramLabel = "KEY", description = "wandb API key (not supported).")
    public String wandb_api_key;

    @Option(names = {"--log_config", "--log-config"}, description = "Also log the configuration to TensorBoard.")
    public boolean log_config;

    // ------------------------------------------------------------------ metadata

    @Option(names = {"--metadata_title", "--metadata-title"}, paramLabel = "TEXT", description = "modelspec.title (default: output name).")
    public String metadata_title;

    @Option(names = {"--metadata_author", "--metadata-author"}, paramLabel = "TEXT", description = "modelspec.author.")
    public String metadata_author;

    @Option(names = {"--metadata_description", "--metadata-description"}, paramLabel = "TEXT", description = "modelspec.description.")
    public String metadata_description;

    @Option(names = {"--metadata_license", "--metadata-license"}, paramLabel = "TEXT", description = "modelspec.license.")
    public String metadata_license;

    @Option(names = {"--metadata_tags", "--metadata-tags"}, paramLabel = "A,B", description = "modelspec.tags (comma separated).")
    public String metadata_tags;

    @Option(names = {"--metadata_reso", "--metadata-reso"}, paramLabel = "W,H", description = "modelspec.resolution (default 1280x720).")
    public String metadata_reso;

    @Option(names = {"--metadata_arch", "--metadata-arch"}, paramLabel = "TEXT", description = "modelspec.architecture override.")
    public String metadata_arch;

    // ------------------------------------------------------------------ memory knobs that change no result

    @Option(names = {"--gradient_checkpointing_cpu_offload", "--gradient-checkpointing-cpu-offload"},
            description = "With --gradient_checkpointing: keep every block's saved input in pinned host memory, copied"
                    + " out as the forward writes it and back ahead of the backward (same results). --blocks_to_swap auto"
                    + " offloads as much as the memory plan needs by itself.")
    public boolean gradient_checkpointing_cpu_offload;

    @Option(names = {"--use_pinned_memory_for_block_swap", "--use-pinned-memory-for-block-swap"},
            description = "wanlora's block swap always uses pinned memory.")
    public boolean use_pinned_memory_for_block_swap;

    @Option(names = {"--block_swap_h2d_only", "--block-swap-h2d-only"}, description = "wanlora's block swap is always host-to-device only.")
    public boolean block_swap_h2d_only;

    @Option(names = {"--block_swap_ring_size", "--block-swap-ring-size"}, paramLabel = "K", defaultValue = "2",
            description = "Device slots for streamed blocks (default ${DEFAULT-VALUE}).")
    public int block_swap_ring_size;

    @Option(names = {"--img_in_txt_in_offloading", "--img-in-txt-in-offloading"}, description = "HunyuanVideo only; ignored.")
    public boolean img_in_txt_in_offloading;

    @Option(names = {"--vae_cache_cpu", "--vae-cache-cpu"}, description = "Keep VAE feature caches in host memory (samples).")
    public boolean vae_cache_cpu;

    // ------------------------------------------------------------------ musubi's flags that wanlora does not act on

    /** musubi's flags for other models, Hugging Face upload and PyTorch/accelerate: accepted, then refused or ignored. */
    @Mixin
    public ForeignFlags foreign = new ForeignFlags();

    // ------------------------------------------------------------------ wanlora additions

    @Option(names = {"--max_vram", "--max-vram"}, paramLabel = "SIZE",
            description = "Device memory budget of the memory plan, e.g. 24G (default: the GPU's memory); lets a larger"
                    + " card stand in for a smaller one.")
    public String max_vram;

    @Option(names = {"--max_host_ram", "--max-host-ram"}, paramLabel = "SIZE",
            description = "Host memory budget of the memory plan (pinned swapped blocks, offloaded activations, staging),"
                    + " e.g. 64G (default: what the OS reports available, MemAvailable).")
    public String max_host_ram;

    @Option(names = {"--dry_run", "--dry-run"},
            description = "Print the memory plan for this command line and exit: 0 when it fits, 2 when not (with the"
                    + " smallest change that fits). With --max_vram no GPU is touched; with --task, --dit may be absent.")
    public boolean dry_run;

    @Option(names = {"--backend"}, paramLabel = "auto|cpu|cuda", defaultValue = "auto",
            description = "Where to train: cuda, cpu, or auto = cuda when a GPU is present, else cpu (default ${DEFAULT-VALUE}).")
    public String backend;

    @Option(names = {"--overwrite"}, description = "Allow replacing another run's files in --output_dir.")
    public boolean overwrite;

    @Option(names = {"--skip_bad_items", "--skip-bad-items"}, description = "Leave out cache items with a missing text"
            + " cache, a bad header or NaN/Inf values (every cache is read at start), with a warning, instead of stopping.")
    public boolean skip_bad_items;

    @Option(names = {"--validation_dataset_config", "--validation-dataset-config"}, paramLabel = "TOML",
            description = "musubi dataset config of held-out items for a validation loss.")
    public Path validation_dataset_config;

    @Option(names = {"--validate_every_n_steps", "--validate-every-n-steps"}, paramLabel = "N",
            description = "Validation loss every N steps.")
    public Integer validate_every_n_steps;

    @Option(names = {"--validate_every_n_epochs", "--validate-every-n-epochs"}, paramLabel = "N",
            description = "Validation loss every N epochs (default 1 when --validation_dataset_config is given and no step interval is).")
    public Integer validate_every_n_epochs;

    @Option(names = {"--validation_timesteps", "--validation-timesteps"}, paramLabel = "T", arity = "1..*", split = ",",
            defaultValue = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9",
            description = "Fixed noise levels t in (0,1) of the validation loss (default ${DEFAULT-VALUE}).")
    public List<Double> validation_timesteps;

    /** Test hook: behaves like Ctrl-C after this many optimizer steps (saves a state and stops). */
    @Option(names = {"--stop_at_step", "--stop-at-step"}, paramLabel = "N", hidden = true)
    public Integer stop_at_step;
}
