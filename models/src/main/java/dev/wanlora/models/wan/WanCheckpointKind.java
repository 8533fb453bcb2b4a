package dev.wanlora.models.wan;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.DType;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What a DiT checkpoint is, for {@code wanlora inspect}: the model and musubi task its shapes describe, the dtype of its
 * block Linear weights and of the rest, its quantization (none, plain fp8 as ComfyUI's {@code …_fp8_e4m3fn} files, or a
 * scaled fp8 layout, {@link ScaledFp8Layout}), its key prefix, and which training flags fit it.
 *
 * @param task         musubi's --task ("t2v-14B", "t2v-1.3B"), or null for other shapes
 * @param weightDType  dtype of the block Linear weights ({@code blocks.0.cross_attn.k.weight})
 * @param otherDTypes  dtype → tensor count of every other tensor (scales and markers excluded)
 * @param quantization "none", "fp8_e4m3fn (no scales)" or the {@link ScaledFp8Layout#format()}
 * @param prefix       the key prefix stripped ("model.diffusion_model." for ComfyUI files), or "" for bare keys
 * @param flags        the training flags that fit, as a sentence
 */
public record WanCheckpointKind(WanDitConfig config, String task, DType weightDType, Map<DType, Integer> otherDTypes,
                                String quantization, String prefix, String flags) {

    /**
     * The kind of {@code checkpoint} (opened with {@link SafeTensors#DIT_PREFIXES} stripped; {@code rawKey} a key as
     * stored, to tell the prefix), or null when it is not a Wan2.1 T2V DiT.
     */
    public static WanCheckpointKind of(SafeTensors checkpoint, String rawKey) {
        WanDitConfig config;
        try {
            config = WanDitConfig.fromCheckpoint(checkpoint);
        } catch (IllegalArgumentException e) {
            return null;
        }
        ScaledFp8Layout scales = ScaledFp8Layout.of(checkpoint);
        DType weight = checkpoint.info(WanDitTree.blockLinearWeightKey(0, WanDitWeights.BlockLinear.CROSS_ATTN_K)).dtype();
        Map<DType, Integer> other = new TreeMap<>();
        for (String key : checkpoint.keys()) {
            if (WanDitTree.isBlockLinearWeight(key) || (scales != null && scales.auxiliary().contains(key))) continue;
            other.merge(checkpoint.info(key).dtype(), 1, Integer::sum);
        }
        boolean isFp8 = weight == DType.F8_E4M3 || weight == DType.F8_E5M2;
        String quantization = scales != null ? scales.format() + ", " + scales.weightScale().size() + " scaled weights"
                : isFp8 ? weight.name().toLowerCase(java.util.Locale.ROOT) + " (no scales)" : "none";
        String prefix = "";
        for (String p : SafeTensors.DIT_PREFIXES) if (rawKey.startsWith(p)) { prefix = p; break; }
        String flags = isFp8 ? "an fp8 file: train with --fp8_base (not --fp8_scaled; musubi refuses both this file"
                + (scales != null ? " and its scales; wanlora applies them: w = q·scale" : "") + ")"
                : "train as is, or with --fp8_base (plain fp8 cast) or --fp8_base --fp8_scaled (musubi's block quantization)";
        return new WanCheckpointKind(config, config.taskName(), weight, other, quantization, prefix, flags);
    }

    /** The lines inspect prints. */
    public List<String> describe() {
        List<String> lines = new ArrayList<>();
        lines.add("Wan2.1 DiT:");
        lines.add("  model:        " + (task == null ? "Wan2.1 T2V (non-standard shapes)" : "Wan2.1 " + task.replace("t2v-", "T2V-"))
                + ", " + config.numLayers() + " blocks, dim " + config.dim() + ", ffn_dim " + config.ffnDim());
        lines.add("  task:         " + (task == null ? "none of musubi's (t2v-14B, t2v-1.3B)" : "--task " + task));
        List<String> others = new ArrayList<>();
        otherDTypes.forEach((d, n) -> others.add(d + " " + n));
        lines.add("  dtype:        block Linear weights " + weightDType + "; other tensors " + String.join(", ", others));
        lines.add("  quantization: " + quantization);
        lines.add("  keys:         " + (prefix.isEmpty() ? "bare (official layout)" : "prefixed " + prefix + " (ComfyUI layout)"));
        lines.add("  training:     " + flags);
        return lines;
    }
}
