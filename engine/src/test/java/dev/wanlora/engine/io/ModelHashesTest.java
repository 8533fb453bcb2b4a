package dev.wanlora.engine.io;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Expected hashes come from the safetensors 0.8.0 Python package: {@code safetensors.serialize(tensors, metadata)}
 * of the same tensors (the call {@code safetensors.torch.save} makes), then musubi's two hash functions on the
 * result (hashlib.sha256 of the bytes after the header; of bytes [0x100000, 0x110000) cut to 8 hex digits).
 */
class ModelHashesTest {

    @Test
    void smallFileMatchesTheLibrary() {
        List<SafeTensorsWriter.Entry> tensors = List.of(
                SafeTensorsWriter.Entry.ofFloats("lora_unet_b.lora_up.weight", DType.F32, Shape.of(2, 1), new float[] {1.5f, -2f}),
                SafeTensorsWriter.Entry.ofFloats("lora_unet_b.alpha", DType.F32, Shape.of(), new float[] {1f}),
                SafeTensorsWriter.Entry.ofFloats("lora_unet_a.lora_down.weight", DType.BF16, Shape.of(2), new float[] {1f, 2f}));
        Map<String, String> metadata = Map.of("ss_network_dim", "1", "ss_network_alpha", "1.0", "ss_a", "x", "ss_b", "y",
                "ss_c", "z", "modelspec.title", "not hashed");
        ModelHashes h = ModelHashes.of(tensors, metadata);
        assertEquals("3be1ffe98ef94be0c8448ca92806b229189ff9eb66882c4e656a42cc273d483e", h.modelHash());
        assertEquals("e3b0c442", h.legacyHash()); // shorter than 1 MiB: SHA-256 of no bytes
    }

    @Test
    void largeFileMatchesTheLibrary() {
        // 1,200,474 bytes in all, so the legacy window [1 MiB, 1 MiB + 64 KiB) lies in "lora_unet_z.lora_down.weight".
        float[] big = new float[300_000];
        for (int i = 0; i < big.length; i++) big[i] = (i % 1000) * 0.25f - 100;
        byte[] f64 = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putDouble(0, 32.0).array();
        List<SafeTensorsWriter.Entry> tensors = List.of(
                SafeTensorsWriter.Entry.ofFloats("lora_unet_z.lora_down.weight", DType.F32, Shape.of(3000, 100), big),
                SafeTensorsWriter.Entry.ofFloats("lora_unet_a.lora_up.weight", DType.F32, Shape.of(4, 2), new float[] {1, 2, 3, 4, 5, 6, 7, 8}),
                SafeTensorsWriter.Entry.ofBytes("lora_unet_m.alpha", DType.BF16, Shape.of(), new byte[] {(byte) 0x80, 0x40}),
                SafeTensorsWriter.Entry.ofBytes("lora_unet_b.alpha", DType.F64, Shape.of(), f64));
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("ss_network_dim", "4");
        metadata.put("ss_caption", "é \"q\" \\ \n\t\u0001"); // escapes change the header length, hence the legacy window
        metadata.put("ss_network_alpha", "2");
        ModelHashes h = ModelHashes.of(tensors, metadata);
        assertEquals("f6a4f7b7eb8e3f13a14818c73698a7137d28df42d7d6e316cfb0b5c9a667a98c", h.modelHash());
        assertEquals("1f03c92e", h.legacyHash());
        // Header as the library wrote it: 424 bytes (8-aligned) with __metadata__ first and tensors F64, F32 (by name), BF16.
        byte[] header = SafeTensorsWriter.header(List.of(tensors.get(3), tensors.get(1), tensors.get(0), tensors.get(2)),
                new TreeMap<>(metadata), 8);
        assertEquals(424, header.length);
    }

    @Test
    void canonicalHeaderMatchesTheRustSerializer() {
        // safetensors/src/tensor.rs tests: "attn.0" F32 [1,2,3] → 64-byte header; "attn0" [1,1,2,3] → 65 + 7 spaces;
        // no tensors with {"framework": "pt"} → 35 + 5 spaces
        var e0 = SafeTensorsWriter.Entry.ofFloats("attn.0", DType.F32, Shape.of(1, 2, 3), new float[6]);
        assertEquals(64, SafeTensorsWriter.header(List.of(e0), null, 8).length);
        var e1 = SafeTensorsWriter.Entry.ofFloats("attn0", DType.F32, Shape.of(1, 1, 2, 3), new float[6]);
        byte[] h1 = SafeTensorsWriter.header(List.of(e1), null, 8);
        assertEquals(72, h1.length);
        assertEquals("{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ",
                new String(h1, StandardCharsets.US_ASCII));
        assertEquals("{\"__metadata__\":{\"framework\":\"pt\"}}     ",
                new String(SafeTensorsWriter.header(List.of(), Map.of("framework", "pt"), 8), StandardCharsets.US_ASCII));
        // escaping: quote, backslash, newline and a control character as serde_json writes them (the legacy hash
        // window can cover the header, so its length must match the library's)
        byte[] h = SafeTensorsWriter.header(List.of(), Map.of("k", "a\"b\\c\nd\u0001é"), 8);
        assertEquals("{\"__metadata__\":{\"k\":\"a\\\"b\\\\c\\nd\\u0001é\"}}", new String(h, StandardCharsets.UTF_8).strip());
        // dtype order: larger alignment first, then name
        var f16 = SafeTensorsWriter.Entry.ofFloats("a", DType.F16, Shape.of(1), new float[1]);
        var f32 = SafeTensorsWriter.Entry.ofFloats("b", DType.F32, Shape.of(1), new float[1]);
        var bf16 = SafeTensorsWriter.Entry.ofFloats("c", DType.BF16, Shape.of(1), new float[1]);
        assertEquals(List.of("b", "c", "a"), ModelHashes.canonicalOrder(List.of(f16, f32, bf16)).stream()
                .map(SafeTensorsWriter.Entry::name).toList());
    }
}
