package dev.wanlora.engine.io;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.CharBuffer;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads a safetensors file, or a whole shard set, by memory-mapping it: {@link #data} is a zero-copy, read-only
 * slice of the map, {@link #floats} a widened copy. The file format: 8 bytes little-endian header length n, n bytes
 * of UTF-8 JSON ({@code {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}}),
 * then the data section, offsets relative to its start (https://github.com/huggingface/safetensors, README
 * "Format").
 *
 * <p>Invariant: every header is validated completely before any tensor is handed out, so a tensor's byte range
 * always lies inside its file and matches its dtype and shape. Each map lives in one {@link Arena#ofShared()} owned
 * by this reader (so files far above 2 GiB map in one piece and several threads may read); {@link #close()}
 * unmaps everything, after which earlier {@link #data} segments must not be used.
 *
 * <p>Shard sets: a path to {@code *.safetensors.index.json}, or to any shard named {@code …-00001-of-00006.safetensors},
 * opens every shard of the set. Keys are given in header order, shard after shard (shards in name order).
 */
public final class SafeTensors implements TensorSource {

    /** Key prefixes stripped when loading a DiT: ComfyUI repackaged files (spec §2.2), longest first. */
    public static final List<String> DIT_PREFIXES = List.of("model.diffusion_model.", "diffusion_model.");

    /**
     * Largest header we accept: 100 MB, the limit of the reference Rust reader (safetensors' MAX_HEADER_SIZE). The
     * 14B DiT's header is about 100 KB, so anything near the limit is a corrupt length field, not a real header.
     */
    static final long MAX_HEADER_BYTES = 100_000_000L;

    /**
     * Deepest JSON nesting we accept in a header or index. A real header nests 3 deep (root, tensor, shape array);
     * the limit stops a hostile file (thousands of '[') before the parser's own limit, whose error has no location.
     */
    static final int MAX_HEADER_DEPTH = 64;

    private static final Pattern SHARD_NAME = Pattern.compile("(.*)-(\\d+)-of-(\\d+)\\.safetensors");
    private static final String INDEX_SUFFIX = ".safetensors.index.json";

    private static final JsonMapper JSON = JsonMapper.builder(JsonFactory.builder()
                    .streamReadConstraints(StreamReadConstraints.builder().maxStringLength((int) MAX_HEADER_BYTES)
                            .maxNestingDepth(MAX_HEADER_DEPTH).build())
                    .build())
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * One tensor as the header describes it. {@code name} is the key as {@link #keys()} lists it (after prefix
     * stripping); {@code file} the file (shard) holding its bytes.
     */
    public record TensorInfo(String name, DType dtype, Shape shape, Path file, long byteLength) {
        public long numElements() { return shape.numElements(); }
    }

    /** Where a tensor's bytes are: its file's map and the offset of its first byte in it. */
    private record Slot(TensorInfo info, String keyInFile, MemorySegment map, long offset) {}

    /** A validated header: metadata plus tensor entries in header order, offsets relative to the file start. */
    private record Header(Map<String, String> metadata, List<Entry> entries, long fileBytes, long dataStart) {}

    private record Entry(String key, DType dtype, Shape shape, long begin, long end) {}

    private final Path path;
    private final Arena arena;
    private final Map<String, Slot> slots;
    private final Map<String, String> metadata;
    /** Channels of {@link #source}, one per file, opened on first use and closed with the reader. */
    private final Map<Path, FileChannel> channels = new java.util.concurrent.ConcurrentHashMap<>();
    private volatile boolean isClosed;

    private SafeTensors(Path path, Arena arena, Map<String, Slot> slots, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.slots = slots;
        this.metadata = metadata;
    }

    /** Opens a file or shard set with keys as stored (no prefix stripped). */
    public static SafeTensors open(Path file) {
        return open(file, List.of());
    }

    /**
     * Opens a file or shard set; a key starting with one of {@code stripPrefixes} (the first that matches, in list
     * order) is listed without it. Two keys that become equal after stripping are an error.
     */
    public static SafeTensors open(Path file, List<String> stripPrefixes) {
        Map<String, Path> indexMap = isIndex(file) ? readIndex(file) : null;
        List<Path> files = indexMap != null ? List.copyOf(new TreeSet<>(indexMap.values())) : shardFiles(file);
        requireAll(file, files);
        Arena arena = Arena.ofShared();
        try {
            Map<String, Slot> slots = new LinkedHashMap<>();
            Map<String, Path> owner = new LinkedHashMap<>(); // stored key -> shard, to find keys in two shards
            Map<String, String> metadata = new LinkedHashMap<>();
            for (Path f : files) {
                MemorySegment map;
                Header header;
                try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
                    header = readHeader(f, ch);
                    map = ch.map(FileChannel.MapMode.READ_ONLY, 0, header.fileBytes(), arena);
                } catch (NoSuchFileException e) {
                    throw new SafeTensorsException(f + ": file not found. hint: check the path");
                } catch (IOException e) {
                    throw new SafeTensorsException(f + ": cannot read (" + oneLine(String.valueOf(e.getMessage()))
                            + "). hint: check the file's permissions and the disk", e);
                }
                // Shards of one set usually repeat the same metadata ({"format": "pt"}); the first shard's value wins.
                header.metadata().forEach(metadata::putIfAbsent);
                for (Entry e : header.entries()) {
                    Path previous = owner.putIfAbsent(e.key(), f);
                    if (previous != null) {
                        throw new SafeTensorsException(f + ": key " + quote(e.key()) + " is also in " + previous
                                + ". hint: the shards come from different downloads; download the set again");
                    }
                    String name = strip(e.key(), stripPrefixes);
                    long length = e.end() - e.begin();
                    Slot slot = new Slot(new TensorInfo(name, e.dtype(), e.shape(), f, length), e.key(), map,
                            header.dataStart() + e.begin());
                    Slot clash = slots.putIfAbsent(name, slot);
                    if (clash != null) {
                        throw new SafeTensorsException(f + ": keys " + quote(clash.keyInFile()) + " and " + quote(e.key())
                                + " both become " + quote(name) + " after stripping the prefixes " + stripPrefixes
                                + ". hint: the file mixes prefixed and bare copies of the same weights; keep one copy");
                    }
                }
            }
            if (indexMap != null) checkIndex(file, indexMap, owner);
            return new SafeTensors(file, arena, Collections.unmodifiableMap(slots), Collections.unmodifiableMap(metadata));
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** The path given to {@link #open} (a file, a shard, or an index). */
    @Override
    public Path path() { return path; }

    /** The files behind this checkpoint (one, or every shard of a set), in the order their tensors are listed. */
    public List<Path> files() {
        return slots.values().stream().map(slot -> slot.info().file()).distinct().toList();
    }

    /** Every tensor name, in header order (shard after shard). */
    @Override
    public Set<String> keys() { return slots.keySet(); }

    /**
     * Every tensor name in the order its bytes lie on disk: file after file ({@link #files()} order), by data offset
     * within a file. Reading tensors in this order reads each file front to back (a header's order need not be that).
     */
    public List<String> keysInFileOrder() {
        List<Path> files = files();
        return slots.values().stream()
                .sorted(java.util.Comparator.comparingInt((Slot s) -> files.indexOf(s.info().file())).thenComparingLong(Slot::offset))
                .map(s -> s.info().name())
                .toList();
    }

    @Override
    public boolean contains(String key) { return slots.containsKey(key); }

    /** The header entry of {@code key}; throws {@link SafeTensorsException} naming the file and key if absent. */
    public TensorInfo info(String key) { return slot(key).info(); }

    @Override
    public DType dtype(String key) { return info(key).dtype(); }

    @Override
    public Shape shape(String key) { return info(key).shape(); }

    /**
     * The tensor's bytes, little-endian, row-major: a read-only slice of the file's map (no copy). Valid until
     * {@link #close()}.
     */
    @Override
    public MemorySegment data(String key) {
        Slot s = slot(key);
        if (isClosed) throw new IllegalStateException(path + ": data(" + quote(key) + ") after close()");
        return s.map().asSlice(s.offset(), s.info().byteLength()).asReadOnly();
    }

    /**
     * The tensor's bytes as a {@link ByteSource} that reads the file with positional reads (no map; see ByteSource):
     * what a loader streams into pinned staging memory. Valid until {@link #close()}.
     */
    public ByteSource source(String key) {
        Slot s = slot(key);
        if (isClosed) throw new IllegalStateException(path + ": source(" + quote(key) + ") after close()");
        Path file = s.info().file();
        FileChannel channel = channels.computeIfAbsent(file, f -> {
            try {
                return FileChannel.open(f, StandardOpenOption.READ);
            } catch (IOException e) {
                throw new SafeTensorsException(f + ": cannot open for reading (" + oneLine(String.valueOf(e.getMessage()))
                        + "). hint: check the file's permissions and the disk", e);
            }
        });
        return new ByteSource.FileRange(file, channel, s.offset(), s.info().byteLength());
    }

    /**
     * The tensor's values widened to float (a copy). F32/F16/BF16/F8 widen exactly; F64 rounds to nearest float.
     * Integer and bool tensors are refused: read them with {@link #data}.
     */
    @Override
    public float[] floats(String key) {
        TensorInfo info = info(key);
        long n = info.numElements();
        if (n > Integer.MAX_VALUE - 8) {
            throw new SafeTensorsException(info.file() + ": tensor " + quote(key) + " " + info.shape() + " has " + n
                    + " elements, more than a Java float[] holds. hint: read it in slices through data(key)");
        }
        MemorySegment s = data(key);
        float[] out = new float[(int) n];
        switch (info.dtype()) {
            case F32 -> MemorySegment.copy(s, F32_LE, 0, out, 0, out.length);
            case F64 -> { for (int i = 0; i < out.length; i++) out[i] = (float) s.getAtIndex(F64_LE, i); }
            case BF16 -> { for (int i = 0; i < out.length; i++) out[i] = Bf16.toFloat(s.getAtIndex(I16_LE, i)); }
            case F16 -> { for (int i = 0; i < out.length; i++) out[i] = Fp16.toFloat(s.getAtIndex(I16_LE, i)); }
            case F8_E4M3 -> { for (int i = 0; i < out.length; i++) out[i] = Fp8.e4m3ToFloat(s.get(ValueLayout.JAVA_BYTE, i)); }
            case F8_E5M2 -> { for (int i = 0; i < out.length; i++) out[i] = Fp8.e5m2ToFloat(s.get(ValueLayout.JAVA_BYTE, i)); }
            default -> throw new SafeTensorsException(info.file() + ": tensor " + quote(key) + " is " + info.dtype()
                    + ", floats() needs F32, F64, F16, BF16, F8_E4M3 or F8_E5M2. hint: read integer tensors through data(key)");
        }
        return out;
    }

    /** The {@code __metadata__} strings (merged over shards, the first shard's value kept on a clash). */
    public Map<String, String> metadata() { return metadata; }

    /** Unmaps every file. Idempotent. Segments from {@link #data} are invalid afterwards. */
    @Override
    public void close() {
        if (isClosed) return;
        synchronized (this) {
            if (isClosed) return;
            isClosed = true;
            arena.close();
            for (FileChannel ch : channels.values()) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // read-only channel: nothing to flush, and the reader is done with it
                }
            }
        }
    }

    @Override
    public String toString() {
        return "SafeTensors[" + path + ", " + slots.size() + " tensors]";
    }

    private Slot slot(String key) {
        Slot s = slots.get(key);
        if (s == null) {
            throw new SafeTensorsException(path + ": no tensor " + quote(key) + " (the file has " + slots.size()
                    + " tensors). hint: run `wanlora inspect " + path + "` to list its keys");
        }
        return s;
    }

    // ---------------------------------------------------------------- shard sets

    private static boolean isIndex(Path p) {
        return p.getFileName() != null && p.getFileName().toString().endsWith(INDEX_SUFFIX);
    }

    /** The files to open for {@code p}: every shard of its set if it has a shard name, else {@code p} itself. */
    private static List<Path> shardFiles(Path p) {
        Matcher m = p.getFileName() == null ? null : SHARD_NAME.matcher(p.getFileName().toString());
        if (m == null || !m.matches()) return List.of(p);
        int count;
        try {
            count = Integer.parseInt(m.group(3));
        } catch (NumberFormatException e) {
            count = 0;
        }
        if (count < 1 || count > 100_000) {
            throw new SafeTensorsException(p + ": shard name says the set has " + m.group(3)
                    + " files, expected 1 to 100000. hint: rename the file if it is not part of a shard set");
        }
        String width = "%0" + m.group(2).length() + "d";
        String countText = m.group(3);
        List<Path> files = new ArrayList<>();
        for (int i = 1; i <= count; i++) {
            files.add(p.resolveSibling(m.group(1) + "-" + String.format(width, i) + "-of-" + countText + ".safetensors"));
        }
        return files;
    }

    private static void requireAll(Path opened, List<Path> files) {
        if (files.size() == 1) return; // a single file's absence is reported when it is opened
        List<Path> missing = files.stream().filter(f -> !Files.isRegularFile(f)).toList();
        if (!missing.isEmpty()) {
            throw new SafeTensorsException(opened + ": shard set of " + files.size() + " files is incomplete, missing "
                    + missing.getFirst() + (missing.size() > 1 ? " and " + (missing.size() - 1) + " more" : "")
                    + ". hint: download every shard into the same folder");
        }
    }

    /** The {@code weight_map} of an index: tensor key → shard path (resolved beside the index). */
    private static Map<String, Path> readIndex(Path index) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(index));
        } catch (NoSuchFileException e) {
            throw new SafeTensorsException(index + ": file not found. hint: check the path");
        } catch (JacksonException e) {
            throw new SafeTensorsException(index + ": not valid JSON (" + jsonProblem(e)
                    + "). hint: download the index again");
        } catch (IOException e) {
            throw new SafeTensorsException(index + ": cannot read (" + oneLine(String.valueOf(e.getMessage())) + ")", e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject() || map.isEmpty()) {
            throw new SafeTensorsException(index + ": no \"weight_map\" object of key → shard file names"
                    + ". hint: download the index again");
        }
        Path dir = index.toAbsolutePath().getParent();
        Map<String, Path> out = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            JsonNode v = e.getValue();
            Path shard;
            try {
                shard = v.isTextual() ? dir.resolve(v.textValue()).normalize() : null;
            } catch (InvalidPathException bad) {
                shard = null;
            }
            if (shard == null || !dir.equals(shard.getParent())) {
                throw new SafeTensorsException(index + ": weight_map entry " + quote(e.getKey()) + " is " + oneLine(v.toString())
                        + ", expected the name of a shard file in the same folder. hint: download the index again");
            }
            out.put(e.getKey(), shard);
        }
        return out;
    }

    private static void checkIndex(Path index, Map<String, Path> indexMap, Map<String, Path> owner) {
        for (Map.Entry<String, Path> e : indexMap.entrySet()) {
            Path actual = owner.get(e.getKey());
            if (actual == null || !actual.equals(e.getValue())) {
                throw new SafeTensorsException(index + ": weight_map puts " + quote(e.getKey()) + " in "
                        + e.getValue().getFileName() + " but " + (actual == null ? "no shard has it"
                        : "it is in " + actual.getFileName()) + ". hint: the index and shards come from different downloads");
            }
        }
        for (Map.Entry<String, Path> e : owner.entrySet()) {
            if (!indexMap.containsKey(e.getKey())) {
                throw new SafeTensorsException(index + ": shard " + e.getValue().getFileName() + " has "
                        + quote(e.getKey()) + ", which the weight_map does not list"
                        + ". hint: the index and shards come from different downloads");
            }
        }
    }

    // ---------------------------------------------------------------- header

    /**
     * Reads and validates the header of {@code file}. Checks, in order: the length field, UTF-8, JSON object,
     * {@code __metadata__}, then per tensor dtype, shape, data_offsets and byte length, then overlaps.
     *
     * <p>Layout rule: tensors may appear in any order and with gaps between them, but no two may share a byte.
     * The Rust reference reader is stricter (ranges contiguous, in header order, covering the data section), but
     * nothing here depends on contiguity, writers that align tensors leave gaps, and JSON key order is not
     * guaranteed to survive every tool; overlap is refused because it would make two tensors alias one buffer.
     */
    private static Header readHeader(Path file, FileChannel ch) throws IOException {
        long fileBytes = ch.size();
        if (fileBytes < 8) {
            throw new SafeTensorsException(file + ": " + fileBytes + " bytes, shorter than the 8-byte header length"
                    + " field. hint: the file is truncated or not safetensors; download or write it again");
        }
        ByteBuffer lengthField = readFully(ch, 0, 8).order(ByteOrder.LITTLE_ENDIAN);
        long headerBytes = lengthField.getLong(0); // u64; above 2^63 reads negative, refused below
        if (headerBytes < 0 || headerBytes > fileBytes - 8) {
            throw new SafeTensorsException(file + ": header length " + Long.toUnsignedString(headerBytes)
                    + " is larger than the file (" + fileBytes + " bytes)"
                    + ". hint: the file is truncated or not safetensors; download or write it again");
        }
        if (headerBytes > MAX_HEADER_BYTES) {
            throw new SafeTensorsException(file + ": header length " + headerBytes + " is larger than the limit of "
                    + MAX_HEADER_BYTES + " bytes. hint: the file is corrupt or not safetensors");
        }
        ByteBuffer raw = readFully(ch, 8, (int) headerBytes);
        CharBuffer chars = CharBuffer.allocate((int) headerBytes);
        CoderResult decoded = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(raw, chars, true);
        if (decoded.isError()) {
            throw new SafeTensorsException(file + ": header is not valid UTF-8 (a malformed byte at header offset "
                    + raw.position() + "). hint: the file is corrupt or not safetensors");
        }
        String text = chars.flip().toString();
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (JacksonException e) {
            throw new SafeTensorsException(file + ": header is not valid JSON (" + jsonProblem(e)
                    + "). hint: the file is corrupt or not safetensors");
        }
        if (root == null || !root.isObject()) {
            throw new SafeTensorsException(file + ": header is " + (root == null || root.isMissingNode() ? "empty" : "a JSON " + root.getNodeType())
                    + ", expected a JSON object. hint: the file is corrupt or not safetensors");
        }
        long dataStart = 8 + headerBytes;
        long dataBytes = fileBytes - dataStart;
        Map<String, String> metadata = new LinkedHashMap<>();
        List<Entry> entries = new ArrayList<>();
        for (Map.Entry<String, JsonNode> field : root.properties()) {
            String key = field.getKey();
            JsonNode v = field.getValue();
            if (key.equals("__metadata__")) {
                if (!v.isObject()) {
                    throw new SafeTensorsException(file + ": __metadata__ is a JSON " + v.getNodeType()
                            + ", expected an object of strings. hint: the file was written by a non-conforming tool");
                }
                for (Map.Entry<String, JsonNode> m : v.properties()) {
                    if (!m.getValue().isTextual()) {
                        throw new SafeTensorsException(file + ": __metadata__ value " + quote(m.getKey()) + " is "
                                + abbreviate(m.getValue().toString()) + ", expected a string"
                                + ". hint: the file was written by a non-conforming tool");
                    }
                    metadata.put(m.getKey(), m.getValue().textValue());
                }
                continue;
            }
            entries.add(readEntry(file, key, v, dataBytes));
        }
        checkOverlaps(file, entries);
        return new Header(metadata, entries, fileBytes, dataStart);
    }

    private static Entry readEntry(Path file, String key, JsonNode v, long dataBytes) {
        String where = file + ": tensor " + quote(key);
        String hint = ". hint: the file is corrupt or was written by a non-conforming tool";
        if (!v.isObject()) {
            throw new SafeTensorsException(where + " is " + abbreviate(v.toString())
                    + ", expected an object with dtype, shape and data_offsets" + hint);
        }
        JsonNode dtypeNode = v.get("dtype");
        DType dtype = dtypeNode != null && dtypeNode.isTextual() ? DType.fromSafetensors(dtypeNode.textValue()) : null;
        if (dtype == null) {
            throw new SafeTensorsException(where + " has unknown dtype " + (dtypeNode == null ? "(missing)"
                    : abbreviate(dtypeNode.toString())) + ", expected one of "
                    + Arrays.stream(DType.values()).map(DType::safetensorsName).toList() + hint);
        }
        long[] dims = longArray(v.get("shape"), -1);
        if (dims == null) {
            throw new SafeTensorsException(where + " has shape " + describe(v.get("shape"))
                    + ", expected an array of non-negative integers" + hint);
        }
        Shape shape = new Shape(dims);
        long expectedBytes;
        try {
            expectedBytes = Math.multiplyExact(shape.numElements(), dtype.sizeBytes());
        } catch (ArithmeticException e) {
            throw new SafeTensorsException(where + " has shape " + shape + ", whose byte size overflows a 64-bit integer" + hint);
        }
        long[] offsets = longArray(v.get("data_offsets"), 2);
        if (offsets == null || offsets[0] > offsets[1]) {
            throw new SafeTensorsException(where + " has data_offsets " + describe(v.get("data_offsets"))
                    + ", expected [begin, end] with 0 <= begin <= end" + hint);
        }
        if (offsets[1] > dataBytes) {
            throw new SafeTensorsException(where + " has data_offsets [" + offsets[0] + ", " + offsets[1]
                    + "] outside the data section of " + dataBytes + " bytes. hint: the file is truncated; download or write it again");
        }
        long byteLength = offsets[1] - offsets[0];
        if (byteLength != expectedBytes) {
            throw new SafeTensorsException(where + " spans " + byteLength + " bytes, expected " + expectedBytes
                    + " (" + shape.numElements() + " elements of " + dtype + " " + shape + ")" + hint);
        }
        return new Entry(key, dtype, shape, offsets[0], offsets[1]);
    }

    /** The array as longs if it is an array of non-negative integers (of {@code length}, unless -1), else null. */
    private static long[] longArray(JsonNode node, int length) {
        if (node == null || !node.isArray() || (length >= 0 && node.size() != length)) return null;
        long[] out = new long[node.size()];
        for (int i = 0; i < out.length; i++) {
            JsonNode x = node.get(i);
            if (!x.isIntegralNumber() || !x.canConvertToLong() || x.longValue() < 0) return null;
            out[i] = x.longValue();
        }
        return out;
    }

    private static void checkOverlaps(Path file, List<Entry> entries) {
        List<Entry> byBegin = new ArrayList<>();
        for (Entry e : entries) if (e.end() > e.begin()) byBegin.add(e); // empty ranges hold no bytes to share
        byBegin.sort(Comparator.comparingLong(Entry::begin));
        for (int i = 1; i < byBegin.size(); i++) {
            Entry a = byBegin.get(i - 1), b = byBegin.get(i);
            if (b.begin() < a.end()) {
                throw new SafeTensorsException(file + ": tensors " + quote(a.key()) + " [" + a.begin() + ", " + a.end()
                        + ") and " + quote(b.key()) + " [" + b.begin() + ", " + b.end() + ") overlap in the data section"
                        + ". hint: the file is corrupt or was written by a non-conforming tool");
            }
        }
    }

    private static ByteBuffer readFully(FileChannel ch, long position, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        while (b.hasRemaining()) {
            if (ch.read(b, position + b.position()) < 0) throw new IOException("unexpected end of file");
        }
        return b.flip();
    }

    private static String strip(String key, List<String> prefixes) {
        for (String p : prefixes) {
            if (key.startsWith(p)) return key.substring(p.length());
        }
        return key;
    }

    /**
     * A Jackson error as one line: its first message line and, when the parser knows it, where. Limit errors (nesting
     * depth, string length) carry no location.
     */
    public static String jsonProblem(JacksonException e) {
        String message = String.valueOf(e.getOriginalMessage()).lines().findFirst().orElse("");
        var at = e.getLocation();
        String where = at == null || at.getLineNr() < 1 ? "" : " at line " + at.getLineNr() + " column " + at.getColumnNr();
        String line = oneLine(message);
        return (line.length() <= 200 ? line : line.substring(0, 197) + "...") + where;
    }

    private static String describe(JsonNode n) {
        return n == null ? "(missing)" : abbreviate(n.toString());
    }

    /** A JSON text cut to 80 characters, on one line. */
    private static String abbreviate(String s) {
        String line = oneLine(s);
        return line.length() <= 80 ? line : line.substring(0, 77) + "...";
    }

    /** The key in quotes with control characters escaped, so a message stays on one line. */
    static String quote(String key) {
        return "'" + oneLine(key) + "'";
    }

    static String oneLine(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c == 0x7f) b.append(String.format("\\u%04x", (int) c)); else b.append(c);
        }
        return b.toString();
    }
}
