package dev.wanlora.engine.io;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Reads a PyTorch state dict saved by {@code torch.save} (the zip format, torch ≥ 1.6) without running any of it: the
 * zip's central directory is parsed by hand, {@code data.pkl} is interpreted by {@link PthPickle}, which knows only
 * the globals a state dict needs, and each tensor is a zero-copy slice of the file's memory map (torch stores zip
 * entries uncompressed, so a storage's bytes lie in the file as they are).
 *
 * <p>Layout ({@code torch/serialization.py} {@code _save}, pytorch/pytorch@v2.5.0): a zip whose entries share one
 * root folder named after the file when saved ({@code t5/data.pkl}, {@code t5/data/0}, …, {@code t5/byteorder},
 * {@code t5/version}); do not assume the name. Files above 4 GiB (the 11 GB umT5 checkpoint) use ZIP64 records.
 *
 * <p>Invariant: every tensor is checked (contiguous row-major strides, storage known, byte range inside its storage
 * entry) before the reader is returned. Errors are {@link PthException}s with one line naming the file.
 */
public final class PthFile implements TensorSource {

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** A zip entry stored without compression: where its bytes start in the file and how many there are. */
    private record ZipEntry(long dataOffset, long size) {}

    /** One tensor: dtype, shape and the offset of its first byte in the file map. */
    private record Slot(DType dtype, Shape shape, long offset, long byteLength) {}

    private final Path path;
    private final Arena arena;
    private final MemorySegment map;
    private final Map<String, Slot> slots;
    private volatile boolean isClosed;

    private PthFile(Path path, Arena arena, MemorySegment map, Map<String, Slot> slots) {
        this.path = path;
        this.arena = arena;
        this.map = map;
        this.slots = slots;
    }

    /** True when {@code file}'s name ends in .pth or .pt, the names torch.save checkpoints carry. */
    public static boolean isPthName(Path file) {
        String n = file.getFileName() == null ? "" : file.getFileName().toString();
        return n.endsWith(".pth") || n.endsWith(".pt");
    }

    /** Opens and validates {@code file}; see the class comment. */
    public static PthFile open(Path file) {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment map;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                map = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            } catch (NoSuchFileException e) {
                throw new PthException(file + ": file not found. hint: check the path");
            } catch (IOException e) {
                throw new PthException(file + ": cannot read (" + SafeTensors.oneLine(String.valueOf(e.getMessage()))
                        + "). hint: check the file's permissions and the disk", e);
            }
            Map<String, ZipEntry> entries = readCentralDirectory(file, map);
            String root = rootFolder(file, entries);
            ZipEntry byteorder = entries.get(root + "byteorder");
            if (byteorder != null) {
                String order = new String(bytes(map, byteorder), java.nio.charset.StandardCharsets.US_ASCII).trim();
                if (!order.equals("little")) {
                    throw new PthException(file + ": byteorder is '" + SafeTensors.oneLine(order)
                            + "', only little-endian checkpoints are read. hint: save it again on a little-endian machine");
                }
            }
            Map<String, PthPickle.TensorRef> refs = PthPickle.stateDict(file, bytes(map, entries.get(root + "data.pkl")));
            Map<String, Slot> slots = new LinkedHashMap<>();
            for (Map.Entry<String, PthPickle.TensorRef> e : refs.entrySet()) {
                slots.put(e.getKey(), slot(file, e.getKey(), e.getValue(), entries.get(root + "data/" + e.getValue().storageKey())));
            }
            return new PthFile(file, arena, map, Collections.unmodifiableMap(slots));
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    @Override
    public Path path() { return path; }

    @Override
    public Set<String> keys() { return slots.keySet(); }

    @Override
    public boolean contains(String key) { return slots.containsKey(key); }

    @Override
    public DType dtype(String key) { return slot(key).dtype(); }

    @Override
    public Shape shape(String key) { return slot(key).shape(); }

    /** Bytes of the tensor's data in the file. */
    public long byteLength(String key) { return slot(key).byteLength(); }

    @Override
    public MemorySegment data(String key) {
        Slot s = slot(key);
        if (isClosed) throw new IllegalStateException(path + ": data(" + SafeTensors.quote(key) + ") after close()");
        return map.asSlice(s.offset(), s.byteLength()).asReadOnly();
    }

