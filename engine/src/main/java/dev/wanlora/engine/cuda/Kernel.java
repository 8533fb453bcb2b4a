package dev.wanlora.engine.cuda;

/**
 * Every CUDA kernel wanlora launches: the family (the folder {@code kernels/src/main/cuda/<family>/}, compiled into
 * the resource {@code dev/wanlora/kernels/<family>.fatbin}) and the {@code extern "C"} symbol, named
 * {@code <op>_<pass>_<dtype>} (STYLE.md §3). {@link KernelLibrary} resolves every entry at start-up, so a renamed
 * or missing symbol fails when the backend opens, never in the middle of a step.
 *
 * <p><b>Registering a kernel</b>: write it in {@code kernels/src/main/cuda/<family>/<op>.cu} with a header comment
 * (thread mapping, requirements, numerics, determinism), add one entry here, and launch it from the op's Java code
 * with {@link KernelLibrary#launch(Kernel, LaunchConfig, Object...)}. Keep entries grouped by family.
 */
public enum Kernel {
    // elementwise
    FILL_FWD_F32("elementwise", "fill_fwd_f32"),

    // attention (flash_attention.cu; launched by CudaAttention)
    ATTENTION_FWD_BF16("attention", "attention_fwd_bf16"),
    ATTENTION_BWD_PREPROCESS_BF16("attention", "attention_bwd_preprocess_bf16"),
    ATTENTION_BWD_DKDV_BF16("attention", "attention_bwd_dkdv_bf16"),
    ATTENTION_BWD_DQ_BF16("attention", "attention_bwd_dq_bf16");

    private final String family;
    private final String symbol;

    Kernel(String family, String symbol) {
        this.family = family;
        this.symbol = symbol;
    }

    /** The folder / fatbin name, e.g. "norm". */
    public String family() { return family; }

    /** The extern "C" symbol, e.g. "rms_norm_fwd_bf16". */
    public String symbol() { return symbol; }
}
