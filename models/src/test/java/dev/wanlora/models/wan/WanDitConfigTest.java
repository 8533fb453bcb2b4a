package dev.wanlora.models.wan;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WanDitConfigTest {

    @Test
    void factoriesMatchTheUpstreamConfigs() {
        WanDitConfig big = WanDitConfig.t2v14B();
        assertEquals(5120, big.dim());
        assertEquals(13824, big.ffnDim());
        assertEquals(40, big.numHeads());
        assertEquals(40, big.numLayers());
        assertEquals(128, big.headDim());
        assertEquals(64, big.patchLength());
        assertEquals(64, big.headOutFeatures());
        assertEquals("t2v-14B", big.taskName());
        WanDitConfig small = WanDitConfig.t2v1_3B();
        assertEquals(1536, small.dim());
        assertEquals(8960, small.ffnDim());
        assertEquals(12, small.numHeads());
        assertEquals(30, small.numLayers());
        assertEquals("t2v-1.3B", small.taskName());
    }

    @Test
    void goldenCheckpointDescribesItself() {
        Path model = Golden.dir("wan-tiny").resolve("model.safetensors");
        try (SafeTensors st = SafeTensors.open(model, SafeTensors.DIT_PREFIXES)) {
            WanDitConfig c = WanDitConfig.fromCheckpoint(st);
            // golden/README.md: dim 256, ffn_dim 512, 2 heads of 128, 2 blocks, 16/16 channels, freq 256, text 4096/512.
            assertEquals(new WanDitConfig(256, 512, 2, 2, 16, 16, 4096, 256, 512, 1e-6f, WanDitConfig.PATCH_1_2_2), c);
            assertNull(c.taskName());
            assertFalse(c.matchesTask("t2v-14B"));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> c.requireTask("t2v-14B", "model.safetensors"));
            // issue 14: this read "are no known task or a t2v-14B checkpoint"
            assertEquals("--task t2v-14B contradicts --dit model.safetensors: its shapes (dim 256, 2 blocks, 2 heads) are"
                    + " those of no Wan2.1 task (t2v-14B has (dim 5120, 40 blocks, 40 heads)); pass a t2v-14B checkpoint,"
                    + " or leave --task out to train this model as it is", e.getMessage());
        }
    }

    @Test
    void taskContradictionNamesBoth() {
        WanDitConfig c = WanDitConfig.t2v1_3B();
        assertTrue(c.matchesTask("t2v-1.3B"));
        c.requireTask("t2v-1.3B", "x.safetensors");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> c.requireTask("t2v-14B", "wan2.1_t2v_1.3B_bf16.safetensors"));
        assertEquals("--task t2v-14B contradicts --dit wan2.1_t2v_1.3B_bf16.safetensors: its shapes (dim 1536, 30 blocks,"
                + " 12 heads) are those of t2v-1.3B; pass --task t2v-1.3B or a t2v-14B checkpoint", e.getMessage());
        IllegalArgumentException i2v = assertThrows(IllegalArgumentException.class,
                () -> c.requireTask("i2v-14B", "x.safetensors"));
        assertEquals("--task i2v-14B is not supported; supported: t2v-14B, t2v-1.3B (image-to-video and Fun-Control"
                + " tasks are not trained by wanlora)", i2v.getMessage());
    }

    @Test
    void imageToVideoCheckpointIsRefusedNamingTheExtraKeys(@TempDir Path dir) {
        Path file = dir.resolve("wan2.1_i2v_480p_14B_bf16.safetensors");
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        entries.add(zeros("model.diffusion_model.patch_embedding.weight", Shape.of(8, 36, 1, 2, 2)));
        entries.add(zeros("model.diffusion_model.img_emb.proj.0.weight", Shape.of(4)));
        entries.add(zeros("model.diffusion_model.blocks.0.cross_attn.k_img.weight", Shape.of(4)));
        SafeTensorsWriter.write(file, entries, Map.of());
        try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> WanDitConfig.fromCheckpoint(st));
            assertEquals("wan2.1_i2v_480p_14B_bf16.safetensors: this is an image-to-video Wan checkpoint (I2V/FLF2V/Fun):"
                    + " found 2 image-conditioning keys (blocks.0.cross_attn.k_img.weight, img_emb.proj.0.weight) and"
                    + " patch_embedding in-channels 36; wanlora trains text-to-video only: pass a T2V DiT such as"
                    + " wan2.1_t2v_14B_bf16.safetensors", e.getMessage());
        }
    }

    @Test
    void missingKeyIsNamed(@TempDir Path dir) {
        Path file = dir.resolve("partial.safetensors");
        SafeTensorsWriter.write(file, List.of(zeros("patch_embedding.weight", Shape.of(256, 16, 1, 2, 2))), Map.of());
        try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> WanDitConfig.fromCheckpoint(st));
            assertEquals("partial.safetensors: missing key blocks.0.ffn.0.weight; expected a Wan2.1 T2V DiT checkpoint"
                    + " (bare keys or model.diffusion_model.-prefixed, as in the official and ComfyUI files)", e.getMessage());
        }
    }

    private static SafeTensorsWriter.Entry zeros(String name, Shape shape) {
        return SafeTensorsWriter.Entry.ofFloats(name, DType.BF16, shape, new float[(int) shape.numElements()]);
    }
}
