package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.Quantization;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WanDitWeightsTest {

    private static final Backend BACKEND = new CpuBackend();

    @TempDir
    Path tmp;

    /** The golden checkpoint rewritten with every entry passed through {@code edit} (null drops it) plus extras. */
    private Path rewritten(String name, UnaryOperator<SafeTensorsWriter.Entry> edit, List<SafeTensorsWriter.Entry> extra) {
        Path out = tmp.resolve(name);
        try (SafeTensors st = SafeTensors.open(Golden.dir("wan-tiny").resolve("model.safetensors"))) {
            List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
            for (String key : st.keys()) {
                SafeTensors.TensorInfo info = st.info(key);
                SafeTensorsWriter.Entry e = edit.apply(new SafeTensorsWriter.Entry(key, info.dtype(), info.shape(), st.data(key)));
                if (e != null) entries.add(e);
            }
            entries.addAll(extra);
            SafeTensorsWriter.write(out, entries, Map.of());
        }
        return out;
    }

    private static WanDitWeights load(Path file, ComputePrecision precision, Quantization quantization) {
        try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES)) {
            return WanDitWeights.load(BACKEND, st, WanDitConfig.fromCheckpoint(st), precision, quantization, true);
        }
    }

    @Test
    void loadsPrefixedKeysIntoTheComputeDtype() {
        Path prefixed = rewritten("comfy.safetensors", e -> new SafeTensorsWriter.Entry("model.diffusion_model." + e.name(),
                e.dtype(), e.shape(), e.bytes()), List.of());
        try (WanDitWeights w = load(prefixed, ComputePrecision.BF16_MUSUBI, Quantization.NONE)) {
            assertEquals(2, w.blocks().size());
            WanDitWeights.Linear q = w.block(1).linear(BlockLinear.SELF_ATTN_Q);
            assertEquals("blocks.1.self_attn.q.weight", q.key());
            assertEquals(DType.BF16, q.weight().dtype());
            assertFalse(q.isQuantized());
            assertEquals(Shape.of(256, 64), w.patchEmbedding().weight().shape());
            assertEquals(Shape.of(512, 256), w.block(0).linear(BlockLinear.FFN_0).weightShape());
        }
        try (WanDitWeights w = load(prefixed, ComputePrecision.FP32, Quantization.NONE)) {
            assertEquals(DType.F32, w.head().weight().dtype());
        }
    }

    @Test
    void plainFp8BaseRoundsEveryTensorToE4m3() {
        Path file = Golden.dir("wan-tiny").resolve("model.safetensors");
        try (WanDitWeights w = load(file, ComputePrecision.FP32, Quantization.FP8_BASE);
             SafeTensors st = SafeTensors.open(file)) {
            float[] bf16 = st.floats("blocks.0.norm3.bias");
            float[] ours = BACKEND.toFloats(w.block(0).norm3Bias());
            for (int i = 0; i < bf16.length; i++) {
                float expected = dev.wanlora.engine.numeric.Fp8.e4m3ToFloat(dev.wanlora.engine.numeric.Fp8.e4m3FromFloat(bf16[i]));
                assertEquals(expected, ours[i], 0f);
            }
        }
    }

    @Test
    void missingKeyIsNamed() {
        Path file = rewritten("missing.safetensors", e -> e.name().equals("blocks.1.norm3.bias") ? null : e, List.of());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> load(file, ComputePrecision.FP32, Quantization.NONE));
        assertEquals("missing.safetensors: missing key blocks.1.norm3.bias (expected shape (256)); expected a complete"
                + " Wan2.1 T2V DiT with 2 blocks", e.getMessage());
    }

    @Test
    void wrongShapeIsNamed() {
        Path file = rewritten("shape.safetensors", e -> e.name().equals("blocks.0.ffn.2.bias")
                ? SafeTensorsWriter.Entry.ofFloats(e.name(), DType.BF16, Shape.of(255), new float[255]) : e, List.of());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> load(file, ComputePrecision.FP32, Quantization.NONE));
        assertEquals("shape.safetensors: key blocks.0.ffn.2.bias has shape (255), expected (256) (dim 256, ffn_dim 512)",
                e.getMessage());
    }

    @Test
    void extraKeyIsNamed() {
        Path file = rewritten("extra.safetensors", e -> e, List.of(
                SafeTensorsWriter.Entry.ofFloats("blocks.0.self_attn.extra.weight", DType.BF16, Shape.of(2), new float[2])));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> load(file, ComputePrecision.FP32, Quantization.NONE));
        assertEquals("extra.safetensors: 1 unexpected key(s) for a Wan2.1 T2V DiT with 2 blocks:"
                + " blocks.0.self_attn.extra.weight; expected exactly the keys of spec §2.3 (is this a different model or"
                + " a LoRA file?)", e.getMessage());
    }

    @Test
    void fp8CheckpointNeedsPlainFp8Base() {
        Path file = rewritten("wan_fp8_e4m3fn.safetensors", e -> {
            float[] v = new float[(int) e.shape().numElements()];
            return SafeTensorsWriter.Entry.ofFloats(e.name(), DType.F8_E4M3, e.shape(), v);
        }, List.of());
        IllegalArgumentException scaled = assertThrows(IllegalArgumentException.class,
                () -> load(file, ComputePrecision.BF16_MUSUBI, Quantization.FP8_SCALED));
        assertEquals("wan_fp8_e4m3fn.safetensors: the checkpoint is already F8_E4M3 (an fp8 file), which --fp8_scaled"
                + " cannot re-quantize; drop --fp8_scaled (keep --fp8_base) or use the bf16 checkpoint", scaled.getMessage());
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
                () -> load(file, ComputePrecision.BF16_MUSUBI, Quantization.NONE));
        assertTrue(none.getMessage().contains("add --fp8_base"), none.getMessage());
        try (WanDitWeights w = load(file, ComputePrecision.BF16_MUSUBI, Quantization.FP8_BASE)) {
            assertNull(w.block(0).linear(BlockLinear.FFN_2).quantized());
            assertArrayEquals(new float[256], BACKEND.toFloats(w.block(0).norm3Weight()), 0f);
        }
    }
}
