package dev.wanlora.models.wan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.DType;

import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * The per-tensor scales of a "scaled fp8" DiT checkpoint as ComfyUI users have them (musubi refuses these files; we
 * load them). Layouts, as ComfyUI's {@code comfy/utils.py convert_old_quants} reads them
 * (https://github.com/comfyanonymous/ComfyUI, {@code convert_old_quants} and {@code comfy/ops.py}):
 * <ul>
 * <li><b>scaled_fp8</b> (older): a marker tensor {@code scaled_fp8} (its dtype names the fp8 format; F32 means e4m3fn,
 * 2 elements mean "full precision matrix mult"); each quantized Linear {@code L} has {@code L.weight} F8_E4M3 and a
 * one-element F32 {@code L.scale_weight}, sometimes {@code L.scale_input} (an activation scale for fp8 matmuls).</li>
 * <li><b>comfy_quant</b> (newer): {@code L.weight} F8_E4M3 with a one-element {@code L.weight_scale}, sometimes
 * {@code L.input_scale}, and the layer's format either in a U8 tensor {@code L.comfy_quant} holding JSON
 * ({@code {"format": "float8_e4m3fn", …}}) or in the header metadata {@code _quantization_metadata}
 * ({@code {"layers": {L: {"format": …}}}}).</li>
 * </ul>
 * Numerics (ComfyUI's, {@code weight.to(dtype) * scale.to(dtype)}): the weight used is
 * w = dtype(dtype(q) · dtype(s)), with dtype the compute dtype. An e4m3 code is exact in bf16, and a product of two
 * bf16 values is exact in fp32, so rounding it once to bf16 is that result; {@code Backend.dequantizeFp8} with the scale
 * held in the compute dtype computes exactly this. Input scales only matter for fp8 matmuls of activations, which
 * training does not use; they are read and ignored. Only tensor-wise float8_e4m3fn layers are supported.
 *
 * @param format      what the file is, for messages and {@code inspect}: "scaled_fp8 (scale_weight)" or "comfy_quant
 *                    float8_e4m3fn (weight_scale)"
 * @param weightScale per quantized weight key ({@code L.weight}, prefixes stripped): its scale s
 * @param auxiliary   the keys that are not model tensors (marker, scales, input scales, comfy_quant): consumed here
 */
public record ScaledFp8Layout(String format, Map<String, Float> weightScale, Set<String> auxiliary) {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** The layout of {@code checkpoint}, or null for a file without per-tensor fp8 scales. */
    public static ScaledFp8Layout of(SafeTensors checkpoint) {
        String name = checkpoint.path().getFileName().toString();
        Map<String, Float> scales = new LinkedHashMap<>();
        Set<String> auxiliary = new LinkedHashSet<>();
        if (checkpoint.contains("scaled_fp8")) {
            auxiliary.add("scaled_fp8");
            DType marker = checkpoint.info("scaled_fp8").dtype();
            if (marker != DType.F8_E4M3 && marker != DType.F32) {
                throw new IllegalArgumentException(name + ": scaled_fp8 marker is " + marker + "; only float8_e4m3fn scaled"
                        + " checkpoints are supported (marker F8_E4M3 or F32)");
            }
            for (String key : checkpoint.keys()) {
                if (key.endsWith(".scale_weight")) {
                    String layer = key.substring(0, key.length() - ".scale_weight".length());
                    scales.put(layer + ".weight", scalar(checkpoint, key, name));
                    auxiliary.add(key);
                } else if (key.endsWith(".scale_input")) {
                    auxiliary.add(key);
                }
            }
            return new ScaledFp8Layout("scaled_fp8 (scale_weight)", scales, auxiliary);
        }
        Map<String, String> formats = new LinkedHashMap<>();
        String metadata = checkpoint.metadata().get("_quantization_metadata");
        if (metadata != null) {
            try {
                JsonNode layers = JSON.readTree(metadata).path("layers");
                for (var it = layers.properties().iterator(); it.hasNext(); ) {
                    var e = it.next();
                    String format = e.getValue().isTextual() ? e.getValue().asText() : e.getValue().path("format").asText("?");
                    formats.put(strip(e.getKey()), format);
                }
            } catch (com.fasterxml.jackson.core.JacksonException e) {
                throw new IllegalArgumentException(name + ": header metadata _quantization_metadata is not valid JSON ("
                        + e.getOriginalMessage() + ")");
            }
        }
        for (String key : checkpoint.keys()) {
            if (!key.endsWith(".comfy_quant")) continue;
            auxiliary.add(key);
            String json = new String(checkpoint.data(key).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            try {
                formats.put(key.substring(0, key.length() - ".comfy_quant".length()),
                        JSON.readTree(json).path("format").asText("?"));
            } catch (com.fasterxml.jackson.core.JacksonException e) {
                throw new IllegalArgumentException(name + ": " + key + " is not valid JSON (" + e.getOriginalMessage() + ")");
            }
        }
        if (formats.isEmpty()) return null;
        for (var e : formats.entrySet()) {
            String layer = e.getKey();
            if (!e.getValue().equals("float8_e4m3fn")) {
                throw new IllegalArgumentException(name + ": layer " + layer + " is quantized as " + e.getValue()
                        + "; supported: float8_e4m3fn with a per-tensor weight_scale (use a bf16 or fp8_e4m3fn checkpoint)");
            }
            String scaleKey = layer + ".weight_scale";
            if (!checkpoint.contains(scaleKey)) {
                throw new IllegalArgumentException(name + ": layer " + layer + " is float8_e4m3fn but has no " + scaleKey);
            }
            scales.put(layer + ".weight", scalar(checkpoint, scaleKey, name));
            auxiliary.add(scaleKey);
            if (checkpoint.contains(layer + ".input_scale")) auxiliary.add(layer + ".input_scale");
        }
        return new ScaledFp8Layout("comfy_quant float8_e4m3fn (weight_scale)", scales, auxiliary);
    }

    /** The scale of a weight key, or null when the weight has none. */
    public Float scaleOf(String weightKey) { return weightScale.get(weightKey); }

    private static float scalar(SafeTensors checkpoint, String key, String name) {
        var info = checkpoint.info(key);
        if (info.numElements() != 1) {
            throw new IllegalArgumentException(name + ": " + key + " has shape " + info.shape() + "; only per-tensor"
                    + " scales (one element) are supported");
        }
        return checkpoint.floats(key)[0];
    }

    private static String strip(String layer) {
        for (String p : SafeTensors.DIT_PREFIXES) if (layer.startsWith(p)) return layer.substring(p.length());
        return layer;
    }
}
