package dev.wanlora.cli.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.wanlora.cli.CommandRun;
import dev.wanlora.cli.Main;
import dev.wanlora.pipeline.UserError;
import dev.wanlora.cli.demo.SyntheticCaches;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.Backends;
import dev.wanlora.engine.flow.TimestepSampler;
import dev.wanlora.engine.flow.TimestepSampling;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.random.RandomSource;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraFormat;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.lora.SavePrecision;
import dev.wanlora.models.musubi.BatchSchedule;
import dev.wanlora.models.musubi.CacheDataset;
import dev.wanlora.models.musubi.CacheItem;
import dev.wanlora.models.musubi.DatasetConfig;
import dev.wanlora.models.musubi.DatasetException;
import dev.wanlora.models.wan.ComputePrecision;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights;
import dev.wanlora.pipeline.train.LossRecorder;
import dev.wanlora.pipeline.train.TrainState;
import dev.wanlora.pipeline.train.TrainStep;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15's fuzz run, in the suite: valid files of every kind wanlora reads (latent and text-encoder caches, LoRA
 * files, optimizer states, DiT checkpoints, dataset TOMLs, {@code state.json}, generic safetensors) are mutated at
 * random (JSON header fields set to extreme numbers, keys renamed, nesting thousands deep, bytes flipped, files cut,
 * NaN written into data, names given 20-digit numbers) and fed to the reader APIs the trainer uses and to
 * {@code inspect}/{@code dataset} in-process. Every case must be accepted or end in one documented user error (one
 * line through {@link Main}); anything else is a crash, and a case that runs past {@link #CASE_TIMEOUT_SECONDS} a
 * hang. Both must be zero.
 *
 * <p>Fixed seed, so CI repeats the same cases. Another pass: {@code -Dfuzz.seed=N -Dfuzz.scale=F} (F multiplies the
 * case counts), e.g. {@code mvn -o -pl cli test -Dtest=HostileInputFuzzTest -Dfuzz.seed=7 -Dfuzz.scale=3}.
 */
class HostileInputFuzzTest {

    private static final long SEED = Long.getLong("fuzz.seed", 15);
    private static final double SCALE = Double.parseDouble(System.getProperty("fuzz.scale", "1"));
    /** A real case takes milliseconds; seconds mean a loop that does not end (a hang in the issue's sense). */
    private static final long CASE_TIMEOUT_SECONDS = 20;

    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    @TempDir
    static Path dir;
    static Backend cpu;
    static WanDitConfig tiny;
    static Path seeds;
    static Path dit;
    static String tomlTemplate;
    static ExecutorService executor;

    /** Per kind: cases, accepted, user errors, and the first failures (crash or hang) in full. */
    private static final Map<String, int[]> COUNTS = new LinkedHashMap<>();
    private static final List<String> FAILURES = new ArrayList<>();

    @BeforeAll
    static void seeds() throws IOException {
        cpu = Backends.create("cpu");
        dit = Golden.dir("wan-tiny").resolve("model.safetensors");
        try (SafeTensors st = SafeTensors.open(dit, SafeTensors.DIT_PREFIXES)) {
            tiny = WanDitConfig.fromCheckpoint(st);
        }
        seeds = Files.createDirectories(dir.resolve("seeds"));
        Path images = Files.createDirectories(seeds.resolve("images"));
        Path videos = Files.createDirectories(seeds.resolve("videos"));
        SyntheticCaches.image(images, "cat", 64, 64, 7, 1);
        SyntheticCaches.video(videos, "walk", 64, 48, 5, 9, 3);
        tomlTemplate = """
                [general]
                batch_size = 1
                enable_bucket = true
                num_repeats = 1
                caption_extension = ".txt"

                [[datasets]]
                image_directory = "@IMAGES@"
                cache_directory = "@IMAGES@"
                resolution = [64, 64]
                bucket_no_upscale = false

                [[datasets]]
                video_directory = "@VIDEOS@"
                cache_directory = "@VIDEOS@"
                resolution = [64, 48]
                target_frames = [5]
                frame_extraction = "head"
                frame_stride = 1
                max_frames = 129
                """;
        try (LoraNetwork lora = LoraNetwork.create(cpu, tiny, 4, 4f, 1)) {
            LoraFile.write(seeds.resolve("lora.safetensors"), lora.toWeights(), SavePrecision.FP32, LoraFormat.MUSUBI, Map.of("ss_network_dim", "4"));
            for (String type : List.of("adamw", "adamw8bit")) {
                try (Optimizer opt = TrainStep.optimizer(cpu, OptimizerConfig.fromFlags(type, List.of()), lora)) {
                    opt.saveState(seeds.resolve(type + ".safetensors"));
                }
            }
            TrainState state = new TrainState(TrainState.FORMAT, "fuzz", 5, 1, 1, 1, 4, 77, 3, new int[0],
                    List.of(0.25, 0.5), 1.7e9, 42, 1.7e9);
            state.write(seeds.resolve("state"), p -> Files.copy(seeds.resolve("lora.safetensors"), p, java.nio.file.StandardCopyOption.REPLACE_EXISTING),
                    p -> Files.copy(seeds.resolve("adamw.safetensors"), p, java.nio.file.StandardCopyOption.REPLACE_EXISTING));
        }
        // a generic file: every dtype, a 0-d and an empty tensor, metadata
        ObjectNode header = NODES.objectNode();
        header.putObject("__metadata__").put("format", "pt").put("note", "fuzz seed");
        long offset = 0;
        ByteBuffer data = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
        String[][] tensors = {{"a.weight", "F32", "2,3"}, {"b", "BF16", "4"}, {"c.scalar", "F64", ""}, {"d.ids", "I64", "3"},
                {"e.mask", "BOOL", "5"}, {"f.fp8", "F8_E4M3", "2,2"}, {"g.empty", "F16", "0,7"}, {"blocks.3.x", "I32", "2"}};
        Map<String, Integer> sizes = Map.of("F32", 4, "BF16", 2, "F64", 8, "I64", 8, "BOOL", 1, "F8_E4M3", 1, "F16", 2, "I32", 4);
        Random r = new Random(3);
        for (String[] t : tensors) {
            ObjectNode e = header.putObject(t[0]);
            e.put("dtype", t[1]);
            ArrayNode shape = e.putArray("shape");
            long n = 1;
            for (String d : t[2].isEmpty() ? new String[0] : t[2].split(",")) {
                shape.add(Long.parseLong(d));
                n *= Long.parseLong(d);
            }
            long bytes = n * sizes.get(t[1]);
            e.putArray("data_offsets").add(offset).add(offset + bytes);
            for (long i = 0; i < bytes; i++) data.put((byte) (t[1].equals("BOOL") ? r.nextInt(2) : r.nextInt(120)));
            offset += bytes;
        }
        Files.write(seeds.resolve("generic.safetensors"), safetensors(header.toString(), Arrays.copyOf(data.array(), (int) offset)));
        executor = Executors.newSingleThreadExecutor(daemon());
    }

    @AfterAll
    static void close() {
        executor.shutdownNow();
        cpu.close();
    }

    @Test
    void everyMutatedInputIsAcceptedOrEndsInOneLine() throws Exception {
        long started = System.nanoTime();
        Random random = new Random(SEED);
        // case counts by cost: DiT cases load a 6.5 MB checkpoint, the others read kilobytes
        Map<String, Integer> plan = new LinkedHashMap<>();
        plan.put("generic", 600);
        plan.put("cache", 500);
        plan.put("text-cache", 300);
        plan.put("toml", 500);
        plan.put("lora", 350);
        plan.put("optimizer", 350);
        plan.put("state", 400);
        plan.put("dit", 120);
        List<String> order = new ArrayList<>();
        plan.forEach((kind, n) -> { for (int i = 0; i < Math.max(1, Math.round(n * SCALE)); i++) order.add(kind); });
        java.util.Collections.shuffle(order, random);
        for (int i = 0; i < order.size(); i++) {
            long caseSeed = random.nextLong();
            runCase(order.get(i), i, caseSeed);
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        int crashes = 0, hangs = 0, total = 0;
        for (var e : COUNTS.entrySet()) {
            int[] c = e.getValue();
            total += c[0];
            crashes += c[3];
            hangs += c[4];
            System.out.printf(java.util.Locale.ROOT, "fuzz[%s] %d cases (%d checks, %.1f s): %d accepted, %d user errors, %d crashes, %d hangs%n",
                    e.getKey(), c[0], c[1] + c[2] + c[3] + c[4], c[5] / 1e3, c[1], c[2], c[3], c[4]);
        }
        System.out.printf(java.util.Locale.ROOT, "fuzz: seed %d, %d cases in %.1f s: %d crashes, %d hangs%n", SEED, total, seconds, crashes, hangs);
        FAILURES.stream().limit(15).forEach(System.out::println);
        if (!FAILURES.isEmpty()) {
            Path report = Path.of("target", "fuzz-failures.txt").toAbsolutePath();
            Files.createDirectories(report.getParent());
            Files.write(report, FAILURES);
            System.out.println("fuzz: every failure in " + report);
        }
        assertTrue(FAILURES.isEmpty(), FAILURES.size() + " failures; first: " + (FAILURES.isEmpty() ? "" : FAILURES.getFirst()));
    }

    // ------------------------------------------------------------------------------------------------ cases

    private void runCase(String kind, int index, long caseSeed) throws IOException {
        Random r = new Random(caseSeed);
        Path caseDir = Files.createDirectories(dir.resolve("case-" + index));
        StringBuilder what = new StringBuilder();
        List<Check> checks = new ArrayList<>();
        switch (kind) {
            case "generic" -> {
                Path file = caseDir.resolve(r.nextInt(8) == 0 ? shardName(r) : "generic.safetensors");
                Files.write(file, mutateSafetensors(read("generic.safetensors"), r, what));
                checks.add(new Check("SafeTensors", () -> readEverything(file)));
                checks.add(inspect(file));
            }
            case "cache", "text-cache" -> {
                boolean isVideo = r.nextBoolean();
                Path cache = copyTree(seeds.resolve(isVideo ? "videos" : "images"), caseDir.resolve("cache"));
                Path target;
                try (Stream<Path> s = Files.list(cache)) {
                    String suffix = kind.equals("cache") ? "_wan.safetensors" : "_wan_te.safetensors";
                    target = s.filter(p -> p.getFileName().toString().endsWith(suffix)).findFirst().orElseThrow();
                }
                if (kind.equals("cache") && r.nextInt(4) == 0) {
                    target = Files.move(target, target.resolveSibling(mutateName(target.getFileName().toString(), r, what)));
                } else {
                    Files.write(target, mutateSafetensors(Files.readAllBytes(target), r, what));
                }
                Path toml = Files.writeString(caseDir.resolve("dataset.toml"), config(isVideo, cache));
                boolean skip = r.nextInt(4) == 0;
                Path mutated = target;
                checks.add(new Check("discover+load", () -> discoverAndLoad(toml, skip)));
                checks.add(inspect(mutated));
                checks.add(command("dataset", "--dataset_config", toml.toString()));
            }
            case "toml" -> {
                Path toml = Files.writeString(caseDir.resolve("dataset.toml"), mutateToml(r, what));
                checks.add(new Check("discover+epoch", () -> discoverAndLoad(toml, false)));
                checks.add(command("dataset", "--dataset_config", toml.toString()));
            }
            case "lora" -> {
                Path file = Files.write(caseDir.resolve("lora.safetensors"), mutateSafetensors(read("lora.safetensors"), r, what));
                checks.add(new Check("LoraFile+LoraNetwork", () -> {
                    try (LoraNetwork n = LoraNetwork.fromWeights(cpu, tiny, LoraFile.read(file).modules(), file.toString())) {
                        n.numParameters();
                    }
                }, true));
                checks.add(inspect(file));
            }
            case "optimizer" -> {
                String type = r.nextBoolean() ? "adamw" : "adamw8bit";
                byte[] seed = read(type + ".safetensors");
                Path file = Files.write(caseDir.resolve("optimizer.safetensors"),
                        r.nextInt(3) == 0 ? mutateOptimizerMetadata(seed, r, what) : mutateSafetensors(seed, r, what));
                checks.add(new Check("Optimizer.loadState", () -> {
                    try (LoraNetwork lora = LoraNetwork.create(cpu, tiny, 4, 4f, 1);
                         Optimizer opt = TrainStep.optimizer(cpu, OptimizerConfig.fromFlags(type, List.of()), lora)) {
                        opt.loadState(file);
                    }
                }, true));
                checks.add(inspect(file));
            }
            case "state" -> {
                Path state = copyTree(seeds.resolve("state"), caseDir.resolve("state"));
                Path json = state.resolve(TrainState.STATE_FILE);
                Files.writeString(json, mutateJson(Files.readString(json), r, what));
                checks.add(new Check("TrainState", () -> resume(state)));
            }
            case "dit" -> {
                Path file = Files.write(caseDir.resolve("model.safetensors"), mutateSafetensors(Files.readAllBytes(dit), r, what));
                checks.add(new Check("WanDitConfig+WanDitWeights", () -> loadDit(file), true));
                checks.add(inspect(file));
            }
            default -> throw new IllegalStateException(kind);
        }
        long started = System.nanoTime();
        int[] counts = COUNTS.computeIfAbsent(kind, k -> new int[6]);
        counts[0]++;
        for (Check check : checks) {
            String failure = check.run();
            int slot = failure == null ? (check.lastWasError ? 2 : 1) : failure.startsWith("HANG") ? 4 : 3;
            counts[slot]++;
            if (failure != null) {
                FAILURES.add("fuzz[" + kind + " #" + index + " seed " + caseSeed + "] " + check.name + " on " + what + ": " + failure);
            }
        }
        counts[5] += (int) ((System.nanoTime() - started) / 1_000_000);
        deleteTree(caseDir);
    }

    private static void readEverything(Path file) {
        try (SafeTensors st = SafeTensors.open(file)) {
            for (String key : st.keys()) {
                var info = st.info(key);
                st.data(key);
                if (info.dtype().isFloatingPoint()) st.floats(key);
            }
        }
    }

    /** What the trainer does with a dataset config: load, discover, count, build an epoch, read every item. */
    private static void discoverAndLoad(Path toml, boolean skipBadItems) {
        CacheDataset data = CacheDataset.discover(DatasetConfig.load(toml), new CacheDataset.Options(skipBadItems));
        data.stepsPerEpoch(1);
        data.maxTrainSteps(2, 1);
        // The first 256 batches read every distinct cache of these one- or two-item datasets many times over; a
        // mutated num_repeats (e.g. 10000) would otherwise make the check read 20,000 items and outlast the case's 20 s
        // on a busy machine without testing anything more.
        int batches = 0;
        for (var batch : new BatchSchedule(data, 1).epoch(1)) {
            for (CacheItem item : batch.items()) {
                item.readLatents();
                item.readText();
            }
            if (++batches == 256) break;
        }
    }

    /** The resume path before the DiT loads: state.json, its fields against a run, then the pieces built from it. */
    private static void resume(Path state) {
        TrainState s = TrainState.read(state);
        s.checkAgainst(state, 2, 2, 4, 0);
        LossRecorder losses = new LossRecorder(s.lossHistory());
        losses.add(s.epochPosition(), 0.5);
        losses.average();
        TimestepSampler sampler = TimestepSampler.restore(TimestepSampler.Config.defaults(TimestepSampling.SHIFT),
                new TimestepSampler.State(new RandomSource.State(s.samplerSeed(), s.samplerCounter()), s.samplerBucketPool()));
        sampler.sample(2);
    }

    private static void loadDit(Path file) {
        try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES)) {
            WanDitConfig config = WanDitConfig.fromCheckpoint(st);
            st.info("patch_embedding.weight").dtype();
            st.info("blocks.0.self_attn.q.weight").dtype();
            try (WanDitWeights w = WanDitWeights.load(cpu, st, config, ComputePrecision.FP32, WanDitWeights.Quantization.NONE,
                    true, WanDitWeights.BlockSwap.NONE)) {
                w.hashCode();
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ checks

    /** One target run on one mutated input; {@code wrapsIllegalArgument}: the trainer turns its IAE into a UserError. */
    private static final class Check {
        final String name;
        final ThrowingRunnable body;
        final boolean wrapsIllegalArgument;
        boolean lastWasError;

        Check(String name, ThrowingRunnable body) {
            this(name, body, false);
        }

        Check(String name, ThrowingRunnable body, boolean wrapsIllegalArgument) {
            this.name = name;
            this.body = body;
            this.wrapsIllegalArgument = wrapsIllegalArgument;
        }

        /** Null when accepted or one clear user error; else what went wrong. */
        String run() {
            Future<?> f = executor.submit(() -> {
                body.run();
                return null;
            });
            try {
                f.get(CASE_TIMEOUT_SECONDS, TimeUnit.SECONDS);
                return null;
            } catch (TimeoutException e) {
                f.cancel(true);
                executor.shutdownNow(); // the stuck thread is abandoned (daemon); later cases get a fresh one
                executor = Executors.newSingleThreadExecutor(daemon());
                return "HANG (no result after " + CASE_TIMEOUT_SECONDS + " s)";
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return "interrupted";
            } catch (ExecutionException e) {
                Throwable t = e.getCause();
                if (t instanceof CommandFailure c) return c.getMessage();
                boolean isUserType = t instanceof UserError || t instanceof SafeTensorsException || t instanceof DatasetException
                        || t instanceof UncheckedIOException || (wrapsIllegalArgument && t instanceof IllegalArgumentException);
                String problem = isUserType ? unclear(t.getMessage()) : "not a user error";
                if (problem == null) {
                    lastWasError = true;
                    return null;
                }
                return "CRASH " + problem + ": " + stack(t);
            }
        }
    }

    @FunctionalInterface
    private interface ThrowingRunnable {
        void run() throws Exception;
    }

    private static final class CommandFailure extends RuntimeException {
        CommandFailure(String message) {
            super(message);
        }
    }

    /** wanlora ARGS in-process: exit 0, or exit 2 with exactly one line on stderr and no stack trace. */
    private static Check command(String... args) {
        return new Check(args[0], () -> {
            CommandRun run;
            try {
                run = execute(args);
            } catch (Throwable t) {
                throw new CommandFailure("CRASH wanlora " + args[0] + " threw: " + stack(t));
            }
            if (run.exitCode() == 0) return;
            String problem = run.exitCode() != Main.USER_ERROR ? "exit code " + run.exitCode()
                    : run.err().lines().count() != 1 ? run.err().lines().count() + " lines on stderr"
                    : run.err().contains("Exception") || run.err().contains("\tat ") ? "a stack trace" : unclear(run.err());
            if (problem != null) throw new CommandFailure("CRASH wanlora " + args[0] + ": " + problem + ": " + abbreviate(run.err()));
            throw new UserError(run.err().strip());
        });
    }

    /**
     * {@link CommandRun#run} on one reused {@link Main#commandLine()}: picocli resets every option before each parse,
     * and building the command line (train's ~200 options) would otherwise cost more than the case.
     */
    private static CommandRun execute(String... args) {
        if (commandLine == null) commandLine = Main.commandLine();
        java.io.StringWriter out = new java.io.StringWriter(), err = new java.io.StringWriter();
        commandLine.setOut(new java.io.PrintWriter(out, true));
        commandLine.setErr(new java.io.PrintWriter(err, true));
        int code = commandLine.execute(args);
        return new CommandRun(code, out.toString(), err.toString());
    }

    private static picocli.CommandLine commandLine;

    private static Check inspect(Path file) {
        return command("inspect", file.toString());
    }

    /** Why a user-error message is not a clear line, or null: missing, or a bare Java exception text. */
    private static final Pattern RAW_JAVA = Pattern.compile(
            "^(null|For input string.*|Index -?\\d+ out of bounds.*|Cannot invoke .*|/ by zero|integer overflow|Java heap space)$");

    private static String unclear(String message) {
        if (message == null || message.isBlank()) return "no message";
        String line = message.strip();
        int colon = line.indexOf(": ");
        String tail = colon < 0 ? line : line.substring(line.lastIndexOf(": ") + 2);
        if (RAW_JAVA.matcher(line).matches() || RAW_JAVA.matcher(tail).matches()) return "a bare Java message '" + line + "'";
        return null;
    }

    private static String stack(Throwable t) {
        StringBuilder b = new StringBuilder(t.toString());
        StackTraceElement[] st = t.getStackTrace();
        for (int i = 0; i < Math.min(6, st.length); i++) b.append(" | at ").append(st[i]);
        return abbreviate(b.toString());
    }

    private static String abbreviate(String s) {
        String line = s.replace("\n", "\\n");
        return line.length() <= 1500 ? line : line.substring(0, 1500) + "...";
    }

    // ------------------------------------------------------------------------------------------------ mutators

    /** Numbers that break parsers and size arithmetic. */
    private static JsonNode extreme(Random r) {
        return switch (r.nextInt(22)) {
            case 0 -> NODES.numberNode(0);
            case 1 -> NODES.numberNode(1);
            case 2 -> NODES.numberNode(-1);
            case 3 -> NODES.numberNode(Integer.MAX_VALUE);
            case 4 -> NODES.numberNode(1L << 31);
            case 5 -> NODES.numberNode(1L << 32);
            case 6 -> NODES.numberNode((1L << 53) + 1);
            case 7 -> NODES.numberNode(Long.MAX_VALUE);
            case 8 -> NODES.numberNode(new BigInteger("18446744073709551616"));
            case 9 -> NODES.numberNode(new BigInteger("99999999999999999999"));
            case 10 -> NODES.numberNode(1.5);
            case 11 -> NODES.numberNode(1e30);
            case 12 -> NODES.numberNode(-0.0);
            case 13 -> NODES.textNode("8");
            case 14 -> NODES.nullNode();
            case 15 -> NODES.booleanNode(true);
            case 16 -> NODES.arrayNode();
            case 17 -> NODES.objectNode();
            case 18 -> NODES.numberNode(Long.MIN_VALUE);
            case 19 -> NODES.numberNode(r.nextInt(70000));
            case 20 -> NODES.numberNode(1_000_000_000);
            default -> NODES.numberNode(r.nextInt(10));
        };
    }

    private static final String[] DIGITS = {"99999999999999999999", "2147483648", "4294967296", "2147483647", "0", "00",
            "9223372036854775808", "1", "65536"};
    private static final String[] ODD_KEYS = {"", "\n", "%", "%-0s", "%n%s", "__metadata__x", "a\u0000b", "\u2028", "ü🙂",
            "blocks.2147483648.self_attn.q.weight", "blocks.99999999999999999999.ffn.0.weight", "latents_99999999999999999999x1x1_bfloat16",
            "varlen_t5_bfloat16", "latents_1x8x8_bfloat16", "lora_unet_blocks_0_self_attn_q.lora_down.weight",
            "diffusion_model.blocks.0.self_attn.q.lora_A.weight", "model.diffusion_model.patch_embedding.weight"};
    private static final Object[] DTYPES = {"F32", "BF16", "F16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3",
            "F8_E5M2", "U64", "X", "", 5, null};

    /** A valid safetensors file mutated once or a few times; what was done is appended to {@code what}. */
    static byte[] mutateSafetensors(byte[] file, Random r, StringBuilder what) {
        int rounds = 1 + (r.nextInt(4) == 0 ? r.nextInt(3) : 0);
        for (int i = 0; i < rounds; i++) file = mutateOnce(file, r, what);
        return file;
    }

    private static byte[] mutateOnce(byte[] file, Random r, StringBuilder what) {
        if (file.length < 8) return file;
        long headerLength = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        boolean hasHeader = headerLength >= 2 && headerLength <= file.length - 8;
        int choice = r.nextInt(12);
        if (hasHeader && choice < 7) {
            String headerText = new String(file, 8, (int) headerLength, StandardCharsets.UTF_8);
            byte[] data = Arrays.copyOfRange(file, 8 + (int) headerLength, file.length);
            JsonNode root;
            try {
                root = JSON.readTree(headerText);
            } catch (IOException e) {
                return flip(file, r, what);
            }
            if (!(root instanceof ObjectNode header)) return flip(file, r, what);
            String text = mutateHeader(header, r, what);
            byte[] out = safetensors(text, data);
            if (r.nextInt(10) == 0) { // a stale length field
                ByteBuffer.wrap(out, 0, 8).order(ByteOrder.LITTLE_ENDIAN).putLong(headerLength);
                what.append(" (length field kept)");
            }
            return out;
        }
        return switch (choice) {
            case 7 -> {
                int cut = r.nextInt(file.length + 1);
                what.append("truncated to ").append(cut).append(" bytes; ");
                yield Arrays.copyOf(file, cut);
            }
            case 8 -> {
                long[] lengths = {0, 1, 2, file.length, file.length - 8, -1, Long.MAX_VALUE, 1L << 32, 100_000_001, headerLength + 1};
                long v = lengths[r.nextInt(lengths.length)];
                byte[] out = file.clone();
                ByteBuffer.wrap(out, 0, 8).order(ByteOrder.LITTLE_ENDIAN).putLong(v);
                what.append("length field ").append(Long.toUnsignedString(v)).append("; ");
                yield out;
            }
            case 9 -> hasHeader ? nonFinite(file, (int) headerLength, r, what) : flip(file, r, what);
            case 10 -> {
                byte[] extra = new byte[1 + r.nextInt(64)];
                r.nextBytes(extra);
                what.append("appended ").append(extra.length).append(" bytes; ");
                byte[] out = Arrays.copyOf(file, file.length + extra.length);
                System.arraycopy(extra, 0, out, file.length, extra.length);
                yield out;
            }
            default -> flip(file, r, what);
        };
    }

    private static byte[] flip(byte[] file, Random r, StringBuilder what) {
        byte[] out = file.clone();
        int n = 1 + r.nextInt(8);
        long headerLength = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        int span = headerLength > 0 && headerLength < file.length - 8 && r.nextBoolean() ? (int) headerLength + 8 : file.length;
        for (int i = 0; i < n; i++) out[r.nextInt(span)] = (byte) r.nextInt(256);
        what.append("flipped ").append(n).append(" bytes; ");
        return out;
    }

    /** Writes NaN or ±Inf bit patterns into the data section (as float32, bfloat16 or float16 happen to read them). */
    private static byte[] nonFinite(byte[] file, int headerLength, Random r, StringBuilder what) {
        byte[] out = file.clone();
        int start = 8 + headerLength;
        if (out.length - start < 4) return out;
        int at = start + 2 * r.nextInt((out.length - start) / 2 - 1);
        byte[][] patterns = {{0x00, 0x00, (byte) 0xc0, 0x7f}, {0x00, 0x00, (byte) 0x80, 0x7f}, {0x00, 0x00, (byte) 0x80, (byte) 0xff},
                {(byte) 0xc0, 0x7f, (byte) 0xc0, 0x7f}, {0x00, 0x7e, 0x00, 0x7e}};
        byte[] p = patterns[r.nextInt(patterns.length)];
        for (int i = 0; i < p.length && at + i < out.length; i++) out[at + i] = p[i];
        what.append("non-finite bits at byte ").append(at).append("; ");
        return out;
    }

    private static String mutateHeader(ObjectNode header, Random r, StringBuilder what) {
        List<String> keys = new ArrayList<>();
        header.fieldNames().forEachRemaining(keys::add);
        List<String> tensors = keys.stream().filter(k -> !k.equals("__metadata__")).toList();
        String key = tensors.isEmpty() ? null : tensors.get(r.nextInt(tensors.size()));
        JsonNode entry = key == null ? null : header.get(key);
        int op = r.nextInt(14);
        if (entry instanceof ObjectNode e && op <= 8) {
            switch (op) {
                case 0, 1 -> {
                    JsonNode shape = e.get("shape");
                    if (shape instanceof ArrayNode a && !a.isEmpty()) {
                        int i = r.nextInt(a.size());
                        JsonNode v = extreme(r);
                        a.set(i, v);
                        what.append(key).append(".shape[").append(i).append("] = ").append(v).append("; ");
                    } else {
                        e.set("shape", extreme(r));
                        what.append(key).append(".shape = ").append(e.get("shape")).append("; ");
                    }
                }
                case 2 -> {
                    int i = r.nextInt(2);
                    JsonNode v = extreme(r);
                    if (e.get("data_offsets") instanceof ArrayNode a && a.size() == 2) a.set(i, v); else e.set("data_offsets", v);
                    what.append(key).append(".data_offsets[").append(i).append("] = ").append(v).append("; ");
                }
                case 3 -> {
                    // a consistent header for an odd shape: zero elements, huge dims, rank 0 or 1
                    long[][] shapes = {{}, {0}, {1L << 32, 0}, {0, 1L << 32}, {1}, {1L << 31, 0, 3}, {2, 2, 2, 2, 2, 2, 2, 2}, {0, 0}};
                    long[] s = shapes[r.nextInt(shapes.length)];
                    ArrayNode a = NODES.arrayNode();
                    long n = 1;
                    for (long d : s) {
                        a.add(d);
                        n *= d;
                    }
                    e.set("shape", a);
                    long begin = e.path("data_offsets").path(0).asLong(0);
                    int size = switch (e.path("dtype").asText()) {
                        case "F64", "I64" -> 8;
                        case "F32", "I32" -> 4;
                        case "BF16", "F16" -> 2;
                        default -> 1;
                    };
                    e.set("data_offsets", NODES.arrayNode().add(begin).add(begin + n * size));
                    what.append(key).append(" reshaped to ").append(Arrays.toString(s)).append("; ");
                }
                case 4 -> {
                    Object d = DTYPES[r.nextInt(DTYPES.length)];
                    if (d == null) e.remove("dtype"); else if (d instanceof String s) e.put("dtype", s); else e.put("dtype", (Integer) d);
                    what.append(key).append(".dtype = ").append(d).append("; ");
                }
                case 5 -> {
                    String[] fields = {"dtype", "shape", "data_offsets"};
                    String f = fields[r.nextInt(3)];
                    e.remove(f);
                    what.append(key).append(" without ").append(f).append("; ");
                }
                case 6 -> {
                    header.remove(key);
                    String renamed = renameKey(key, r);
                    header.set(renamed, e);
                    what.append("key '").append(key).append("' renamed '").append(renamed.replace("\n", "\\n")).append("'; ");
                }
                case 7 -> {
                    header.remove(key);
                    what.append("removed '").append(key).append("'; ");
                }
                default -> {
                    String other = key + ".copy";
                    header.set(other, e.deepCopy());
                    what.append("'").append(key).append("' duplicated as '").append(other).append("'; ");
                }
            }
            return header.toString();
        }
        switch (op % 6) {
            case 0 -> {
                // deep nesting, done in text: a node this deep would overflow the harness's own serializer
                int depth = new int[] {65, 999, 1001, 5000, 100_000}[r.nextInt(5)];
                String target = key != null && r.nextBoolean() ? key : "__metadata__";
                header.put(target, "@@DEEP@@");
                what.append("'").append(target).append("' nested ").append(depth).append(" deep; ");
                return header.toString().replace("\"@@DEEP@@\"", "[".repeat(depth) + "]".repeat(depth));
            }
            case 1 -> {
                JsonNode[] metas = {NODES.arrayNode(), NODES.numberNode(5), NODES.objectNode().set("a", NODES.objectNode()),
                        NODES.objectNode().put("k", "v".repeat(20_000)), NODES.objectNode().put("", ""), NODES.nullNode()};
                JsonNode m = metas[r.nextInt(metas.length)];
                header.set("__metadata__", m);
                what.append("__metadata__ = ").append(abbreviate(m.toString()).substring(0, Math.min(40, m.toString().length()))).append("; ");
                return header.toString();
            }
            case 2 -> {
                String[] roots = {"[]", "5", "\"x\"", "null", "", "{", "{}", "{\"a\":1}", "{} {}", "\uFEFF{}"};
                String root = roots[r.nextInt(roots.length)];
                what.append("header '").append(root).append("'; ");
                return root;
            }
            case 3 -> {
                if (key == null) return header.toString();
                String text = header.toString();
                String dup = "\"" + key + "\":" + header.get(key) + ",";
                what.append("duplicate key '").append(key).append("'; ");
                return "{" + dup + text.substring(1);
            }
            case 4 -> {
                String odd = ODD_KEYS[r.nextInt(ODD_KEYS.length)];
                ObjectNode e = NODES.objectNode().put("dtype", "F32");
                e.putArray("shape").add(0);
                e.putArray("data_offsets").add(0).add(0);
                header.set(odd, e);
                what.append("added empty tensor '").append(odd.replace("\n", "\\n")).append("'; ");
                return header.toString();
            }
            default -> {
                if (key == null) return header.toString();
                JsonNode e = header.remove(key);
                String renamed = renameKey(key, r);
                header.set(renamed, e);
                what.append("key '").append(key).append("' renamed '").append(renamed.replace("\n", "\\n")).append("'; ");
                return header.toString();
            }
        }
    }

    private static String renameKey(String key, Random r) {
        Matcher digits = Pattern.compile("\\d+").matcher(key);
        if (digits.find() && r.nextBoolean()) {
            List<int[]> runs = new ArrayList<>();
            do runs.add(new int[] {digits.start(), digits.end()}); while (digits.find());
            int[] run = runs.get(r.nextInt(runs.size()));
            return key.substring(0, run[0]) + DIGITS[r.nextInt(DIGITS.length)] + key.substring(run[1]);
        }
        return ODD_KEYS[r.nextInt(ODD_KEYS.length)];
    }

    /** A cache file name with one number replaced by an extreme one, or an odd character added. */
    private static String mutateName(String name, Random r, StringBuilder what) {
        String renamed;
        if (r.nextInt(5) == 0) {
            String[] odd = {"\n", "%", " ", "_", "x", "-", "__"};
            int at = r.nextInt(name.length() - "_wan.safetensors".length());
            renamed = name.substring(0, at) + odd[r.nextInt(odd.length)] + name.substring(at);
        } else {
            renamed = renameKey(name, r);
            if (!renamed.endsWith("_wan.safetensors")) renamed = renamed + "_0064x0064_wan.safetensors";
        }
        renamed = renamed.replace('\u0000', '_').replace('/', '_'); // the only characters a Linux name cannot hold
        what.append("file renamed '").append(renamed.replace("\n", "\\n")).append("'; ");
        return renamed;
    }

    /** The wanlora.optimizer metadata JSON with one field changed. */
    private static byte[] mutateOptimizerMetadata(byte[] file, Random r, StringBuilder what) throws IOException {
        long headerLength = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        ObjectNode header = (ObjectNode) JSON.readTree(new String(file, 8, (int) headerLength, StandardCharsets.UTF_8));
        ObjectNode meta = (ObjectNode) header.get("__metadata__");
        String settings = meta.get("wanlora.optimizer").asText();
        String mutated = mutateJson(settings, r, what);
        meta.put("wanlora.optimizer", mutated);
        return safetensors(header.toString(), Arrays.copyOfRange(file, 8 + (int) headerLength, file.length));
    }

    /** A JSON object with one field set to an odd value or removed, or the text damaged. */
    static String mutateJson(String text, Random r, StringBuilder what) throws IOException {
        int op = r.nextInt(10);
        if (op == 0) {
            if (r.nextInt(4) == 0) {
                String[] whole = {"null", "[]", "5", "\"x\"", "", "{}"};
                String w = whole[r.nextInt(whole.length)];
                what.append("json is '").append(w).append("'; ");
                return w;
            }
            int cut = r.nextInt(text.length() + 1);
            what.append("json truncated at ").append(cut).append("; ");
            return text.substring(0, cut);
        }
        if (op == 1) {
            int depth = new int[] {100, 1001, 5000, 100_000}[r.nextInt(4)];
            what.append("json nested ").append(depth).append(" deep; ");
            return "{\"lossHistory\":" + "[".repeat(depth) + "]".repeat(depth) + "}";
        }
        ObjectNode root = (ObjectNode) JSON.readTree(text);
        List<String> fields = new ArrayList<>();
        root.fieldNames().forEachRemaining(fields::add);
        String field = fields.get(r.nextInt(fields.size()));
        if (op == 2) {
            root.remove(field);
            what.append("json without ").append(field).append("; ");
            return root.toString();
        }
        JsonNode v;
        if (op <= 4 && root.get(field).isArray()) {
            ArrayNode a = root.get(field).deepCopy();
            JsonNode[] elements = {NODES.textNode("NaN"), NODES.textNode("Infinity"), NODES.nullNode(), NODES.numberNode(-1),
                    NODES.numberNode(5), NODES.numberNode(1e308), NODES.textNode("x"), NODES.numberNode(Integer.MAX_VALUE)};
            a.add(elements[r.nextInt(elements.length)]);
            v = a;
        } else {
            JsonNode[] odd = {NODES.numberNode(999), NODES.numberNode(-3), NODES.textNode("NaN"), NODES.numberNode(1e300)};
            v = r.nextInt(3) == 0 ? odd[r.nextInt(odd.length)] : extreme(r);
        }
        root.set(field, v);
        what.append("json ").append(field).append(" = ").append(abbreviate(v.toString())).append("; ");
        return root.toString();
    }

    private static final String[] TOML_VALUES = {"0", "-1", "1", "2147483647", "2147483648", "99999999999999999999",
            "1000000000", "[1000000000, 1000000000]", "[2147483647, 2147483647]", "[0, 0]", "[16, 16]", "[32, 32]", "1.5",
            "1e9", "nan", "inf", "true", "\"x\"", "\"\"", "[]", "[[1]]", "{}", "\"/nonexistent\"", "\"a\\nb\"", "[1, 5, 9]",
            "[-5]", "[1000000]", "10000", "10001", "100000", "16", "8193", "[8192, 8192]", "[4096, 4096]"};
    private static final String[] TOML_KEYS = {"batch_size", "num_repeats", "resolution", "enable_bucket", "bucket_no_upscale",
            "target_frames", "frame_stride", "frame_sample", "max_frames", "source_fps", "frame_extraction", "cache_directory",
            "caption_extension", "image_directory", "video_directory", "resolutoin"};

    /** The dataset TOML with a line's value replaced, a line removed or duplicated, a key added, or junk inserted. */
    private static String mutateToml(Random r, StringBuilder what) {
        String text = tomlTemplate.replace("@IMAGES@", seeds.resolve("images").toString()).replace("@VIDEOS@", seeds.resolve("videos").toString());
        List<String> lines = new ArrayList<>(text.lines().toList());
        int rounds = 1 + r.nextInt(3);
        for (int k = 0; k < rounds; k++) {
            int i = r.nextInt(lines.size());
            String line = lines.get(i);
            switch (r.nextInt(8)) {
                case 0, 1, 2 -> {
                    if (line.contains(" = ")) {
                        String v = TOML_VALUES[r.nextInt(TOML_VALUES.length)];
                        lines.set(i, line.substring(0, line.indexOf(" = ")) + " = " + v);
                        what.append("line ").append(i).append(" = ").append(v).append("; ");
                    }
                }
                case 3 -> {
                    String key = TOML_KEYS[r.nextInt(TOML_KEYS.length)];
                    String v = TOML_VALUES[r.nextInt(TOML_VALUES.length)];
                    lines.add(i, key + " = " + v);
                    what.append("added ").append(key).append(" = ").append(v).append(" at ").append(i).append("; ");
                }
                case 4 -> {
                    lines.remove(i);
                    what.append("removed line ").append(i).append("; ");
                }
                case 5 -> {
                    lines.add(i, line);
                    what.append("duplicated line ").append(i).append("; ");
                }
                case 6 -> {
                    int depth = new int[] {100, 1001, 5000}[r.nextInt(3)];
                    lines.add(i, "target_frames = " + "[".repeat(depth) + "1" + "]".repeat(depth));
                    what.append("nested array ").append(depth).append(" deep; ");
                }
                default -> {
                    String junk = String.valueOf("[]{}=\"'#\\\n,.\u0000\uFFFD".charAt(r.nextInt(14)));
                    int at = r.nextInt(line.length() + 1);
                    lines.set(i, line.substring(0, at) + junk + line.substring(at));
                    what.append("junk ").append(junk.replace("\n", "\\n")).append(" in line ").append(i).append("; ");
                }
            }
        }
        return String.join("\n", lines) + "\n";
    }

    /** A config with one dataset: the image or the video seed's, reading caches from {@code cache}. */
    private static String config(boolean isVideo, Path cache) {
        String[] parts = tomlTemplate.split("\n\\[\\[datasets]]\n");
        String general = parts[0];
        String dataset = parts[isVideo ? 2 : 1].replace(isVideo ? "@VIDEOS@" : "@IMAGES@", cache.toString());
        return general + "\n[[datasets]]\n" + dataset;
    }

    private static String shardName(Random r) {
        String[] names = {"model-00001-of-00002.safetensors", "model-00001-of-99999999999.safetensors",
                "model-00001-of-00000.safetensors", "model-1-of-1.safetensors", "x-00002-of-00001.safetensors"};
        return names[r.nextInt(names.length)];
    }

    // ------------------------------------------------------------------------------------------------ files

    static byte[] safetensors(String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).put(data);
        return b.array();
    }

    private static byte[] read(String seed) throws IOException {
        return Files.readAllBytes(seeds.resolve(seed));
    }

    private static Path copyTree(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        try (Stream<Path> s = Files.list(from)) {
            for (Path p : s.toList()) Files.copy(p, to.resolve(p.getFileName()));
        }
        return to;
    }

    private static void deleteTree(Path p) throws IOException {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path f : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(f);
        }
    }

    private static java.util.concurrent.ThreadFactory daemon() {
        return task -> {
            Thread t = new Thread(task, "fuzz-case");
            t.setDaemon(true);
            return t;
        };
    }
}
