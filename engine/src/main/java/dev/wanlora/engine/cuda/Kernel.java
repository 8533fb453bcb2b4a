package dev.wanlora.engine.cuda;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

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
    // convert
    CONVERT_FWD_BF16_F16("convert", "convert_fwd_bf16_f16"),
    CONVERT_FWD_BF16_F32("convert", "convert_fwd_bf16_f32"),
    CONVERT_FWD_BF16_F8E4M3("convert", "convert_fwd_bf16_f8e4m3"),
    CONVERT_FWD_BF16_F8E5M2("convert", "convert_fwd_bf16_f8e5m2"),
    CONVERT_FWD_F16_BF16("convert", "convert_fwd_f16_bf16"),
    CONVERT_FWD_F16_F32("convert", "convert_fwd_f16_f32"),
    CONVERT_FWD_F16_F8E4M3("convert", "convert_fwd_f16_f8e4m3"),
    CONVERT_FWD_F16_F8E5M2("convert", "convert_fwd_f16_f8e5m2"),
    CONVERT_FWD_F32_BF16("convert", "convert_fwd_f32_bf16"),
    CONVERT_FWD_F32_F16("convert", "convert_fwd_f32_f16"),
    CONVERT_FWD_F32_F8E4M3("convert", "convert_fwd_f32_f8e4m3"),
    CONVERT_FWD_F32_F8E5M2("convert", "convert_fwd_f32_f8e5m2"),
    CONVERT_FWD_F8E4M3_BF16("convert", "convert_fwd_f8e4m3_bf16"),
    CONVERT_FWD_F8E4M3_F16("convert", "convert_fwd_f8e4m3_f16"),
    CONVERT_FWD_F8E4M3_F32("convert", "convert_fwd_f8e4m3_f32"),
    CONVERT_FWD_F8E4M3_F8E5M2("convert", "convert_fwd_f8e4m3_f8e5m2"),
    CONVERT_FWD_F8E5M2_BF16("convert", "convert_fwd_f8e5m2_bf16"),
    CONVERT_FWD_F8E5M2_F16("convert", "convert_fwd_f8e5m2_f16"),
    CONVERT_FWD_F8E5M2_F32("convert", "convert_fwd_f8e5m2_f32"),
    CONVERT_FWD_F8E5M2_F8E4M3("convert", "convert_fwd_f8e5m2_f8e4m3"),
    // elementwise
    ADD_FWD_BF16("elementwise", "add_fwd_bf16"),
    ADD_GATED_RESIDUAL_FWD_BF16("elementwise", "add_gated_residual_fwd_bf16"),
    ADD_GATED_RESIDUAL_FWD_BF16_F32("elementwise", "add_gated_residual_fwd_bf16_f32"),
    ADD_GATED_RESIDUAL_FWD_F32("elementwise", "add_gated_residual_fwd_f32"),
    ADD_GATED_RESIDUAL_FWD_F32_BF16("elementwise", "add_gated_residual_fwd_f32_bf16"),
    ADD_FWD_BF16_BF16_F32("elementwise", "add_fwd_bf16_bf16_f32"),
    ADD_FWD_BF16_F32_BF16("elementwise", "add_fwd_bf16_f32_bf16"),
    ADD_FWD_BF16_F32_F32("elementwise", "add_fwd_bf16_f32_f32"),
    ADD_FWD_F32("elementwise", "add_fwd_f32"),
    ADD_FWD_F32_BF16_BF16("elementwise", "add_fwd_f32_bf16_bf16"),
    ADD_FWD_F32_BF16_F32("elementwise", "add_fwd_f32_bf16_f32"),
    ADD_FWD_F32_F32_BF16("elementwise", "add_fwd_f32_f32_bf16"),
    ADD_ROW_VECTOR_FWD_BF16("elementwise", "add_row_vector_fwd_bf16"),
    ADD_ROW_VECTOR_FWD_BF16_F32("elementwise", "add_row_vector_fwd_bf16_f32"),
    ADD_ROW_VECTOR_FWD_F32("elementwise", "add_row_vector_fwd_f32"),
    ADD_ROW_VECTOR_FWD_F32_BF16("elementwise", "add_row_vector_fwd_f32_bf16"),
    GATED_RESIDUAL_BWD_BF16("elementwise", "gated_residual_bwd_bf16"),
    GATED_RESIDUAL_BWD_BF16_F32("elementwise", "gated_residual_bwd_bf16_f32"),
    GATED_RESIDUAL_BWD_F32("elementwise", "gated_residual_bwd_f32"),
    GATED_RESIDUAL_BWD_F32_BF16("elementwise", "gated_residual_bwd_f32_bf16"),
    GATED_RESIDUAL_FWD_BF16("elementwise", "gated_residual_fwd_bf16"),
    GATED_RESIDUAL_FWD_BF16_F32("elementwise", "gated_residual_fwd_bf16_f32"),
    GATED_RESIDUAL_FWD_F32("elementwise", "gated_residual_fwd_f32"),
    GATED_RESIDUAL_FWD_F32_BF16("elementwise", "gated_residual_fwd_f32_bf16"),
    GELU_TANH_BWD_BF16("elementwise", "gelu_tanh_bwd_bf16"),
    GELU_TANH_BWD_BF16_F32("elementwise", "gelu_tanh_bwd_bf16_f32"),
    GELU_TANH_BWD_F32("elementwise", "gelu_tanh_bwd_f32"),
    GELU_TANH_BWD_F32_BF16("elementwise", "gelu_tanh_bwd_f32_bf16"),
    GELU_TANH_FWD_BF16("elementwise", "gelu_tanh_fwd_bf16"),
    GELU_TANH_FWD_BF16_F32("elementwise", "gelu_tanh_fwd_bf16_f32"),
    GELU_TANH_FWD_F32("elementwise", "gelu_tanh_fwd_f32"),
    GELU_TANH_FWD_F32_BF16("elementwise", "gelu_tanh_fwd_f32_bf16"),
    MODULATE_BWD_BF16("elementwise", "modulate_bwd_bf16"),
    MODULATE_BWD_BF16_F32("elementwise", "modulate_bwd_bf16_f32"),
    MODULATE_BWD_F32("elementwise", "modulate_bwd_f32"),
    MODULATE_BWD_F32_BF16("elementwise", "modulate_bwd_f32_bf16"),
    MODULATE_FWD_BF16("elementwise", "modulate_fwd_bf16"),
    MODULATE_FWD_BF16_F32("elementwise", "modulate_fwd_bf16_f32"),
    MODULATE_FWD_F32("elementwise", "modulate_fwd_f32"),
    MODULATE_FWD_F32_BF16("elementwise", "modulate_fwd_f32_bf16"),
    SCALE_FWD_BF16("elementwise", "scale_fwd_bf16"),
    SCALE_FWD_BF16_F32("elementwise", "scale_fwd_bf16_f32"),
    SCALE_FWD_F32("elementwise", "scale_fwd_f32"),
    SCALE_FWD_F32_BF16("elementwise", "scale_fwd_f32_bf16"),
    SILU_FWD_BF16("elementwise", "silu_fwd_bf16"),
    SILU_FWD_BF16_F32("elementwise", "silu_fwd_bf16_f32"),
    SILU_FWD_F32("elementwise", "silu_fwd_f32"),
    SILU_FWD_F32_BF16("elementwise", "silu_fwd_f32_bf16"),
    // gemm
    GEMM_MIXED_FWD_BF16_F32_BF16("gemm", "gemm_mixed_fwd_bf16_f32_bf16"),
    GEMM_MIXED_FWD_BF16_F32_F32("gemm", "gemm_mixed_fwd_bf16_f32_f32"),
    GEMM_MIXED_FWD_F32_BF16_BF16("gemm", "gemm_mixed_fwd_f32_bf16_bf16"),
    GEMM_MIXED_FWD_F32_BF16_F32("gemm", "gemm_mixed_fwd_f32_bf16_f32"),
    // norm
    COLUMN_SUM_FWD_F32("norm", "column_sum_fwd_f32"),
    LAYER_NORM_BWD_BF16("norm", "layer_norm_bwd_bf16"),
    LAYER_NORM_BWD_BF16_F32("norm", "layer_norm_bwd_bf16_f32"),
    LAYER_NORM_BWD_F32("norm", "layer_norm_bwd_f32"),
    LAYER_NORM_BWD_F32_BF16("norm", "layer_norm_bwd_f32_bf16"),
    LAYER_NORM_FWD_BF16("norm", "layer_norm_fwd_bf16"),
    LAYER_NORM_FWD_BF16_F32("norm", "layer_norm_fwd_bf16_f32"),
    LAYER_NORM_FWD_F32("norm", "layer_norm_fwd_f32"),
    LAYER_NORM_FWD_F32_BF16("norm", "layer_norm_fwd_f32_bf16"),
    LAYER_NORM_MODULATE_BWD_BF16("norm", "layer_norm_modulate_bwd_bf16"),
    LAYER_NORM_MODULATE_BWD_BF16_F32("norm", "layer_norm_modulate_bwd_bf16_f32"),
    LAYER_NORM_MODULATE_BWD_F32("norm", "layer_norm_modulate_bwd_f32"),
    LAYER_NORM_MODULATE_BWD_F32_BF16("norm", "layer_norm_modulate_bwd_f32_bf16"),
    LAYER_NORM_MODULATE_FWD_BF16("norm", "layer_norm_modulate_fwd_bf16"),
    LAYER_NORM_MODULATE_FWD_BF16_F32("norm", "layer_norm_modulate_fwd_bf16_f32"),
    LAYER_NORM_MODULATE_FWD_F32("norm", "layer_norm_modulate_fwd_f32"),
    LAYER_NORM_MODULATE_FWD_F32_BF16("norm", "layer_norm_modulate_fwd_f32_bf16"),
    RMS_NORM_BWD_BF16("norm", "rms_norm_bwd_bf16"),
    RMS_NORM_BWD_BF16_F32("norm", "rms_norm_bwd_bf16_f32"),
    RMS_NORM_BWD_F32("norm", "rms_norm_bwd_f32"),
    RMS_NORM_BWD_F32_BF16("norm", "rms_norm_bwd_f32_bf16"),
    RMS_NORM_FWD_BF16("norm", "rms_norm_fwd_bf16"),
    RMS_NORM_SILU_FWD_BF16("norm", "rms_norm_silu_fwd_bf16"),
    RMS_NORM_FWD_BF16_F32("norm", "rms_norm_fwd_bf16_f32"),
    RMS_NORM_FWD_F32("norm", "rms_norm_fwd_f32"),
    RMS_NORM_FWD_F32_BF16("norm", "rms_norm_fwd_f32_bf16"),
    // rope
    ROPE_FWD_BF16("rope", "rope_fwd_bf16"),
    ROPE_FWD_BF16_F32("rope", "rope_fwd_bf16_f32"),
    ROPE_FWD_F32("rope", "rope_fwd_f32"),
    ROPE_FWD_F32_BF16("rope", "rope_fwd_f32_bf16"),
    // layout
    PATCHIFY_FWD_BF16("layout", "patchify_fwd_bf16"),
    PATCHIFY_FWD_BF16_F32("layout", "patchify_fwd_bf16_f32"),
    PATCHIFY_FWD_F32("layout", "patchify_fwd_f32"),
    PATCHIFY_FWD_F32_BF16("layout", "patchify_fwd_f32_bf16"),
    UNPATCHIFY_BWD_BF16("layout", "unpatchify_bwd_bf16"),
    UNPATCHIFY_BWD_BF16_F32("layout", "unpatchify_bwd_bf16_f32"),
    UNPATCHIFY_BWD_F32("layout", "unpatchify_bwd_f32"),
    UNPATCHIFY_BWD_F32_BF16("layout", "unpatchify_bwd_f32_bf16"),
    UNPATCHIFY_FWD_BF16("layout", "unpatchify_fwd_bf16"),
    UNPATCHIFY_FWD_BF16_F32("layout", "unpatchify_fwd_bf16_f32"),
    UNPATCHIFY_FWD_F32("layout", "unpatchify_fwd_f32"),
    UNPATCHIFY_FWD_F32_BF16("layout", "unpatchify_fwd_f32_bf16"),
    // embedding
    SINUSOIDAL_EMBEDDING_FWD_F32("embedding", "sinusoidal_embedding_fwd_f32"),
    // embedding (gather.cu: umT5 token embedding and relative-position bias)
    EMBEDDING_FWD_F32("embedding", "embedding_fwd_f32"),
    EMBEDDING_FWD_BF16("embedding", "embedding_fwd_bf16"),
    EMBEDDING_FWD_BF16_F32("embedding", "embedding_fwd_bf16_f32"),
    EMBEDDING_FWD_F32_BF16("embedding", "embedding_fwd_f32_bf16"),
    RELATIVE_POSITION_BIAS_FWD_F32("embedding", "relative_position_bias_fwd_f32"),
    RELATIVE_POSITION_BIAS_FWD_BF16("embedding", "relative_position_bias_fwd_bf16"),
    RELATIVE_POSITION_BIAS_FWD_BF16_F32("embedding", "relative_position_bias_fwd_bf16_f32"),
    RELATIVE_POSITION_BIAS_FWD_F32_BF16("embedding", "relative_position_bias_fwd_f32_bf16"),
    // elementwise (gated_gelu.cu: umT5's gated-GELU FFN product)
    GATED_GELU_FWD_F32("elementwise", "gated_gelu_fwd_f32"),
    GATED_GELU_FWD_BF16("elementwise", "gated_gelu_fwd_bf16"),
    GATED_GELU_FWD_BF16_F32("elementwise", "gated_gelu_fwd_bf16_f32"),
    GATED_GELU_FWD_F32_BF16("elementwise", "gated_gelu_fwd_f32_bf16"),
    // random
    GAUSSIAN_NOISE_FWD_BF16("random", "gaussian_noise_fwd_bf16"),
    GAUSSIAN_NOISE_FWD_F16("random", "gaussian_noise_fwd_f16"),
    GAUSSIAN_NOISE_FWD_F32("random", "gaussian_noise_fwd_f32"),
    // loss
    CLIP_COEFFICIENT_FWD_F32("loss", "clip_coefficient_fwd_f32"),
    FLOW_MATCHING_FWD_ANY("loss", "flow_matching_fwd_any"),
    MSE_LOSS_FWD_ANY("loss", "mse_loss_fwd_any"),
    REDUCE_PARTIALS_FWD_F32("loss", "reduce_partials_fwd_f32"),
    SUM_OF_SQUARES_FWD_BF16("loss", "sum_of_squares_fwd_bf16"),
    SUM_OF_SQUARES_FWD_F32("loss", "sum_of_squares_fwd_f32"),
    // optim
    ADAMW8BIT_FWD_F32("optim", "adamw8bit_fwd_f32"),
    ADAMW_FWD_F32("optim", "adamw_fwd_f32"),
    ADAFACTOR_APPLY_F32("optim", "adafactor_apply_f32"),
    ADAFACTOR_CLIP_F32("optim", "adafactor_clip_f32"),
    ADAFACTOR_FACTORS_F32("optim", "adafactor_factors_f32"),
    ADAFACTOR_LINES_F32("optim", "adafactor_lines_f32"),
    ADAFACTOR_NORM_F32("optim", "adafactor_norm_f32"),
    ADAFACTOR_SQUARE_SUM_F32("optim", "adafactor_square_sum_f32"),
    PRODIGY_ACCUMULATE_FWD_F32("optim", "prodigy_accumulate_fwd_f32"),
    PRODIGY_ACCUMULATE_REDUCE_F32("optim", "prodigy_accumulate_reduce_f32"),
    PRODIGY_ADAPT_F32("optim", "prodigy_adapt_f32"),
    PRODIGY_UPDATE_F32("optim", "prodigy_update_f32"),
    // quant
    DEQUANTIZE_FP8_FWD_BF16("quant", "dequantize_fp8_fwd_bf16"),
    DEQUANTIZE_FP8_FWD_BF16_F32("quant", "dequantize_fp8_fwd_bf16_f32"),
    DEQUANTIZE_FP8_FWD_F32("quant", "dequantize_fp8_fwd_f32"),
    DEQUANTIZE_FP8_FWD_F32_BF16("quant", "dequantize_fp8_fwd_f32_bf16"),
    // video (the Wan VAE; launched by CudaVideo)
    CONV3D_FWD_BF16("video", "conv3d_fwd_bf16"),
    CONV3D_FWD_F32("video", "conv3d_fwd_f32"),
    CONV3D_TC128X128_FWD_BF16("video", "conv3d_tc128x128_fwd_bf16"),
    CONV3D_TC128X96_FWD_BF16("video", "conv3d_tc128x96_fwd_bf16"),
    CONV3D_TC64X64_FWD_BF16("video", "conv3d_tc64x64_fwd_bf16"),
    CONV3D_TC128X8_FWD_BF16("video", "conv3d_tc128x8_fwd_bf16"),
    SOFTMAX_FWD_BF16("video", "softmax_fwd_bf16"),
    SOFTMAX_FWD_BF16_F32("video", "softmax_fwd_bf16_f32"),
    SOFTMAX_FWD_F32("video", "softmax_fwd_f32"),
    SOFTMAX_FWD_F32_BF16("video", "softmax_fwd_f32_bf16"),
    UPSAMPLE_NEAREST2X_FWD_BF16("video", "upsample_nearest2x_fwd_bf16"),
    UPSAMPLE_NEAREST2X_FWD_F32("video", "upsample_nearest2x_fwd_f32"),
    // quant (the checkpoint loader; launched by CudaElementwise)
    QUANTIZE_FP8_FWD_BF16("quant", "quantize_fp8_fwd_bf16"),
    QUANTIZE_FP8_FWD_F16("quant", "quantize_fp8_fwd_f16"),
    QUANTIZE_FP8_FWD_F32("quant", "quantize_fp8_fwd_f32"),
    // quant (fp8_tensor.cu: the --fp8_compute operands; launched by CudaFp8Gemm)
    AMAX_PARTIAL_FWD_BF16("quant", "amax_partial_fwd_bf16"),
    AMAX_PARTIAL_FWD_F32("quant", "amax_partial_fwd_f32"),
    QUANTIZE_FP8_TENSOR_FWD_BF16("quant", "quantize_fp8_tensor_fwd_bf16"),
    QUANTIZE_FP8_TENSOR_FWD_F32("quant", "quantize_fp8_tensor_fwd_f32"),
    DEQUANTIZE_FP8_TENSOR_FWD_BF16("quant", "dequantize_fp8_tensor_fwd_bf16"),
    DEQUANTIZE_FP8_TENSOR_FWD_F32("quant", "dequantize_fp8_tensor_fwd_f32"),

    // attention (flash_attention.cu; launched by CudaAttention)
    ATTENTION_FWD_BF16("attention", "attention_fwd_bf16"),
    ATTENTION_BWD_PREPROCESS_BF16("attention", "attention_bwd_preprocess_bf16"),
    ATTENTION_BWD_DKDV_BF16("attention", "attention_bwd_dkdv_bf16"),
    ATTENTION_BWD_DQ_BF16("attention", "attention_bwd_dq_bf16"),
    // attention (attention_bias.cu: T5 attention with bias and key mask; launched by CudaAttentionWithBias)
    ATTENTION_BIAS_FWD_F32("attention", "attention_bias_fwd_f32"),
    ATTENTION_BIAS_FWD_BF16("attention", "attention_bias_fwd_bf16"),
    // attention_sm90a (flash_attention_sm90.cu: Hopper wgmma forward and backward; sm_90a only, see requiresHopper)
    ATTENTION_FWD_SM90_BF16("attention_sm90a", "attention_fwd_sm90_bf16"),
    ATTENTION_BWD_DKDV_SM90_BF16("attention_sm90a", "attention_bwd_dkdv_sm90_bf16"),
    ATTENTION_BWD_DQ_SM90_BF16("attention_sm90a", "attention_bwd_dq_sm90_bf16"),
    ATTENTION_BWD_FUSED_SM90_BF16("attention_sm90a", "attention_bwd_fused_sm90_bf16"),
    ATTENTION_BWD_DQ_CONVERT_SM90_BF16("attention_sm90a", "attention_bwd_dq_convert_sm90_bf16");

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

    /**
     * Whether the family is built for sm_90a only (a folder named {@code *_sm90a}: wgmma/setmaxnreg code, see
     * {@code kernels/build-kernels.sh}): such kernels exist on compute capability 9.0 devices and nowhere else.
     */
    public boolean requiresHopper() { return family.endsWith("_sm90a"); }

    private static final Map<String, Kernel> BY_SYMBOL = new HashMap<>();

    static {
        for (Kernel k : values()) BY_SYMBOL.put(k.symbol, k);
    }

    /** The kernel with this symbol, or null when there is none (an unsupported dtype combination). */
    public static Kernel bySymbol(String symbol) { return BY_SYMBOL.get(symbol); }

    /** The symbols starting with {@code prefix}, sorted: what an op supports, for its error message. */
    public static List<String> symbolsStartingWith(String prefix) {
        return BY_SYMBOL.keySet().stream().filter(s -> s.startsWith(prefix)).sorted().toList();
    }
}
