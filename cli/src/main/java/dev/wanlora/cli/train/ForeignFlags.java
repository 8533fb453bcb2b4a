package dev.wanlora.cli.train;

import picocli.CommandLine.Option;

import java.nio.file.Path;

/**
 * The flags of musubi's {@code wan_train_network.py} that wanlora accepts, so a musubi command line parses, but does
 * not act on: those of other models and of Hugging Face upload ({@link TrainChecks} refuses them with a one-line
 * reason and fix) and those that only steer PyTorch, its data loading or accelerate (ignored, with one info line). A
 * mixin of {@link TrainOptions}: the names, defaults and help texts are musubi's, in its order, and the config file and
 * the config dump treat them like every other flag.
 */
public final class ForeignFlags {

    // ------------------------------------------------------------------ musubi flags for other models (refused)

    @Option(names = {"--clip"}, paramLabel = "FILE", description = "CLIP encoder for I2V (not supported: T2V only).")
    public Path clip;

    @Option(names = {"--one_frame", "--one-frame"}, description = "One-frame sampling (not supported).")
    public boolean one_frame;

    @Option(names = {"--force_v2_1_time_embedding", "--force-v2-1-time-embedding"}, description = "Wan 2.2 only (not supported).")
    public boolean force_v2_1_time_embedding;

    @Option(names = {"--dit_high_noise", "--dit-high-noise"}, paramLabel = "FILE", description = "Wan 2.2 high-noise DiT (not supported).")
    public Path dit_high_noise;

    @Option(names = {"--timestep_boundary", "--timestep-boundary"}, paramLabel = "T", description = "Wan 2.2 only (not supported).")
    public Integer timestep_boundary;

    @Option(names = {"--offload_inactive_dit", "--offload-inactive-dit"}, description = "Wan 2.2 only (not supported).")
    public boolean offload_inactive_dit;

    // ------------------------------------------------------------------ Hugging Face upload (refused)

    @Option(names = {"--huggingface_repo_id", "--huggingface-repo-id"}, paramLabel = "ID", description = "Not supported.")
    public String huggingface_repo_id;

    @Option(names = {"--huggingface_repo_type", "--huggingface-repo-type"}, paramLabel = "TYPE", description = "Not supported.")
    public String huggingface_repo_type;

    @Option(names = {"--huggingface_path_in_repo", "--huggingface-path-in-repo"}, paramLabel = "PATH", description = "Not supported.")
    public String huggingface_path_in_repo;

    @Option(names = {"--huggingface_token", "--huggingface-token"}, paramLabel = "TOKEN", description = "Not supported.")
    public String huggingface_token;

    @Option(names = {"--huggingface_repo_visibility", "--huggingface-repo-visibility"}, paramLabel = "V", description = "Not supported.")
    public String huggingface_repo_visibility;

    @Option(names = {"--save_state_to_huggingface", "--save-state-to-huggingface"}, description = "Not supported.")
    public boolean save_state_to_huggingface;

    @Option(names = {"--resume_from_huggingface", "--resume-from-huggingface"}, description = "Not supported.")
    public boolean resume_from_huggingface;

    @Option(names = {"--async_upload", "--async-upload"}, description = "Not supported.")
    public boolean async_upload;

    // ------------------------------------------------------------------ PyTorch / accelerate only (ignored, one info line)

    @Option(names = {"--sdpa"}, description = "PyTorch attention choice; ignored.")
    public boolean sdpa;

    @Option(names = {"--flash_attn", "--flash-attn"}, description = "PyTorch attention choice; ignored.")
    public boolean flash_attn;

    @Option(names = {"--sage_attn", "--sage-attn"}, description = "PyTorch attention choice; ignored.")
    public boolean sage_attn;

    @Option(names = {"--xformers"}, description = "PyTorch attention choice; ignored.")
    public boolean xformers;

    @Option(names = {"--flash3"}, description = "PyTorch attention choice; ignored.")
    public boolean flash3;

    @Option(names = {"--split_attn", "--split-attn"}, description = "PyTorch attention choice; ignored.")
    public boolean split_attn;

