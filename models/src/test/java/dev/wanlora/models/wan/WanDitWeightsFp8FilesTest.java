package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * fp8 checkpoints as ComfyUI users have them, written here from the golden tiny model: the plain
 * {@code …_fp8_e4m3fn} layout, the {@code scaled_fp8} + {@code scale_weight} layout, and the newer {@code weight_scale}
 * layouts with {@code comfy_quant} tensors or {@code _quantization_metadata}; all under {@code model.diffusion_model.}.
 * Each loads with --fp8_base into exactly ComfyUI's weights, w = bf16(bf16(q)·bf16(s)) (see {@link ScaledFp8Layout}).
 */
class WanDitWeightsFp8FilesTest {
    private static final Backend CPU = new CpuBackend();
    private static final String PREFIX = "model.diffusion_model.";

    @TempDir
    Path tmp;

    enum Layout { PLAIN, SCALE_WEIGHT, COMFY_QUANT, QUANTIZATION_METADATA }

    /** The golden model in {@code layout}: block Linear weights e4m3 (scaled by max|w|/448 unless PLAIN), the rest F16. */
    private Path write(Layout layout, String format) {
        Path out = tmp.resolve(layout + ".safetensors");
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        StringBuilder layers = new StringBuilder();
        try (SafeTensors st = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"))) {
            if (layout == Layout.SCALE_WEIGHT) entries.add(new SafeTensorsWriter.Entry(PREFIX + "scaled_fp8", DType.F8_E4M3,
                    Shape.of(0), java.lang.foreign.MemorySegment.ofArray(new byte[0])));
            for (String key : st.keys()) {
                float[] v = st.floats(key);
                Shape shape = st.info(key).shape();
                if (!WanDitTree.isBlockLinearWeight(key)) {
                    entries.add(SafeTensorsWriter.Entry.ofFloats(PREFIX + key, layout == Layout.PLAIN ? DType.BF16 : DType.F16,
                            shape, v));
                    continue;
                }
                String layer = PREFIX + key.substring(0, key.length() - ".weight".length());
                float s = 1;
                if (layout != Layout.PLAIN) {
                    float max = 0;
                    for (float x : v) max = Math.max(max, Math.abs(x));
                    s = max / 448;
                    for (int i = 0; i < v.length; i++) v[i] /= s;
                }
                entries.add(SafeTensorsWriter.Entry.ofFloats(PREFIX + key, DType.F8_E4M3, shape, v));
                switch (layout) {
                    case SCALE_WEIGHT -> {
                        entries.add(SafeTensorsWriter.Entry.ofFloats(layer + ".scale_weight", DType.F32, Shape.of(), new float[] {s}));
                        entries.add(SafeTensorsWriter.Entry.ofFloats(layer + ".scale_input", DType.F32, Shape.of(), new float[] {1}));
                    }
                    case COMFY_QUANT -> {
                        entries.add(SafeTensorsWriter.Entry.ofFloats(layer + ".weight_scale", DType.F32, Shape.of(), new float[] {s}));
                        byte[] json = ("{\"format\": \"" + format + "\"}").getBytes(StandardCharsets.UTF_8);
                        entries.add(SafeTensorsWriter.Entry.ofBytes(layer + ".comfy_quant", DType.U8, Shape.of(json.length), json));
                    }
                    case QUANTIZATION_METADATA -> {
                        entries.add(SafeTensorsWriter.Entry.ofFloats(layer + ".weight_scale", DType.F32, Shape.of(1), new float[] {s}));
                        layers.append(layers.isEmpty() ? "" : ",").append('"').append(layer).append("\":{\"format\":\"")
                                .append(format).append("\"}");
                    }
                    default -> { }
                }
            }
        }
        Map<String, String> metadata = layout == Layout.QUANTIZATION_METADATA
                ? Map.of("_quantization_metadata", "{\"format_version\":\"1.0\",\"layers\":{" + layers + "}}") : Map.of();
        SafeTensorsWriter.write(out, entries, metadata);
        return out;
    }

