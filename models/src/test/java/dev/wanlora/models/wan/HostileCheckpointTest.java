package dev.wanlora.models.wan;

import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.lora.LoraFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15 item 4 for checkpoints and LoRA files: a block index above 2^31 (printed only {@code For input string}),
 * sizes of 0 or 2^32 in the shapes a config is read from, and a LoRA tensor with a 2^32 dimension and no elements
 * (ArithmeticException in LoraFile.module).
 */
class HostileCheckpointTest {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    Path dir;

    /** wan-tiny with its header edited by {@code edit}, data unchanged. */
    private Path tinyWith(String name, java.util.function.Consumer<ObjectNode> edit) throws IOException {
        byte[] file = Files.readAllBytes(Golden.dir("wan-tiny").resolve("model.safetensors"));
        int length = (int) ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        ObjectNode header = (ObjectNode) JSON.readTree(new String(file, 8, length, StandardCharsets.UTF_8));
        edit.accept(header);
        return write(name, header.toString(), Arrays.copyOfRange(file, 8 + length, file.length));
    }

    private Path write(String name, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        return Files.write(dir.resolve(name), b.putLong(h.length).put(h).put(data).array());
    }

    private static String configError(Path f) {
        try (SafeTensors st = SafeTensors.open(f, SafeTensors.DIT_PREFIXES)) {
            return assertThrows(IllegalArgumentException.class, () -> WanDitConfig.fromCheckpoint(st)).getMessage();
        }
    }

    @Test
    void blockIndexBeyondAnIntIsOneLine() throws IOException {
        Path f = tinyWith("big-index.safetensors", h -> h.set("blocks.2147483648.self_attn.q.weight", h.remove("blocks.1.self_attn.q.weight")));
        assertEquals("big-index.safetensors: key blocks.2147483648.self_attn.q.weight has block index 2147483648; expected"
                + " 0..n-1 for a Wan2.1 DiT (the 14B model has 40 blocks)", configError(f));
    }

    @Test
    void zeroOrHugeSizesInConfigShapesAreRefused() throws IOException {
        // a patch embedding of width 0 passed "dim % 128 == 0" and made a model of 0 heads
        Path zero = tinyWith("zero.safetensors", h -> {
            ObjectNode e = (ObjectNode) h.get("patch_embedding.weight");
            e.putArray("shape").add(0).add(16).add(1).add(2).add(2);
            long begin = e.get("data_offsets").get(0).asLong();
            e.putArray("data_offsets").add(begin).add(begin);
        });
        assertTrue(configError(zero).startsWith("zero.safetensors: key patch_embedding.weight has shape (0,16,1,2,2),"
                + " expected sizes from 1 to 1048576"), configError(zero));
        Path huge = tinyWith("huge.safetensors", h -> {
            ObjectNode e = (ObjectNode) h.get("head.head.weight");
            e.putArray("shape").add(4294967296L).add(0);
            long begin = e.get("data_offsets").get(0).asLong();
            e.putArray("data_offsets").add(begin).add(begin);
        });
        assertTrue(configError(huge).contains("key head.head.weight has shape (4294967296,0), expected sizes from 1 to 1048576"),
                configError(huge));
        // rank 0 patch embedding: rejectImageToVideo read dim(1) of it (AIOOBE)
        Path scalar = tinyWith("scalar.safetensors", h -> {
            ObjectNode e = (ObjectNode) h.get("patch_embedding.weight");
            e.putArray("shape");
            long begin = e.get("data_offsets").get(0).asLong();
            e.putArray("data_offsets").add(begin).add(begin + (e.get("dtype").asText().equals("F32") ? 4 : 2));
        });
        assertTrue(configError(scalar).contains("patch_embedding.weight has shape (), expected rank 5"), configError(scalar));
    }

    @Test
    void loraTensorWithA2To32DimensionAndNoElementsIsOneLine() throws IOException {
        String m = "lora_unet_blocks_0_self_attn_q";
        Path f = write("lora.safetensors", "{\"" + m + ".lora_down.weight\":{\"dtype\":\"F32\",\"shape\":[4294967296,0],"
                + "\"data_offsets\":[0,0]},\"" + m + ".lora_up.weight\":{\"dtype\":\"F32\",\"shape\":[0,4294967296],"
                + "\"data_offsets\":[0,0]},\"" + m + ".alpha\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                new byte[4]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LoraFile.read(f));
        assertEquals(f + ": LoRA file module " + m + " has down (4294967296,0) and up (0,4294967296); expected rank and"
                + " feature counts from 1 to 1048576", e.getMessage());
    }

    @Test
    void loraWithNaNIsRefused() throws IOException {
        String m = "lora_unet_blocks_0_self_attn_q";
        ByteBuffer data = ByteBuffer.allocate(4 * 4 + 4).order(ByteOrder.LITTLE_ENDIAN);
        data.putFloat(0.1f).putFloat(Float.NaN).putFloat(0.2f).putFloat(0.3f).putFloat(1f);
        Path f = write("nan.safetensors", "{\"" + m + ".lora_down.weight\":{\"dtype\":\"F32\",\"shape\":[1,2],"
                + "\"data_offsets\":[0,8]},\"" + m + ".lora_up.weight\":{\"dtype\":\"F32\",\"shape\":[2,1],"
                + "\"data_offsets\":[8,16]},\"" + m + ".alpha\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[16,20]}}",
                data.array());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LoraFile.read(f));
        assertEquals(f + ": LoRA file has NaN at element 1 of '" + m + ".lora_down.weight'; expected finite weights. hint:"
                + " the file is damaged; use an earlier LoRA or state folder", e.getMessage());
    }
}