    @Override
    public float[] floats(String key) {
        Slot s = slot(key);
        long n = s.shape().numElements();
        if (n > Integer.MAX_VALUE - 8) {
            throw new PthException(path + ": tensor " + SafeTensors.quote(key) + " " + s.shape() + " has " + n
                    + " elements, more than a Java float[] holds. hint: read it in slices through data(key)");
        }
        float[] out = TensorSource.widen(data(key), s.dtype(), (int) n);
        if (out == null) {
            throw new PthException(path + ": tensor " + SafeTensors.quote(key) + " is " + s.dtype()
                    + ", floats() needs a floating dtype. hint: read integer tensors through data(key)");
        }
        return out;
    }

    @Override
    public void close() {
        if (isClosed) return;
        synchronized (this) {
            if (isClosed) return;
            isClosed = true;
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "PthFile[" + path + ", " + slots.size() + " tensors]";
    }

    private Slot slot(String key) {
        Slot s = slots.get(key);
        if (s == null) {
            throw new PthException(path + ": no tensor " + SafeTensors.quote(key) + " (the file has " + slots.size()
                    + " tensors). hint: run `wanlora inspect " + path + "` to list its keys");
        }
        return s;
    }

    private static Slot slot(Path file, String key, PthPickle.TensorRef ref, ZipEntry storage) {
        String where = file + ": tensor " + SafeTensors.quote(key);
        if (storage == null) {
            throw new PthException(where + " uses storage data/" + SafeTensors.oneLine(ref.storageKey())
                    + ", which the zip does not hold. hint: the file is truncated or corrupt; download or save it again");
        }
        long[] size = ref.size(), stride = ref.stride();
        long expected = 1;
        for (int d = size.length - 1; d >= 0; d--) {
            if (size[d] != 1 && stride[d] != expected) {
                throw new PthException(where + " has strides " + java.util.Arrays.toString(stride) + " for shape "
                        + java.util.Arrays.toString(size) + ", only contiguous row-major tensors are read"
                        + ". hint: save a state dict of .contiguous() tensors");
            }
            expected = Math.multiplyExact(expected, size[d]);
        }
        Shape shape = new Shape(size);
        int elementBytes = ref.dtype().sizeBytes();
        long begin, length;
        try {
            begin = Math.multiplyExact(ref.storageOffset(), elementBytes);
            length = Math.multiplyExact(shape.numElements(), elementBytes);
        } catch (ArithmeticException e) {
            throw new PthException(where + " has a byte range that overflows a 64-bit integer. hint: the file is corrupt");
        }
        if (ref.storageOffset() < 0 || begin + length > storage.size()) {
            throw new PthException(where + " needs bytes [" + begin + ", " + (begin + length) + ") of its storage data/"
                    + ref.storageKey() + ", which has " + storage.size() + " bytes. hint: the file is truncated or corrupt;"
                    + " download or save it again");
        }
        return new Slot(ref.dtype(), shape, storage.dataOffset() + begin, length);
    }

    // ---------------------------------------------------------------- zip

    private static byte[] bytes(MemorySegment map, ZipEntry e) {
        return map.asSlice(e.dataOffset(), e.size()).toArray(ValueLayout.JAVA_BYTE);
    }

    /** The common root folder ("t5/") of the entries, found from the one ending in data.pkl. */
    private static String rootFolder(Path file, Map<String, ZipEntry> entries) {
        String root = null;
        for (String name : entries.keySet()) {
            if (name.equals("data.pkl") || name.endsWith("/data.pkl") && name.indexOf('/') == name.length() - 9) {
                root = name.substring(0, name.length() - "data.pkl".length());
                break;
            }
        }
        if (root == null) {
            throw new PthException(file + ": the zip has no data.pkl, so it is not a torch.save checkpoint"
                    + ". hint: re-save it with torch.save(state_dict, path) (torch >= 1.6)");
        }
        return root;
    }

    /**
     * Reads the central directory (APPNOTE.TXT §4.3.16 end record, §4.3.14/15 ZIP64 end record and locator, §4.3.12
     * file headers, §4.5.3 ZIP64 extra field) into name → stored entry. Compressed entries are refused: torch never
     * compresses, and mapping needs the bytes as they are.
     */
    private static Map<String, ZipEntry> readCentralDirectory(Path file, MemorySegment map) {
        long size = map.byteSize();
        String corrupt = ". hint: the file is truncated or corrupt; download or save it again";
        if (size < 22 || map.get(U32, 0) != 0x04034b50) {
            throw new PthException(file + ": not a zip archive (torch.save's format)"
                    + (size < 22 ? ", only " + size + " bytes" : "") + ". hint: a legacy (pre-1.6) torch file is not"
                    + " read; re-save it with a current torch, or the file is truncated or corrupt");
        }
        long eocd = -1;
        for (long p = size - 22; p >= Math.max(0, size - 22 - 65535); p--) {
            if (map.get(U32, p) == 0x06054b50) {
                eocd = p;
                break;
            }
        }
        if (eocd < 0) throw new PthException(file + ": no zip end-of-central-directory record" + corrupt);
        long count = map.get(U16, eocd + 10) & 0xffff;
        long cdSize = map.get(U32, eocd + 12) & 0xffffffffL;
        long cdOffset = map.get(U32, eocd + 16) & 0xffffffffL;
        if (count == 0xffff || cdSize == 0xffffffffL || cdOffset == 0xffffffffL) {
            long locator = eocd - 20;
            if (locator < 0 || map.get(U32, locator) != 0x07064b50) {
                throw new PthException(file + ": zip end record points to ZIP64 records that are missing" + corrupt);
            }
            long zip64 = map.get(U64, locator + 8);
            if (zip64 < 0 || zip64 + 56 > size || map.get(U32, zip64) != 0x06064b50) {
                throw new PthException(file + ": zip ZIP64 end record is missing or out of range" + corrupt);
            }
            count = map.get(U64, zip64 + 32);
            cdSize = map.get(U64, zip64 + 40);
            cdOffset = map.get(U64, zip64 + 48);
        }
        if (cdOffset < 0 || cdSize < 0 || cdOffset + cdSize > size || count < 0 || count > cdSize / 46) {
            throw new PthException(file + ": zip central directory (" + count + " entries at " + cdOffset
                    + ") lies outside the file of " + size + " bytes" + corrupt);
        }
        Map<String, ZipEntry> entries = new LinkedHashMap<>();
        long p = cdOffset;
        for (long i = 0; i < count; i++) {
            if (p + 46 > cdOffset + cdSize || map.get(U32, p) != 0x02014b50) {
                throw new PthException(file + ": zip central directory entry " + i + " is malformed" + corrupt);
            }
            int method = map.get(U16, p + 10) & 0xffff;
            long compressed = map.get(U32, p + 20) & 0xffffffffL;
            long uncompressed = map.get(U32, p + 24) & 0xffffffffL;
            int nameLength = map.get(U16, p + 28) & 0xffff;
            int extraLength = map.get(U16, p + 30) & 0xffff;
            int commentLength = map.get(U16, p + 32) & 0xffff;
            long local = map.get(U32, p + 42) & 0xffffffffL;
            if (p + 46 + nameLength + extraLength > cdOffset + cdSize) {
                throw new PthException(file + ": zip central directory entry " + i + " runs past the directory" + corrupt);
            }
            String name = new String(map.asSlice(p + 46, nameLength).toArray(ValueLayout.JAVA_BYTE),
                    java.nio.charset.StandardCharsets.UTF_8);
            for (long x = p + 46 + nameLength; x + 4 <= p + 46 + nameLength + extraLength; ) {
                int id = map.get(U16, x) & 0xffff, length = map.get(U16, x + 2) & 0xffff;
                if (id == 0x0001) { // ZIP64: the 0xffffffff fields, in this order
                    long f = x + 4;
                    if (uncompressed == 0xffffffffL) { uncompressed = map.get(U64, f); f += 8; }
                    if (compressed == 0xffffffffL) { compressed = map.get(U64, f); f += 8; }
                    if (local == 0xffffffffL) local = map.get(U64, f);
                }
                x += 4 + length;
            }
            if (method != 0 || compressed != uncompressed) {
                throw new PthException(file + ": zip entry " + SafeTensors.quote(name) + " is compressed (method "
                        + method + "); torch.save stores entries uncompressed. hint: re-save it with torch.save");
            }
            if (local < 0 || local + 30 > size || map.get(U32, local) != 0x04034b50) {
                throw new PthException(file + ": zip entry " + SafeTensors.quote(name) + " has no local header at "
                        + local + corrupt);
            }
            long data = local + 30 + (map.get(U16, local + 26) & 0xffff) + (map.get(U16, local + 28) & 0xffff);
            if (uncompressed < 0 || data + uncompressed > size) {
                throw new PthException(file + ": zip entry " + SafeTensors.quote(name) + " needs bytes [" + data + ", "
                        + (data + uncompressed) + ") of a file of " + size + " bytes" + corrupt);
            }
            entries.put(name, new ZipEntry(data, uncompressed));
            p += 46 + nameLength + extraLength + commentLength;
        }
        return entries;
    }
}