    private static WanDitWeights load(Path file, Quantization quantization) {
        try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES)) {
            return WanDitWeights.load(CPU, st, WanDitConfig.fromCheckpoint(st), ComputePrecision.BF16_MUSUBI, quantization, true);
        }
    }

    /** Every layout: block weights are bf16(bf16(q)·bf16(s)); other tensors get --fp8_base's cast (spec §3.1). */
    @Test
    void everyLayoutLoadsComfyUisWeights() {
        for (Layout layout : Layout.values()) {
            Path file = write(layout, "float8_e4m3fn");
            try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES);
                 WanDitWeights w = load(file, Quantization.FP8_BASE)) {
                ScaledFp8Layout scales = ScaledFp8Layout.of(st);
                assertEquals(layout == Layout.PLAIN, scales == null, layout.toString());
                for (int b = 0; b < 2; b++) {
                    for (BlockLinear which : BlockLinear.values()) {
                        String key = "blocks." + b + "." + which.modulePath() + ".weight";
                        float[] q = st.floats(key);
                        float s = scales == null ? 1 : Bf16.round(scales.scaleOf(key));
                        float[] got = CPU.toFloats(w.block(b).linear(which).weight());
                        for (int i = 0; i < q.length; i++) {
                            assertEquals(Bf16.round(q[i] * s), got[i], 0f, layout + " " + key + "[" + i + "]");
                        }
                    }
                }
                float[] file16 = st.floats("head.modulation");
                float[] got = CPU.toFloats(w.headModulation());
                for (int i = 0; i < got.length; i++) {
                    assertEquals(Fp8.e4m3ToFloat(Fp8.e4m3FromFloat(file16[i])), got[i], 0f, layout + " head.modulation");
                }
            }
            System.out.println("fp8 file " + layout + ": block weights = bf16(bf16(q)·bf16(s)), other tensors fp8-cast: OK");
        }
    }

    @Test
    void unsupportedFormatsAndFlagsSayWhatToDo() {
        Path nvfp4 = write(Layout.COMFY_QUANT, "nvfp4");
        var e = assertThrows(IllegalArgumentException.class, () -> load(nvfp4, Quantization.FP8_BASE));
        assertTrue(e.getMessage().contains("quantized as nvfp4; supported: float8_e4m3fn"), e.getMessage());
        Path scaled = write(Layout.SCALE_WEIGHT, "float8_e4m3fn");
        e = assertThrows(IllegalArgumentException.class, () -> load(scaled, Quantization.NONE));
        assertTrue(e.getMessage().contains("scaled_fp8 (scale_weight)") && e.getMessage().contains("add --fp8_base"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> load(scaled, Quantization.FP8_SCALED));
        assertTrue(e.getMessage().contains("drop --fp8_scaled"), e.getMessage());
    }

    /** The device-style path (codes + scales kept, dequantized before each GEMM) gives the same weights. */
    @Test
    void keptCodesAndScalesDequantizeToTheSameWeights() {
        Path file = write(Layout.SCALE_WEIGHT, "float8_e4m3fn");
        try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES);
             WanDitWeights dequantized = load(file, Quantization.FP8_BASE);
             WanDitWeights kept = WanDitWeights.load(CPU, st, WanDitConfig.fromCheckpoint(st), ComputePrecision.BF16_MUSUBI,
                     Quantization.FP8_BASE, false)) {
            WanDitWeights.Linear l = kept.block(1).linear(BlockLinear.FFN_2);
            assertTrue(l.isQuantized());
            var out = CPU.allocate(DType.BF16, l.quantized().shape());
            CPU.dequantizeFp8(out, l.quantized(), l.scale());
            assertArrayEquals(CPU.toFloats(dequantized.block(1).linear(BlockLinear.FFN_2).weight()), CPU.toFloats(out));
            out.close();
        }
    }
}