    @Option(names = {"--max_data_loader_n_workers", "--max-data-loader-n-workers"}, paramLabel = "N", defaultValue = "8",
            description = "PyTorch DataLoader workers; ignored.")
    public int max_data_loader_n_workers;

    @Option(names = {"--persistent_data_loader_workers", "--persistent-data-loader-workers"}, description = "PyTorch DataLoader; ignored.")
    public boolean persistent_data_loader_workers;

    @Option(names = {"--disable_numpy_memmap", "--disable-numpy-memmap"}, description = "PyTorch loading; ignored.")
    public boolean disable_numpy_memmap;

    @Option(names = {"--compile"}, description = "torch.compile; ignored.")
    public boolean compile;

    @Option(names = {"--compile_backend", "--compile-backend"}, paramLabel = "NAME", defaultValue = "inductor", description = "torch.compile; ignored.")
    public String compile_backend;

    @Option(names = {"--compile_mode", "--compile-mode"}, paramLabel = "MODE", defaultValue = "default", description = "torch.compile; ignored.")
    public String compile_mode;

    @Option(names = {"--compile_dynamic", "--compile-dynamic"}, paramLabel = "MODE", description = "torch.compile; ignored.")
    public String compile_dynamic;

    @Option(names = {"--compile_fullgraph", "--compile-fullgraph"}, description = "torch.compile; ignored.")
    public boolean compile_fullgraph;

    @Option(names = {"--compile_cache_size_limit", "--compile-cache-size-limit"}, paramLabel = "N", description = "torch.compile; ignored.")
    public Integer compile_cache_size_limit;

    @Option(names = {"--cuda_allow_tf32", "--cuda-allow-tf32"}, description = "PyTorch TF32 switch; ignored.")
    public boolean cuda_allow_tf32;

    @Option(names = {"--cuda_cudnn_benchmark", "--cuda-cudnn-benchmark"}, description = "PyTorch cuDNN switch; ignored.")
    public boolean cuda_cudnn_benchmark;

    @Option(names = {"--dynamo_backend", "--dynamo-backend"}, paramLabel = "NAME", defaultValue = "NO", description = "torch dynamo; ignored.")
    public String dynamo_backend;

    @Option(names = {"--dynamo_mode", "--dynamo-mode"}, paramLabel = "MODE", description = "torch dynamo; ignored.")
    public String dynamo_mode;

    @Option(names = {"--dynamo_fullgraph", "--dynamo-fullgraph"}, description = "torch dynamo; ignored.")
    public boolean dynamo_fullgraph;

    @Option(names = {"--dynamo_dynamic", "--dynamo-dynamic"}, description = "torch dynamo; ignored.")
    public boolean dynamo_dynamic;

    @Option(names = {"--ddp_timeout", "--ddp-timeout"}, paramLabel = "MIN", description = "PyTorch DDP; ignored.")
    public Integer ddp_timeout;

    @Option(names = {"--ddp_gradient_as_bucket_view", "--ddp-gradient-as-bucket-view"}, description = "PyTorch DDP; ignored.")
    public boolean ddp_gradient_as_bucket_view;

    @Option(names = {"--ddp_static_graph", "--ddp-static-graph"}, description = "PyTorch DDP; ignored.")
    public boolean ddp_static_graph;

    @Option(names = {"--num_cpu_threads_per_process", "--num-cpu-threads-per-process"}, paramLabel = "N",
            description = "accelerate launch option; ignored.")
    public Integer num_cpu_threads_per_process;

    @Option(names = {"--num_processes", "--num-processes"}, paramLabel = "N", description = "accelerate launch option; ignored (one GPU).")
    public Integer num_processes;

    @Option(names = {"--num_machines", "--num-machines"}, paramLabel = "N", description = "accelerate launch option; ignored.")
    public Integer num_machines;

    @Option(names = {"--multi_gpu", "--multi-gpu"}, description = "accelerate launch option; ignored.")
    public boolean multi_gpu;

    @Option(names = {"--gpu_ids", "--gpu-ids"}, paramLabel = "IDS", description = "accelerate launch option; ignored.")
    public String gpu_ids;

    @Option(names = {"--main_process_port", "--main-process-port"}, paramLabel = "PORT", description = "accelerate launch option; ignored.")
    public Integer main_process_port;
}
