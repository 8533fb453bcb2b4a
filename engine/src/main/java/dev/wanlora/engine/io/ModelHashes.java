package dev.wanlora.engine.io;

import dev.wanlora.engine.tensor.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The {@code sshs_model_hash} and {@code sshs_legacy_hash} that musubi stores in a LoRA's metadata for
 * sd-webui-additional-networks (spec §7.3; musubi {@code src/musubi_tuner/utils/model_utils.py}
 * {@code precalculate_safetensors_hashes}, {@code addnet_hash_safetensors}, {@code addnet_hash_legacy}, L48‑89 at
 * 30c658c4). musubi serialises the tensors with only the {@code ss_*} metadata through the safetensors library
 * ({@code safetensors.torch.save}) and hashes that byte string, not the file it writes:
 * <ul>
 * <li>model hash: SHA-256 (hex) of the data section, the bytes after the 8-byte length and the header;</li>
 * <li>legacy hash: the first 8 hex digits of SHA-256 over the 64 KiB at offset 1 MiB of the whole byte string
 * (fewer bytes, or none, when it is shorter).</li>
 * </ul>
 * The library's layout ({@code safetensors/src/tensor.rs} {@code prepare}/{@code serialize} at 000a16f4), reproduced
 * here: tensors sorted by dtype in descending order of its {@code Dtype} enum (F64, F32, BF16, F16, F8_E4M3,
 * F8_E5M2, ...; {@link #canonicalOrder}), then by name (bytewise); offsets contiguous; header JSON compact,
 * {@code __metadata__} first and always present, padded with spaces to a multiple of 8 bytes. The library writes
 * the metadata in a random (hash-map) order, which changes neither the header length nor the data, so both hashes
 * are still reproducible; here the metadata is written in key order. For the same reason the header's JSON escapes
 * only have to match serde_json's in length: control characters come out as {@code \}{@code u00XX} either way.
 */
public record ModelHashes(String modelHash, String legacyHash) {

    private static final long LEGACY_OFFSET = 0x100000;
    private static final long LEGACY_LENGTH = 0x10000;

    /**
     * The safetensors library's {@code Dtype} order (safetensors/src/tensor.rs, "MUST be in increasing alignment
     * order"): BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 (U16, U32 and U64
     * have no counterpart here).
     */
    private static final List<DType> LIBRARY_ORDER = List.of(DType.BOOL, DType.U8, DType.I8, DType.F8_E5M2,
            DType.F8_E4M3, DType.I16, DType.F16, DType.BF16, DType.I32, DType.F32, DType.F64, DType.I64);

    /**
     * The tensors in the order the library serialises them: dtype descending in its enum order, then name (bytewise).
     * Writing a file in this order gives it the data section musubi's {@code save_file} writes.
     */
    public static List<SafeTensorsWriter.Entry> canonicalOrder(List<SafeTensorsWriter.Entry> tensors) {
        return tensors.stream()
                .sorted(Comparator.<SafeTensorsWriter.Entry>comparingInt(e -> -LIBRARY_ORDER.indexOf(e.dtype()))
                        .thenComparing((a, b) -> Arrays.compareUnsigned(
                                a.name().getBytes(StandardCharsets.UTF_8), b.name().getBytes(StandardCharsets.UTF_8))))
                .toList();
    }

    /** The hashes musubi would compute for these tensors and metadata (only keys starting with "ss_" count). */
    public static ModelHashes of(List<SafeTensorsWriter.Entry> tensors, Map<String, String> metadata) {
        Map<String, String> training = new TreeMap<>();
        metadata.forEach((k, v) -> {
            if (k.startsWith("ss_")) training.put(k, v);
        });
        List<SafeTensorsWriter.Entry> sorted = canonicalOrder(tensors);
        byte[] header = SafeTensorsWriter.header(sorted, training, 8);
        MessageDigest model = sha256(), legacy = sha256();
        long position = 0; // offset of the next byte in the serialised string
        byte[] lengthField = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length).array();
        position = feedLegacy(legacy, MemorySegment.ofArray(lengthField), position);
        position = feedLegacy(legacy, MemorySegment.ofArray(header), position);
        byte[] chunk = new byte[1 << 16];
        for (SafeTensorsWriter.Entry e : sorted) {
            MemorySegment bytes = e.bytes();
            for (long off = 0; off < bytes.byteSize(); off += chunk.length) {
                int n = (int) Math.min(chunk.length, bytes.byteSize() - off);
                MemorySegment.copy(bytes, ValueLayout.JAVA_BYTE, off, chunk, 0, n);
                model.update(chunk, 0, n);
            }
            position = feedLegacy(legacy, bytes, position);
        }
        return new ModelHashes(HexFormat.of().formatHex(model.digest()), HexFormat.of().formatHex(legacy.digest()).substring(0, 8));
    }

    /** Feeds the part of {@code bytes} (which start at {@code position}) inside the legacy window; returns the end. */
    private static long feedLegacy(MessageDigest legacy, MemorySegment bytes, long position) {
        long from = Math.max(position, LEGACY_OFFSET);
        long to = Math.min(position + bytes.byteSize(), LEGACY_OFFSET + LEGACY_LENGTH);
        if (from < to) legacy.update(bytes.asSlice(from - position, to - from).toArray(ValueLayout.JAVA_BYTE));
        return position + bytes.byteSize();
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is required of every Java runtime", e);
        }
    }
}
