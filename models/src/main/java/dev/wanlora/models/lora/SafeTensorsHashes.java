package dev.wanlora.models.lora;

import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.tensor.DType;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * The two model hashes musubi stores in a LoRA's metadata for sd-webui-additional-networks (musubi
 * {@code src/musubi_tuner/utils/model_utils.py} {@code precalculate_safetensors_hashes}, {@code addnet_hash_safetensors},
 * {@code addnet_hash_legacy}, L48‑89 at 30c658c4): both are taken over {@code safetensors.torch.save(tensors, metadata)},
 * the in-memory serialization of the saved tensors with only the {@code ss_*} metadata keys:
 * <ul>
 * <li>{@code sshs_model_hash} = sha256 hex of the data section (everything after the 8-byte length and the header);</li>
 * <li>{@code sshs_legacy_hash} = the first 8 hex digits of sha256 over the 64 KiB at byte offset 1 MiB of the whole
 * serialization (fewer bytes, or none, when it is shorter).</li>
 * </ul>
 * That serialization is the Rust safetensors crate's ({@code safetensors/src/tensor.rs} {@code prepare}/{@code serialize}
 * at 000a16f4): tensors sorted by dtype, larger alignment first (enum order BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16,
 * F16, BF16, I32, U32, F32, F64, I64, U64, descending), then by name; the header is serde_json's compact JSON,
 * {@code __metadata__} first, padded with spaces to a multiple of 8 bytes. The metadata's key order (a Rust HashMap)
 * varies between runs but not the header's length, so the hashes are deterministic.
 */
final class SafeTensorsHashes {
    private SafeTensorsHashes() {}

    /** The legacy hash window: 0x10000 bytes at 0x100000. */
    private static final long LEGACY_OFFSET = 0x100000;
    private static final int LEGACY_LENGTH = 0x10000;

    /** The Rust crate's Dtype declaration order (its derived Ord); U16/U32/U64 have no counterpart here. */
    private static final List<DType> RUST_DTYPE_ORDER = List.of(DType.BOOL, DType.U8, DType.I8, DType.F8_E5M2,
            DType.F8_E4M3, DType.I16, DType.F16, DType.BF16, DType.I32, DType.F32, DType.F64, DType.I64);

    record Hashes(String modelHash, String legacyHash) {}

    /** The tensors in the Rust serializer's order: dtype rank descending, then name (byte order, ASCII names). */
    static List<SafeTensorsWriter.Entry> canonicalOrder(List<SafeTensorsWriter.Entry> tensors) {
        List<SafeTensorsWriter.Entry> sorted = new ArrayList<>(tensors);
        sorted.sort(Comparator.comparingInt((SafeTensorsWriter.Entry e) -> -RUST_DTYPE_ORDER.indexOf(e.dtype()))
                .thenComparing(e -> e.name().getBytes(StandardCharsets.UTF_8), java.util.Arrays::compareUnsigned));
        return sorted;
    }

    /** The hashes of safetensors.torch.save(tensors, metadata); pass the already filtered ss_* metadata. */
    static Hashes compute(List<SafeTensorsWriter.Entry> tensors, Map<String, String> metadata) {
        List<SafeTensorsWriter.Entry> sorted = canonicalOrder(tensors);
        byte[] header = header(sorted, metadata);
        MessageDigest model = sha256();
        MessageDigest legacy = sha256();
        long position = 0; // position in the whole serialization
        ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
        position = feedLegacy(legacy, length, position);
        position = feedLegacy(legacy, ByteBuffer.wrap(header), position);
        for (SafeTensorsWriter.Entry e : sorted) {
            model.update(e.bytes().asByteBuffer());
            position = feedLegacy(legacy, e.bytes().asByteBuffer(), position);
        }
        String legacyHex = HexFormat.of().formatHex(legacy.digest()).substring(0, 8);
        return new Hashes(HexFormat.of().formatHex(model.digest()), legacyHex);
    }

    /** Adds the part of {@code chunk} (which starts at {@code position}) that lies in the legacy window. */
    private static long feedLegacy(MessageDigest legacy, ByteBuffer chunk, long position) {
        long start = position, end = position + chunk.remaining();
        long from = Math.max(start, LEGACY_OFFSET), to = Math.min(end, LEGACY_OFFSET + LEGACY_LENGTH);
        if (from < to) legacy.update(chunk.duplicate().position((int) (from - start)).limit((int) (to - start)));
        return end;
    }

    /** serde_json's compact header of the sorted tensors, padded with spaces to a multiple of 8. */
    static byte[] header(List<SafeTensorsWriter.Entry> sorted, Map<String, String> metadata) {
        StringBuilder sb = new StringBuilder("{");
        if (metadata != null) {
            sb.append("\"__metadata__\":{");
            boolean first = true;
            for (var kv : metadata.entrySet()) {
                if (!first) sb.append(',');
                first = false;
                quote(sb, kv.getKey()).append(':');
                quote(sb, kv.getValue());
            }
            sb.append('}');
        }
        long offset = 0;
        for (SafeTensorsWriter.Entry e : sorted) {
            if (sb.length() > 1) sb.append(',');
            quote(sb, e.name()).append(":{\"dtype\":\"").append(e.dtype().safetensorsName()).append("\",\"shape\":[");
            long[] dims = e.shape().dims();
            for (int i = 0; i < dims.length; i++) sb.append(i > 0 ? "," : "").append(dims[i]);
            long end = offset + e.bytes().byteSize();
            sb.append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
            offset = end;
        }
        sb.append('}');
        byte[] json = sb.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = java.util.Arrays.copyOf(json, padded);
        java.util.Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    /** serde_json string escaping: \" \\ \b \f \n \r \t, other controls as \\u00xx (lowercase hex), the rest raw. */
    private static StringBuilder quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        return sb.append('"');
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every Java platform", e);
        }
    }
}
