package dev.wanlora.models.musubi;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;
import dev.wanlora.models.text.ClosestName;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Reads one dataset config for {@link DatasetConfig#load}. The schema is musubi's {@code ConfigSanitizer}
 * (config_utils.py L112‑151): {@code [general]} takes the six "ascendable" keys; a dataset takes those plus the image
 * or the video keys, and is a video dataset exactly when it has {@code video_directory} or {@code video_jsonl_file}.
 * Unknown keys and wrong types are errors, as with musubi's voluptuous schema, with two deliberate differences: an
 * integer is accepted for {@code source_fps} (musubi wants 30.0, not 30), and {@code true}/{@code false} are not
 * accepted as integers (Python would). Values musubi would only reject later, or never (batch_size 0, empty
 * target_frames, an unknown frame_extraction), are rejected here, at load time.
 */
final class DatasetConfigReader {

    private enum ValueType {
        STRING("a string"),
        INT("an integer"),
        BOOL("true or false"),
        FLOAT("a number"),
        INT_LIST("an array of integers"),
        INT_OR_PAIR("an integer or an array [width, height] of two integers");

        final String description;

        ValueType(String description) { this.description = description; }
    }

    /** Keys allowed in [general] and in every dataset (DATASET_ASCENDABLE_SCHEMA). */
    private static final Map<String, ValueType> ASCENDABLE = schema(
            "caption_extension", ValueType.STRING,
            "batch_size", ValueType.INT,
            "num_repeats", ValueType.INT,
            "resolution", ValueType.INT_OR_PAIR,
            "enable_bucket", ValueType.BOOL,
            "bucket_no_upscale", ValueType.BOOL);

    /** IMAGE_DATASET_DISTINCT_SCHEMA. */
    private static final Map<String, ValueType> IMAGE_ONLY = schema(
            "image_directory", ValueType.STRING,
            "image_jsonl_file", ValueType.STRING,
            "cache_directory", ValueType.STRING,
            "control_directory", ValueType.STRING,
            "multiple_target", ValueType.BOOL,
            "fp_latent_window_size", ValueType.INT,
            "fp_1f_clean_indices", ValueType.INT_LIST,
            "fp_1f_target_index", ValueType.INT,
            "fp_1f_no_post", ValueType.BOOL,
            "no_resize_control", ValueType.BOOL,
            "control_resolution", ValueType.INT_OR_PAIR);

    /** VIDEO_DATASET_DISTINCT_SCHEMA. */
    private static final Map<String, ValueType> VIDEO_ONLY = schema(
            "video_directory", ValueType.STRING,
            "video_jsonl_file", ValueType.STRING,
            "control_directory", ValueType.STRING,
            "target_frames", ValueType.INT_LIST,
            "frame_extraction", ValueType.STRING,
            "frame_stride", ValueType.INT,
            "frame_sample", ValueType.INT,
            "max_frames", ValueType.INT,
            "cache_directory", ValueType.STRING,
            "source_fps", ValueType.FLOAT,
            "fp_latent_window_size", ValueType.INT);

    /** Keys musubi accepts that change nothing when training Wan2.1 T2V from caches (control, FramePack). */
    private static final Set<String> NO_EFFECT_FOR_T2V = Set.of("control_directory", "multiple_target",
            "fp_latent_window_size", "fp_1f_clean_indices", "fp_1f_target_index", "fp_1f_no_post",
            "no_resize_control", "control_resolution");

    /** Old names musubi renames with a warning before checking (load_user_config). */
    private static final Map<String, String> DEPRECATED = Map.of(
            "flux_kontext_no_resize_control", "no_resize_control",
            "qwen_image_edit_no_resize_control", "no_resize_control",
            "qwen_image_edit_control_resolution", "control_resolution");

    private static final Resolution DEFAULT_RESOLUTION = new Resolution(960, 544);
    private static final List<Integer> DEFAULT_TARGET_FRAMES = List.of(1);
    private static final int DEFAULT_MAX_FRAMES = 129;

    // Bounds on what a real run can mean (musubi has none): beyond them a number is a typo, and the bucket list,
    // the epoch's batch list or the memory plan would be unbounded.
    /** Pixels per side: 8192 is over 6 times Wan's 720p and already needs 262,144 tokens per frame. */
    static final int MAX_RESOLUTION = 8192;
    /** Items per batch. */
    static final int MAX_BATCH_SIZE = 1024;
    /** Repeats of each item per epoch. */
    static final int MAX_REPEATS = 10_000;
    /** Frames of a clip or stride between clips: over 5 minutes at 30 fps, where Wan trains on 81. */
    static final int MAX_FRAMES = 10_000;

    private final Path file;
    private final List<String> warnings = new ArrayList<>();

    DatasetConfigReader(Path file) {
        this.file = file;
    }

    /** One table of the file with its keys after deprecated-name normalisation; location is "[general]" or "datasets[i]". */
    private record Table(String location, Map<String, JsonNode> values) {
        JsonNode get(String key) { return values.get(key); }
    }

    /** A looked-up value and the table it came from, for messages. */
    private record Found(Table table, String key, JsonNode node) {}

    DatasetConfig read() {
        JsonNode root = parse();
        if (!root.isObject()) {
            throw error("top level", "the file must be a table with [general] and [[datasets]]; got " + kindOf(root));
        }
        for (Map.Entry<String, JsonNode> e : root.properties()) {
            if (!e.getKey().equals("general") && !e.getKey().equals("datasets")) {
                throw unknownKey("top level", e.getKey(), List.of("general", "datasets"), "'general' or 'datasets'");
            }
        }
        Table general = readGeneral(root.get("general"));
        JsonNode datasetsNode = root.get("datasets");
        if (datasetsNode == null || (datasetsNode.isArray() && datasetsNode.isEmpty())) {
            throw error("top level", "no [[datasets]] entries; expected at least one. hint: add a [[datasets]] table with "
                    + "image_directory or video_directory and cache_directory");
        }
        if (!datasetsNode.isArray()) {
            throw error("top level", "'datasets' has the wrong type; got " + kindOf(datasetsNode)
                    + ", expected an array of tables ([[datasets]])");
        }
        List<DatasetSpec> datasets = new ArrayList<>();
        for (int i = 0; i < datasetsNode.size(); i++) {
            datasets.add(readDataset(i, datasetsNode.get(i), general));
        }
        checkUniqueCacheDirectories(datasets);
        return new DatasetConfig(file, datasets, warnings);
    }

    private JsonNode parse() {
        if (!Files.isRegularFile(file)) {
            throw new DatasetException(file + ": dataset config not found; expected a .toml or .json file. "
                    + "hint: check the --dataset_config path");
        }
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        boolean isJson = name.endsWith(".json");
        if (!isJson && !name.endsWith(".toml")) {
            throw new DatasetException(file + ": not a supported config format; got '" + file.getFileName()
                    + "', expected a name ending in .toml or .json");
        }
        ObjectMapper mapper = isJson ? new ObjectMapper() : new TomlMapper();
        JsonNode root;
        try {
            root = mapper.readTree(file.toFile());
        } catch (JacksonException e) {
            JsonLocation at = e.getLocation();
            String where = at == null ? "" : " at line " + at.getLineNr() + ", column " + at.getColumnNr();
            throw new DatasetException(file + ": not valid " + (isJson ? "JSON" : "TOML") + where + ": "
                    + e.getOriginalMessage().replace('\n', ' ').strip());
        } catch (IOException e) {
            throw new DatasetException(file + ": cannot read the dataset config: " + e.getMessage());
        }
        if (root == null || root.isMissingNode()) {
            throw error("top level", "the file is empty; expected [general] and [[datasets]] tables");
        }
        return root;
    }

    private Table readGeneral(JsonNode node) {
        if (node == null) return new Table("[general]", Map.of());
        Table general = table("[general]", node);
        for (Map.Entry<String, JsonNode> e : general.values().entrySet()) {
            String key = e.getKey();
            if (!ASCENDABLE.containsKey(key)) {
                if (IMAGE_ONLY.containsKey(key) || VIDEO_ONLY.containsKey(key)) {
                    throw error(general.location(), "key '" + key + "' is only valid inside a [[datasets]] table; "
                            + "expected one of " + ASCENDABLE.keySet() + ". hint: move it into each dataset");
                }
                throw unknownKey(general.location(), key, ASCENDABLE.keySet(), "a [general] key");
            }
            checkType(general, key, ASCENDABLE.get(key));
        }
        return general;
    }

    private DatasetSpec readDataset(int index, JsonNode node, Table general) {
        Table ds = table("datasets[" + index + "]", node);
        boolean isVideo = ds.get("video_directory") != null || ds.get("video_jsonl_file") != null;
        Map<String, ValueType> distinct = isVideo ? VIDEO_ONLY : IMAGE_ONLY;
        for (String key : ds.values().keySet()) {
            ValueType type = ASCENDABLE.containsKey(key) ? ASCENDABLE.get(key) : distinct.get(key);
            if (type == null) {
                if (isVideo && IMAGE_ONLY.containsKey(key)) {
                    throw error(ds.location(), "key '" + key + "' is only valid in an image dataset; got it in a video "
                            + "dataset (it has " + (ds.get("video_directory") != null ? "video_directory" : "video_jsonl_file")
                            + "). hint: a dataset is either image or video; split it into two [[datasets]]");
                }
                if (!isVideo && VIDEO_ONLY.containsKey(key)) {
                    throw error(ds.location(), "key '" + key + "' is only valid in a video dataset; got it in an image "
                            + "dataset (it has neither video_directory nor video_jsonl_file). hint: add video_directory "
                            + "or remove '" + key + "'");
                }
                List<String> valid = new ArrayList<>(ASCENDABLE.keySet());
                valid.addAll(distinct.keySet());
                throw unknownKey(ds.location(), key, valid, isVideo ? "a video dataset key" : "an image dataset key");
            }
            checkType(ds, key, type);
            if (NO_EFFECT_FOR_T2V.contains(key)) {
                warnings.add(file + ": " + ds.location() + ": key '" + key
                        + "' has no effect when training Wan2.1 T2V from caches; wanlora ignores it");
            }
        }

        String sourceKey = isVideo
                ? (ds.get("video_directory") != null ? "video_directory" : "video_jsonl_file")
                : (ds.get("image_directory") != null ? "image_directory"
                        : ds.get("image_jsonl_file") != null ? "image_jsonl_file" : null);
        if (sourceKey == null) {
            throw error(ds.location(), "no media source; expected one of image_directory, image_jsonl_file, "
                    + "video_directory, video_jsonl_file");
        }
        Path source = path(new Found(ds, sourceKey, ds.get(sourceKey)));
        Path cacheDirectory;
        if (ds.get("cache_directory") != null) {
            cacheDirectory = path(new Found(ds, "cache_directory", ds.get("cache_directory")));
        } else if (sourceKey.endsWith("_directory")) {
            cacheDirectory = source; // musubi: cache_directory defaults to the image/video directory
        } else {
            throw error(ds.location(), "a dataset read from " + sourceKey + " has no cache_directory; expected "
                    + "cache_directory = \"<folder with the *_wan.safetensors caches>\"");
        }

        Resolution resolution = resolution(lookup("resolution", ds, general));
        String captionExtension = lookup("caption_extension", ds, general) instanceof Found f ? f.node().textValue() : null;
        int batchSize = intBetween(lookup("batch_size", ds, general), 1, 1, MAX_BATCH_SIZE);
        int numRepeats = intBetween(lookup("num_repeats", ds, general), 1, 0, MAX_REPEATS);
        boolean enableBucket = bool(lookup("enable_bucket", ds, general), false);
        boolean bucketNoUpscale = enableBucket && bool(lookup("bucket_no_upscale", ds, general), false);
        if (enableBucket) {
            try {
                new BucketSelector(resolution, true, bucketNoUpscale);
            } catch (IllegalArgumentException e) {
                Found where = lookup("resolution", ds, general);
                throw error(where == null ? ds.location() : where.table().location(), "key 'resolution' is too small "
                        + "for bucketing; got " + resolution + ", expected int(sqrt(width*height)) >= 32");
            }
        }
        FrameSpec frames = isVideo ? frames(ds) : null;
        return new DatasetSpec(index, sourceKey, source, cacheDirectory, resolution, captionExtension, batchSize,
                numRepeats, enableBucket, bucketNoUpscale, frames);
    }

    private FrameSpec frames(Table ds) {
        List<Integer> targetFrames = DEFAULT_TARGET_FRAMES;
        Found tf = lookup("target_frames", ds);
        if (tf != null) {
            TreeSet<Integer> distinct = new TreeSet<>();
            for (JsonNode n : tf.node()) distinct.add(n.intValue());
            if (distinct.isEmpty() || distinct.first() < 1 || distinct.last() > MAX_FRAMES) {
                throw outOfRange(tf, "a non-empty array of frame counts, each from 1 to " + MAX_FRAMES + " (e.g. [1, 25, 45])");
            }
            TreeSet<Integer> rounded = new TreeSet<>();
            for (int n : distinct) rounded.add(FrameSpec.roundDownTo4nPlus1(n));
            if (!rounded.equals(distinct)) {
                warnings.add(file + ": " + ds.location() + ": target_frames " + distinct
                        + " rounded down to 4n+1: " + rounded + ", as musubi does");
            }
            targetFrames = List.copyOf(rounded);
        }
        FrameExtraction extraction = FrameExtraction.HEAD;
        Found fe = lookup("frame_extraction", ds);
        if (fe != null) {
            extraction = FrameExtraction.fromConfig(fe.node().textValue());
            if (extraction == null) throw outOfRange(fe, "one of \"head\", \"chunk\", \"slide\", \"uniform\", \"full\"");
        }
        int frameStride = intBetween(lookup("frame_stride", ds), 1, 1, MAX_FRAMES);
        int frameSample = intBetween(lookup("frame_sample", ds), 1, 1, MAX_FRAMES);
        int maxFrames = intBetween(lookup("max_frames", ds), DEFAULT_MAX_FRAMES, 1, MAX_FRAMES);
        Double sourceFps = null;
        Found fps = lookup("source_fps", ds);
        if (fps != null) {
            sourceFps = fps.node().doubleValue();
            if (!(sourceFps > 0) || sourceFps.isInfinite()) throw outOfRange(fps, "a frame rate > 0 (e.g. 30.0)");
        }
        if (extraction == FrameExtraction.UNIFORM && frameSample == 1) {
            warnings.add(file + ": " + ds.location() + ": frame_extraction = \"uniform\" with frame_sample = 1 "
                    + "becomes \"head\", as in musubi");
            extraction = FrameExtraction.HEAD;
        }
        return new FrameSpec(targetFrames, extraction, frameStride, frameSample, maxFrames, sourceFps);
    }

    private void checkUniqueCacheDirectories(List<DatasetSpec> datasets) {
        Map<Path, DatasetSpec> seen = new HashMap<>();
        for (DatasetSpec d : datasets) {
            DatasetSpec other = seen.putIfAbsent(d.cacheDirectory().toAbsolutePath().normalize(), d);
            if (other != null) {
                throw new DatasetException(file + ": datasets[" + other.index() + "] and datasets[" + d.index()
                        + "] use the same cache directory '" + d.cacheDirectory() + "'; expected one cache directory per "
                        + "dataset (without cache_directory a dataset uses its image or video directory). "
                        + "hint: give one of them its own cache_directory");
            }
        }
    }

    // ---- typed access (types were checked by checkType before any of these run)

    private static Found lookup(String key, Table... tables) {
        for (Table t : tables) {
            JsonNode n = t.get(key);
            if (n != null) return new Found(t, key, n);
        }
        return null;
    }

    private int intBetween(Found found, int defaultValue, int min, int max) {
        if (found == null) return defaultValue;
        int v = found.node().intValue();
        if (v < min || v > max) throw outOfRange(found, "an integer from " + min + " to " + max);
        return v;
    }

    private static boolean bool(Found found, boolean defaultValue) {
        return found == null ? defaultValue : found.node().booleanValue();
    }

    private Resolution resolution(Found found) {
        if (found == null) return DEFAULT_RESOLUTION;
        JsonNode n = found.node();
        int w = n.isArray() ? n.get(0).intValue() : n.intValue();
        int h = n.isArray() ? n.get(1).intValue() : n.intValue();
        if (w < 1 || h < 1 || w > MAX_RESOLUTION || h > MAX_RESOLUTION) {
            throw outOfRange(found, "sizes from 1 to " + MAX_RESOLUTION + " (e.g. 960 or [960, 544])");
        }
        return new Resolution(w, h);
    }

    private Path path(Found found) {
        try {
            return Path.of(found.node().textValue());
        } catch (InvalidPathException e) {
            throw outOfRange(found, "a valid path (" + e.getReason() + ")");
        }
    }

    // ---- schema checks

    private Table table(String location, JsonNode node) {
        if (!node.isObject()) {
            throw error(location, "expected a table; got " + kindOf(node));
        }
        Map<String, JsonNode> values = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            String key = e.getKey();
            String renamed = DEPRECATED.get(key);
            if (renamed == null) {
                values.put(key, e.getValue());
            } else if (node.has(renamed)) {
                warnings.add(file + ": " + location + ": deprecated key '" + key + "' is ignored because '" + renamed
                        + "' is set");
            } else {
                warnings.add(file + ": " + location + ": deprecated key '" + key + "'; use '" + renamed + "' instead");
                values.put(renamed, e.getValue());
            }
        }
        return new Table(location, values);
    }

    private void checkType(Table t, String key, ValueType type) {
        JsonNode n = t.get(key);
        boolean ok = switch (type) {
            case STRING -> n.isTextual();
            case INT -> isInt(n);
            case BOOL -> n.isBoolean();
            case FLOAT -> n.isNumber();
            case INT_LIST -> n.isArray() && allInts(n);
            case INT_OR_PAIR -> isInt(n) || (n.isArray() && n.size() == 2 && allInts(n));
        };
        if (!ok) {
            throw error(t.location(), "key '" + key + "' has the wrong type; got " + n + " (" + kindOf(n)
                    + "), expected " + type.description);
        }
    }

    private static boolean isInt(JsonNode n) {
        return n.isIntegralNumber() && n.canConvertToInt();
    }

    private static boolean allInts(JsonNode array) {
        for (JsonNode e : array) {
            if (!isInt(e)) return false;
        }
        return true;
    }

    private static String kindOf(JsonNode n) {
        if (n.isTextual()) return "a string";
        if (n.isBoolean()) return "a boolean";
        if (n.isIntegralNumber()) return n.canConvertToInt() ? "an integer" : "an integer too large for 32 bits";
        if (n.isNumber()) return "a floating-point number";
        if (n.isArray()) return "an array";
        if (n.isObject()) return "a table";
        if (n.isNull()) return "null";
        return n.getNodeType().name().toLowerCase(Locale.ROOT);
    }

    // ---- messages

    private DatasetException error(String location, String what) {
        return new DatasetException(file + ": " + location + ": " + what);
    }

    private DatasetException outOfRange(Found found, String expected) {
        return error(found.table().location(), "key '" + found.key() + "' is out of range; got " + found.node()
                + ", expected " + expected);
    }

    private DatasetException unknownKey(String location, String key, Iterable<String> valid, String expected) {
        String closest = ClosestName.nearest(key, valid);
        return error(location, "unknown key '" + key + "'; expected " + expected + " (musubi's dataset schema is "
                + "strict). hint: did you mean '" + closest + "'?");
    }

    private static Map<String, ValueType> schema(Object... keyTypePairs) {
        Map<String, ValueType> m = new LinkedHashMap<>();
        for (int i = 0; i < keyTypePairs.length; i += 2) m.put((String) keyTypePairs[i], (ValueType) keyTypePairs[i + 1]);
        return m;
    }
}
