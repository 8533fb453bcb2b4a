package dev.wanlora.cli;

import dev.wanlora.engine.io.PthFile;
import dev.wanlora.engine.io.TensorSource;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.umt5.UmT5Config;
import dev.wanlora.models.umt5.UmT5Weights;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code wanlora inspect}'s parts that work on any {@link TensorSource}: the summary and tensor list of a PyTorch
 * .pth (read by the safe {@link PthFile}, nothing executed) and what kind of model a checkpoint is (umT5 encoder).
 */
final class CheckpointInspect {
    private CheckpointInspect() {}

    /** Summary, model kind and the first {@code limit} tensors of a .pth. */
    static void printPth(PrintWriter out, PthFile pth, int limit) {
        Map<DType, Integer> histogram = new TreeMap<>();
        long dataBytes = 0;
        for (String k : pth.keys()) {
            histogram.merge(pth.dtype(k), 1, Integer::sum);
            dataBytes += pth.byteLength(k);
        }
        out.println("file:     " + pth.path() + " (PyTorch state dict, read without running its pickle)");
        out.println("tensors:  " + pth.keys().size());
        List<String> parts = new ArrayList<>();
        histogram.forEach((dtype, n) -> parts.add(dtype + " " + n));
        out.println("dtypes:   " + (parts.isEmpty() ? "-" : String.join(", ", parts)));
        out.println("data:     " + String.format(Locale.ROOT, "%,d bytes", dataBytes));
        printKind(out, pth);
        int n = Math.min(limit, pth.keys().size());
        if (n == 0) return;
        out.println("first " + n + " tensors:");
        int width = pth.keys().stream().limit(n).mapToInt(String::length).max().orElse(0);
        pth.keys().stream().limit(n).forEach(k -> out.println(String.format(Locale.ROOT, "  %-" + width + "s  %-7s %s", k,
                pth.dtype(k), pth.shape(k))));
        if (pth.keys().size() > n) out.println("  ... " + (pth.keys().size() - n) + " more (--limit " + pth.keys().size() + " lists all)");
    }

    /** "umT5 text encoder: …" when the names say so; nothing otherwise. */
    static void printKind(PrintWriter out, TensorSource src) {
        if (!UmT5Weights.isUmT5(src)) return;
        try {
            UmT5Config c = UmT5Weights.configOf(src);
            boolean isXxl = c.equals(UmT5Config.xxl());
            out.println("umT5 text encoder (T5 for Wan's --t5):");
            out.println("  config:  " + c + (isXxl ? " (umT5-XXL, as Wan 2.1 uses)" : ""));
            out.println("  params:  " + String.format(Locale.ROOT, "%,d", c.parameterCount()));
            boolean isHf = src.contains("shared.weight") || src.contains("encoder.embed_tokens.weight");
            boolean isFp8 = src.keys().stream().anyMatch(k -> k.endsWith(".scale_weight"));
            out.println("  names:   " + (isHf ? "Hugging Face / ComfyUI (encoder.block.N.layer.…)" : "Wan (blocks.N.attn.…)")
                    + (isFp8 ? ", fp8 weights with per-tensor scale_weight" : ""));
        } catch (RuntimeException e) {
            out.println("umT5 text encoder, incomplete: " + e.getMessage());
        }
    }
}
