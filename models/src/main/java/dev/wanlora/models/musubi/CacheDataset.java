package dev.wanlora.models.musubi;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensors.TensorInfo;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The training items of a dataset config, found in each dataset's cache directory the way musubi's
 * {@code prepare_for_training} finds them (image_video_dataset.py L504‑557 images, L862‑895 videos), and counted the
 * way its trainer counts batches and steps (trainer_base.py L1640‑1646, L1796).
 *
 * <p>Discovery lists {@code *_wan.safetensors} in the cache directory (name order; musubi's glob order is the file
 * system's), parses {@code {name}_{W}x{H}_wan} or {@code {name}_{start}-{count}_{W}x{H}_wan}, pairs each file with
 * {@code {name}_wan_te.safetensors}, and reads both headers only. The bucket is musubi's: the dataset's
 * {@link BucketSelector} applied to the original size in the name, plus the clip length for videos.
 *
 * <p>Differences from musubi, each stricter: a missing text cache is an error (musubi logs a warning and drops the
 * item, which {@link Options#skipBadItems} reproduces); latent and text headers are checked up front (musubi fails
 * mid-training on a bad file); and a bucket whose items have different latent shapes is an error when batch_size > 1
 * (musubi fails when stacking them), which happens when a video config's bucket settings differ from those the caches
 * were made with.
 */
public final class CacheDataset {

    /** Wan2.1 VAE latent channels. */
    public static final int LATENT_CHANNELS = 16;
    /** umT5-XXL hidden size: the width of every text-encoder cache row. */
    public static final int TEXT_DIM = 4096;
    /** Text length the DiT pads every context to; a longer cache cannot come from musubi's tokenizer. */
    public static final int TEXT_LEN = 512;

    /**
     * Items per epoch, repeats included: ten million is years of steps on one GPU, and each epoch's batch order is a
     * list of that length.
     */
    public static final long MAX_TRAIN_ITEMS = 10_000_000;

    private static final String LATENT_SUFFIX = "_wan.safetensors";
    private static final String TEXT_SUFFIX = "_wan_te.safetensors";
    private static final Pattern SIZE_TOKEN = Pattern.compile("(\\d+)x(\\d+)");
    /** "00000-045", or with musubi's optional section index "00000-045-00". */
    private static final Pattern FRAMES_TOKEN = Pattern.compile("(\\d+)-(\\d+)(?:-\\d+)?");
    private static final Pattern LATENT_KEY = Pattern.compile("latents_(\\d+)x(\\d+)x(\\d+)_(\\w+)");
    private static final Pattern TEXT_KEY = Pattern.compile("varlen_t5_(\\w+)");
    private static final String LATENT_HINT = "re-run musubi's wan_cache_latents.py with this dataset config";
    private static final String TEXT_HINT = "re-run musubi's wan_cache_text_encoder_outputs.py with this dataset config";

    /**
     * @param skipBadItems turn the per-item errors (no text cache, bad header, unparsable name, empty or missing cache
     *                     directory) into warnings and leave the item out
     * @param readsValues  also read every cache's values and refuse (or with skipBadItems, leave out) those holding
     *                     NaN or Inf; discovery then reads the whole dataset once instead of headers only
     */
    public record Options(boolean skipBadItems, boolean readsValues) {
        public static final Options STRICT = new Options(false);

        /** {@code --skip_bad_items}: skipping includes caches with NaN or Inf values. */
        public Options(boolean skipBadItems) {
            this(skipBadItems, skipBadItems);
        }
    }

    /**
     * One dataset's items.
     *
     * @param spec    the dataset's config
     * @param buckets distinct cache items per bucket, in bucket order; each item enters an epoch
     *                {@code spec.numRepeats()} times
     */
    public record DatasetCache(DatasetSpec spec, SortedMap<Bucket, List<CacheItem>> buckets) {

        public DatasetCache {
            TreeMap<Bucket, List<CacheItem>> copy = new TreeMap<>();
            buckets.forEach((k, v) -> copy.put(k, List.copyOf(v)));
            buckets = Collections.unmodifiableSortedMap(copy);
        }

        /** Distinct cache items (latent files). */
        public int itemCount() {
            return buckets.values().stream().mapToInt(List::size).sum();
        }

        /** Items per epoch, repeats included: musubi's {@code num_train_items} share. */
        public long trainItemCount() {
            return (long) itemCount() * spec.numRepeats();
        }

        /** Items of one bucket per epoch, repeats included. */
        public long trainItemCount(Bucket bucket) {
            return (long) buckets.get(bucket).size() * spec.numRepeats();
        }

        /** Batches of one bucket per epoch: ceil(count × repeats / batch_size). */
        public long batchesPerEpoch(Bucket bucket) {
            return Math.ceilDiv(trainItemCount(bucket), spec.batchSize());
        }

        /** Σ over buckets of ceil(count × repeats / batch_size). */
        public long batchesPerEpoch() {
            long n = 0;
            for (Bucket b : buckets.keySet()) n += batchesPerEpoch(b);
            return n;
        }
    }

    private final DatasetConfig config;
    private final List<DatasetCache> datasets;
    private final List<String> warnings;

    private CacheDataset(DatasetConfig config, List<DatasetCache> datasets, List<String> warnings) {
        this.config = config;
        this.datasets = List.copyOf(datasets);
        this.warnings = List.copyOf(warnings);
    }

    /**
     * Finds and checks every dataset's cache items.
     *
     * @throws DatasetException one line naming the file and the fix, for the first bad item (unless skipBadItems),
     *                          or when no dataset has any training item
     */
    public static CacheDataset discover(DatasetConfig config, Options options) {
        List<String> warnings = new ArrayList<>();
        List<DatasetCache> datasets = new ArrayList<>();
        for (DatasetSpec spec : config.datasets()) {
            datasets.add(new Scan(spec, options, warnings).run());
        }
        CacheDataset result = new CacheDataset(config, datasets, warnings);
        if (result.numTrainItems() > MAX_TRAIN_ITEMS) {
            throw new DatasetException(config.file() + ": " + result.numTrainItems() + " items per epoch (repeats included),"
                    + " more than " + MAX_TRAIN_ITEMS + "; expected num_repeats that keep an epoch within what a run can"
                    + " train. hint: lower num_repeats and raise --max_train_epochs instead");
        }
        if (result.numTrainItems() == 0) {
            throw new DatasetException(config.file() + ": no training items in any dataset's cache directory; expected "
                    + "latent and text-encoder caches. hint: run musubi's wan_cache_latents.py and "
                    + "wan_cache_text_encoder_outputs.py with this dataset config first");
        }
        return result;
    }

    public DatasetConfig config() { return config; }

    public List<DatasetCache> datasets() { return datasets; }

    /** One line per problem that did not stop discovery (skipped items). */
    public List<String> warnings() { return warnings; }

    /** Items per epoch over all datasets, repeats included (musubi's {@code num_train_items}). */
    public long numTrainItems() {
        return datasets.stream().mapToLong(DatasetCache::trainItemCount).sum();
    }

    /** musubi's {@code len(train_dataloader)}: Σ over datasets and buckets of ceil(count × repeats / batch_size). */
    public long batchesPerEpoch() {
        return datasets.stream().mapToLong(DatasetCache::batchesPerEpoch).sum();
    }

    /** Optimizer steps per epoch: ceil(batches / gradient_accumulation_steps). */
    public long stepsPerEpoch(int gradientAccumulationSteps) {
        requirePositive("gradientAccumulationSteps", gradientAccumulationSteps);
        return Math.ceilDiv(batchesPerEpoch(), gradientAccumulationSteps);
    }

    /** {@code --max_train_epochs E} as musubi turns it into max_train_steps (one process): E × stepsPerEpoch. */
    public long maxTrainSteps(int epochs, int gradientAccumulationSteps) {
        requirePositive("epochs", epochs);
        return Math.multiplyExact(epochs, stepsPerEpoch(gradientAccumulationSteps));
    }

    /** Epochs musubi runs for {@code --max_train_steps}: ceil(max_train_steps / stepsPerEpoch). */
    public long epochsFor(long maxTrainSteps, int gradientAccumulationSteps) {
        return Math.ceilDiv(maxTrainSteps, stepsPerEpoch(gradientAccumulationSteps));
    }

    /** "[16,6,52,96]": shapes in error messages, as musubi users read them. */
    static String brackets(Shape shape) {
        String s = shape.toString();
        return "[" + s.substring(1, s.length() - 1) + "]";
    }

    private static void requirePositive(String name, long value) {
        if (value < 1) throw new IllegalArgumentException("CacheDataset: " + name + " must be >= 1; got " + value);
    }

    /** The discovery of one dataset; collects warnings into the shared list. */
    private static final class Scan {
        private final DatasetSpec spec;
        private final Options options;
        private final List<String> warnings;
        private final BucketSelector selector;
        /** Text caches already checked (every clip of a video shares one): the item's text fields, or the error. */
        private final Map<Path, Object> textChecks = new HashMap<>();

        Scan(DatasetSpec spec, Options options, List<String> warnings) {
            this.spec = spec;
            this.options = options;
            this.warnings = warnings;
            this.selector = spec.bucketSelector();
        }

        private record TextEntry(String key, Shape shape, DType dtype) {}

        DatasetCache run() {
            TreeMap<Bucket, List<CacheItem>> buckets = new TreeMap<>();
            List<Path> files;
            try {
                files = latentFiles();
            } catch (DatasetException e) {
                skipOrThrow(e);
                return new DatasetCache(spec, buckets);
            }
            for (Path f : files) {
                try {
                    CacheItem item = readItem(f);
                    if (options.readsValues()) {
                        item.readLatents();
                        item.readText();
                    }
                    Bucket bucket = bucketOf(item);
                    buckets.computeIfAbsent(bucket, k -> new ArrayList<>()).add(item);
                } catch (DatasetException e) {
                    skipOrThrow(e);
                }
            }
            if (spec.batchSize() > 1) checkStackable(buckets);
            return new DatasetCache(spec, buckets);
        }

        private void skipOrThrow(DatasetException e) {
            if (!options.skipBadItems()) throw e;
            warnings.add(e.getMessage() + " [skipped: --skip_bad_items]");
        }

        private String where() {
            return "datasets[" + spec.index() + "]";
        }

        private List<Path> latentFiles() {
            Path dir = spec.cacheDirectory();
            if (!Files.isDirectory(dir)) {
                throw new DatasetException(dir + ": cache directory of " + where() + " does not exist; expected the folder "
                        + "musubi's caching scripts wrote to. hint: fix cache_directory, or " + LATENT_HINT);
            }
            List<Path> files;
            // Python's glob "*" skips names starting with '.', so musubi never sees hidden files.
            try (Stream<Path> s = Files.list(dir)) {
                files = s.filter(p -> {
                    String n = p.getFileName().toString();
                    return n.endsWith(LATENT_SUFFIX) && !n.startsWith(".") && Files.isRegularFile(p);
                }).sorted().toList();
            } catch (IOException e) {
                throw new DatasetException(dir + ": cannot list the cache directory of " + where() + " (" + e.getMessage()
                        + "). hint: check its permissions");
            }
            if (files.isEmpty()) {
                throw new DatasetException(dir + ": no latent caches (*" + LATENT_SUFFIX + ") for " + where()
                        + "; expected the output of musubi's wan_cache_latents.py. hint: run wan_cache_latents.py and "
                        + "wan_cache_text_encoder_outputs.py with this dataset config, or fix cache_directory");
            }
            return files;
        }

        private CacheItem readItem(Path latentFile) {
            String fileName = latentFile.getFileName().toString();
            String[] tokens = fileName.substring(0, fileName.length() - LATENT_SUFFIX.length()).split("_", -1);
            int prefixTokens = tokens.length - (spec.isVideo() ? 2 : 1);
            Matcher size = SIZE_TOKEN.matcher(tokens[tokens.length - 1]);
            Matcher frames = spec.isVideo() && prefixTokens >= 1 ? FRAMES_TOKEN.matcher(tokens[prefixTokens]) : null;
            if (prefixTokens < 1 || !size.matches() || (frames != null && !frames.matches())) {
                throw new DatasetException(latentFile + ": name does not follow musubi's latent cache pattern; expected "
                        + (spec.isVideo() ? "{video}_{start:05d}-{count:03d}_{W:04d}x{H:04d}_wan.safetensors in a video"
                        : "{image}_{W:04d}x{H:04d}_wan.safetensors in an image") + " dataset. hint: remove the file or "
                        + "move it out of " + spec.cacheDirectory());
            }
            String itemKey = String.join("_", Arrays.copyOfRange(tokens, 0, prefixTokens));
            int width = parseSize(latentFile, size.group(1));
            int height = parseSize(latentFile, size.group(2));
            int frameStart = frames == null ? 0 : parseSize(latentFile, frames.group(1));
            int frameCount = frames == null ? 1 : parseSize(latentFile, frames.group(2));
            if (width < 1 || height < 1 || frameCount < 1) {
                throw new DatasetException(latentFile + ": name gives size " + width + "x" + height + " and " + frameCount
                        + " frames; expected positive numbers. hint: " + LATENT_HINT);
            }

            Path textFile = latentFile.resolveSibling(itemKey + TEXT_SUFFIX);
            TextEntry text = textEntry(latentFile, textFile);

            String latentKey = null;
            TensorInfo info;
            try (SafeTensors st = SafeTensors.open(latentFile)) {
                for (String k : st.keys()) {
                    if (LATENT_KEY.matcher(k).matches()) {
                        if (latentKey != null) {
                            throw new DatasetException(latentFile + ": two latent keys, " + latentKey + " and " + k
                                    + "; expected one latents_{F}x{H}x{W}_{dtype}. hint: " + LATENT_HINT);
                        }
                        latentKey = k;
                    }
                }
                if (latentKey == null) {
                    throw new DatasetException(latentFile + ": no latents_{F}x{H}x{W}_{dtype} key (keys: " + st.keys()
                            + "); expected a musubi Wan latent cache. hint: " + LATENT_HINT);
                }
                info = st.info(latentKey);
            } catch (SafeTensorsException e) {
                throw new DatasetException(e.getMessage());
            }
            Matcher m = LATENT_KEY.matcher(latentKey);
            m.matches();
            long f = parseKeyNumber(latentFile, latentKey, m.group(1));
            long h = parseKeyNumber(latentFile, latentKey, m.group(2));
            long w = parseKeyNumber(latentFile, latentKey, m.group(3));
            checkDType(latentFile, latentKey, m.group(4), info.dtype(), LATENT_HINT);
            Shape shape = info.shape();
            if (shape.rank() == 4 && shape.dim(0) != LATENT_CHANNELS) {
                throw new DatasetException(latentFile + ": key " + latentKey + " has " + shape.dim(0) + " channels "
                        + brackets(shape) + ", expected " + LATENT_CHANNELS + " (the Wan2.1 VAE). hint: "
                        + "re-run musubi's wan_cache_latents.py with the Wan2.1 VAE (wan_2.1_vae.safetensors)");
            }
            Shape expected = Shape.of(LATENT_CHANNELS, f, h, w);
            if (!shape.equals(expected)) {
                throw new DatasetException(latentFile + ": key " + latentKey + " has shape " + brackets(shape)
                        + ", expected " + brackets(expected) + ". hint: " + LATENT_HINT);
            }
            int expectedFrames = FrameSpec.latentFrames(frameCount);
            if (f != expectedFrames) {
                throw new DatasetException(latentFile + ": key " + latentKey + " has " + f + " latent frames, expected "
                        + expectedFrames + " for " + frameCount + (frameCount == 1 ? " frame" : " frames")
                        + " ((frames-1)/4+1). hint: " + LATENT_HINT);
            }
            return new CacheItem(itemKey, latentFile, textFile, width, height, frameStart, frameCount, latentKey, shape,
                    info.dtype(), text.key(), text.shape(), text.dtype());
        }

        private TextEntry textEntry(Path latentFile, Path textFile) {
            if (!Files.isRegularFile(textFile)) {
                throw new DatasetException(latentFile + ": no text-encoder cache " + textFile.getFileName()
                        + " beside it; expected one per image or video. hint: " + TEXT_HINT);
            }
            Object known = textChecks.get(textFile);
            if (known == null) {
                try {
                    known = checkText(textFile);
                } catch (DatasetException e) {
                    known = e;
                }
                textChecks.put(textFile, known);
            }
            if (known instanceof DatasetException e) throw e;
            return (TextEntry) known;
        }

        private TextEntry checkText(Path textFile) {
            String key = null;
            TensorInfo info;
            try (SafeTensors st = SafeTensors.open(textFile)) {
                for (String k : st.keys()) {
                    if (TEXT_KEY.matcher(k).matches()) key = k;
                }
                if (key == null) {
                    throw new DatasetException(textFile + ": no varlen_t5_{dtype} key (keys: " + st.keys()
                            + "); expected a musubi Wan text-encoder cache. hint: " + TEXT_HINT);
                }
                info = st.info(key);
            } catch (SafeTensorsException e) {
                throw new DatasetException(e.getMessage());
            }
            Matcher m = TEXT_KEY.matcher(key);
            m.matches();
            checkDType(textFile, key, m.group(1), info.dtype(), TEXT_HINT);
            Shape shape = info.shape();
            if (shape.rank() != 2 || shape.dim(1) != TEXT_DIM) {
                throw new DatasetException(textFile + ": key " + key + " has shape " + brackets(shape)
                        + ", expected [L," + TEXT_DIM + "] (umT5-XXL output). hint: re-run musubi's "
                        + "wan_cache_text_encoder_outputs.py with the umT5-XXL encoder (models_t5_umt5-xxl-enc-bf16.pth)");
            }
            if (shape.dim(0) < 1 || shape.dim(0) > TEXT_LEN) {
                throw new DatasetException(textFile + ": key " + key + " has " + shape.dim(0) + " rows " + brackets(shape)
                        + ", expected 1 to " + TEXT_LEN + " (the prompt's tokens including EOS). hint: " + TEXT_HINT);
            }
            return new TextEntry(key, shape, info.dtype());
        }

        private static void checkDType(Path file, String key, String suffix, DType actual, String hint) {
            DType named = DType.fromTorchName(suffix);
            if (named != actual || !actual.isFloatingPoint()) {
                throw new DatasetException(file + ": key " + key + " holds " + actual + " data; expected "
                        + (named == null ? "a floating-point dtype named by the key" : named + " as its name says")
                        + ". hint: " + hint);
            }
        }

        private static int parseSize(Path file, String digits) {
            try {
                return Integer.parseInt(digits);
            } catch (NumberFormatException e) {
                throw new DatasetException(file + ": number " + digits + " in the name is too large; expected a pixel "
                        + "size or frame count. hint: " + LATENT_HINT);
            }
        }

        private static long parseKeyNumber(Path file, String key, String digits) {
            try {
                return Long.parseLong(digits);
            } catch (NumberFormatException e) {
                throw new DatasetException(file + ": key " + key + " has the number " + digits + ", too large for a latent"
                        + " size; expected latents_{F}x{H}x{W}_{dtype}. hint: " + LATENT_HINT);
            }
        }

        private Bucket bucketOf(CacheItem item) {
            Resolution r;
            try {
                r = selector.bucketFor(item.originalWidth(), item.originalHeight());
            } catch (IllegalArgumentException e) {
                throw new DatasetException(item.latentFile() + ": original size " + item.originalWidth() + "x"
                        + item.originalHeight() + " is below one 16-pixel bucket step with bucket_no_upscale; expected "
                        + "media of at least 16x16. hint: remove the file, or set bucket_no_upscale = false");
            }
            return new Bucket(r.width(), r.height(), item.frameCount());
        }

        /** Batches stack latents, so with batch_size > 1 a bucket's items must share one latent shape. */
        private void checkStackable(Map<Bucket, List<CacheItem>> buckets) {
            for (Map.Entry<Bucket, List<CacheItem>> e : buckets.entrySet()) {
                CacheItem first = e.getValue().get(0);
                for (CacheItem item : e.getValue()) {
                    if (!item.latentShape().equals(first.latentShape())) {
                        throw new DatasetException(spec.cacheDirectory() + ": bucket " + e.getKey() + " of " + where()
                                + " mixes latent shapes " + brackets(first.latentShape()) + " ("
                                + first.latentFile().getFileName() + ") and " + brackets(item.latentShape()) + " ("
                                + item.latentFile().getFileName() + "), which cannot be stacked into a batch of "
                                + spec.batchSize() + "; expected the bucket settings the caches were made with. hint: "
                                + "set enable_bucket = true (musubi always buckets videos when caching), or batch_size = 1");
                    }
                }
            }
        }
    }
}
