package dev.wanlora.cli.train;

import dev.wanlora.pipeline.train.TrainingRun;
import dev.wanlora.engine.testing.RequiresGolden;
import dev.wanlora.cli.CommandRun;
import dev.wanlora.cli.Main;
import dev.wanlora.cli.demo.SyntheticCaches;
import dev.wanlora.pipeline.sample.RealSampleModelsTest;
import dev.wanlora.pipeline.sample.SampleModels;
import dev.wanlora.pipeline.tensorboard.EventReader;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.pipeline.train.TrainState;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 5's acceptance run: {@code wanlora train} from the command line on the CPU, with musubi's reference flags
 * (DESIGN.md §1, paths swapped, sizes small) on the tiny golden Wan model and synthetic musubi caches; checks the
 * epoch files, the state folders, the TensorBoard events and the config dump; then stops a run mid-way (the
 * --stop_at_step hook takes the Ctrl-C path), resumes it, and compares the loss sequence with the uninterrupted run
 * bit for bit.
 */
@RequiresGolden("wan-tiny")
class TrainRunTest {

    @TempDir
    static Path dir;
    static Path dataset;
    static Path dit;

    /** One image (64×64) and one 5-frame video clip (64×48): two buckets, two batches per epoch, four steps in all. */
    @BeforeAll
    static void data() throws IOException {
        dit = Golden.dir("wan-tiny").resolve("model.safetensors");
        Path images = Files.createDirectories(dir.resolve("cache/images"));
        Path videos = Files.createDirectories(dir.resolve("cache/videos"));
        SyntheticCaches.image(images, "cat", 64, 64, 7, 1);
        SyntheticCaches.video(videos, "walk", 64, 48, 5, 9, 3);
        dataset = Files.writeString(dir.resolve("dataset.toml"), """
                [general]
                batch_size = 1
                enable_bucket = false

                [[datasets]]
                image_directory = "%s"
                cache_directory = "%s"
                resolution = [64, 64]

                [[datasets]]
                video_directory = "%s"
                cache_directory = "%s"
                resolution = [64, 48]
                target_frames = [5]
                """.formatted(dir.resolve("images"), images, dir.resolve("videos"), videos));
    }

    private static CommandRun train(String... args) {
        String[] all = new String[args.length + 1];
        all[0] = "train";
        System.arraycopy(args, 0, all, 1, args.length);
        return CommandRun.run(all);
    }

    /** DESIGN.md §1's command with our paths, a rank/epoch count that fits a test, and --backend cpu. */
    private static String[] reference(String outputDir, String logs, String... more) {
        List<String> args = new ArrayList<>(List.of(("--dit " + dit + " --dataset_config " + dataset
                + " --fp8_base --fp8_scaled --blocks_to_swap 1 --gradient_checkpointing --mixed_precision bf16"
                + " --optimizer_type adamw8bit --learning_rate 5e-3 --network_dim 4 --network_alpha 4"
                + " --timestep_sampling shift --discrete_flow_shift 3.0 --max_train_epochs 2 --save_every_n_epochs 1"
                + " --seed 2025 --output_dir " + dir.resolve(outputDir) + " --output_name ghibli"
                + " --save_state --log_with tensorboard --logging_dir " + dir.resolve(logs)
                + " --sdpa --max_data_loader_n_workers 2 --persistent_data_loader_workers --backend cpu").split(" ")));
        args.addAll(Arrays.asList(more));
        return args.toArray(String[]::new);
    }

    private static Path eventFile(String logs) throws IOException {
        try (Stream<Path> s = Files.walk(dir.resolve(logs))) {
            return s.filter(p -> p.getFileName().toString().startsWith("events.out.tfevents.")).findFirst().orElseThrow();
        }
    }

    private static List<Float> losses(String logs) throws IOException {
        return EventReader.scalars(EventReader.read(eventFile(logs)), "loss/current").stream().map(Map.Entry::getValue).toList();
    }

    private static CommandRun wholeRun;

    /**
     * The uninterrupted reference run (run once; the resume tests compare against its losses). It also saves every
     * step, keeping the last two steps' files, and computes a validation loss each epoch: the runs compared with it
     * do neither, so the comparison also shows that saving and validating leave training untouched.
     */
    private static synchronized CommandRun wholeRun() {
        if (wholeRun == null) {
            wholeRun = train(reference("whole", "logs-whole", "--save_every_n_steps", "1", "--save_last_n_steps", "2",
                    "--validation_dataset_config", dataset.toString(), "--validation_timesteps", "0.3,0.7"));
        }
        return wholeRun;
    }

    private static List<Float> wholeRunLosses() throws IOException {
        assertEquals(0, wholeRun().exitCode(), wholeRun().out() + wholeRun().err());
        return losses("logs-whole");
    }

    @Test
    void referenceRunWritesMusubisFiles() throws IOException {
        CommandRun r = wholeRun();
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("info: ignoring --sdpa, --max_data_loader_n_workers, --persistent_data_loader_workers"), r.out());
        assertTrue(r.out().contains("block streaming: the Linear weights of blocks 1..1 from"), r.out());
        // loss per step, one line each (4 steps: 2 batches × 2 epochs)
        assertEquals(4, r.out().lines().filter(l -> l.startsWith("step ")).count(), r.out());

        Path out = dir.resolve("whole");
        // musubi: epoch files except for the last epoch, which is the final {name}.safetensors
        assertTrue(Files.isRegularFile(out.resolve("ghibli-000001.safetensors")));
        assertFalse(Files.exists(out.resolve("ghibli-000002.safetensors")));
        assertTrue(Files.isRegularFile(out.resolve("ghibli.safetensors")));
        try (SafeTensors lora = SafeTensors.open(out.resolve("ghibli.safetensors"))) {
            assertEquals(2 * 10 * 3, lora.keys().size(), "2 blocks × 10 modules × (down, up, alpha)");
            assertEquals("networks.lora_wan", lora.metadata().get("ss_network_module"));
            assertEquals("4", lora.metadata().get("ss_steps"));
            assertEquals("2025", lora.metadata().get("ss_seed"));
        }
        // --save_every_n_steps 1 --save_last_n_steps 2: saving step 4 removed step 4 − 2 − 1 = 1 (musubi's rule)
        assertFalse(Files.exists(out.resolve("ghibli-step00000001.safetensors")));
        assertFalse(Files.exists(out.resolve("ghibli-step00000001-state")));
        for (int step = 2; step <= 4; step++) {
            assertTrue(Files.isRegularFile(out.resolve(String.format("ghibli-step%08d.safetensors", step))), "step " + step);
            assertTrue(Files.isDirectory(out.resolve(String.format("ghibli-step%08d-state", step))), "step state " + step);
        }
        for (String state : List.of("ghibli-000001-state", "ghibli-state")) {
            for (String f : List.of(TrainState.LORA_FILE, TrainState.OPTIMIZER_FILE, TrainState.STATE_FILE)) {
                assertTrue(Files.isRegularFile(out.resolve(state).resolve(f)), state + "/" + f);
            }
        }
        TrainState s1 = TrainState.read(out.resolve("ghibli-000001-state"));
        assertEquals(2, s1.globalStep());
        assertEquals(2, s1.epoch());
        assertEquals(0, s1.epochPosition());

        var events = EventReader.read(eventFile("logs-whole"));
        for (String tag : List.of("loss/current", "loss/average", "lr")) {
            assertEquals(4, EventReader.scalars(events, tag).size(), tag);
        }
        assertEquals(4, EventReader.scalars(events, "s_per_it").size());
        assertEquals(2, EventReader.scalars(events, "loss/epoch").size());
        assertTrue(events.stream().anyMatch(e -> e.scalars().keySet().stream().anyMatch(k -> k.startsWith("loss/timestep_"))));
        assertEquals(2, EventReader.scalars(events, "val_loss/average").size(), "validation after each epoch");
        assertEquals(2, EventReader.scalars(events, "val_loss/t_0.30").size());
        assertEquals(2, r.out().lines().filter(l -> l.startsWith("validation at step ")).count(), r.out());
        for (float l : losses("logs-whole")) assertTrue(Float.isFinite(l) && l > 0, "loss " + l);

        var config = TrainConfigFile.readFlat(out.resolve("ghibli-config.toml"));
        assertEquals(2025, config.get("seed").asLong());
        assertEquals("adamw8bit", config.get("optimizer_type").asText());
        assertEquals(5e-3, config.get("learning_rate").asDouble());
        assertTrue(config.get("fp8_scaled").asBoolean());

        CommandRun again = train(reference("whole", "logs-again"));
        assertEquals(Main.USER_ERROR, again.exitCode());
        assertTrue(again.err().contains("exists from an earlier run named 'ghibli'"), again.err());
    }


    @Test
    void interruptedAndResumedRunRepeatsTheLossesBitForBit() throws IOException {
        List<Float> expected = wholeRunLosses();

        assertEquals(4, expected.size());
        // stop inside epoch 2 (after step 3 = epoch 2, batch 1), as Ctrl-C would
        CommandRun first = train(reference("split", "logs-first", "--stop_at_step", "3"));
        assertEquals(TrainingRun.INTERRUPTED, first.exitCode(), first.out() + first.err());
        Path state = dir.resolve("split/ghibli-step00000003-state");
        assertTrue(first.out().contains("continue with --resume " + state), first.out());
        TrainState s = TrainState.read(state);
        assertEquals(3, s.globalStep());
        assertEquals(2, s.epoch());
        assertEquals(1, s.epochPosition());

        CommandRun second = train(reference("split", "logs-second", "--resume", state.toString()));
        assertEquals(0, second.exitCode(), second.out() + second.err());
        assertTrue(second.out().contains("resuming at step 3 (epoch 2, batch 2 of 2)"), second.out());

        List<Float> resumed = new ArrayList<>(losses("logs-first"));
        resumed.addAll(losses("logs-second"));
        assertEquals(expected, resumed, "losses of the interrupted + resumed run");
        try (SafeTensors a = SafeTensors.open(dir.resolve("whole/ghibli.safetensors"));
             SafeTensors b = SafeTensors.open(dir.resolve("split/ghibli.safetensors"))) {
            for (String key : a.keys()) assertArrayEquals(a.floats(key), b.floats(key), key);
        }
        List<Long> steps = EventReader.scalars(EventReader.read(eventFile("logs-second")), "loss/current").stream()
                .map(Map.Entry::getKey).toList();
        assertEquals(List.of(4L), steps, "step counters continue");
    }

    /**
     * Prodigy and Adafactor through the whole trainer: a run stopped after step 2 and resumed ends with the LoRA of the
     * uninterrupted run, bit for bit (Prodigy's d, d_max, d_numerator, k and p0, Adafactor's row/column factors travel
     * in the state file).
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"prodigyopt.Prodigy decouple=True use_bias_correction=True weight_decay=0.01 --learning_rate 1",
            "adafactor relative_step=False scale_parameter=False beta1=0.9 --learning_rate 1e-3"})
    void otherOptimizersResumeBitForBit(String setting) throws IOException {
        String tag = setting.split(" ")[0].replace('.', '_') + Math.abs(setting.hashCode());
        List<String> extra = new ArrayList<>(List.of("--optimizer_args"));
        extra.addAll(Arrays.asList(setting.substring(setting.indexOf(' ') + 1).split(" ")));
        CommandRun whole = train(withOptimizer(setting.split(" ")[0], reference(tag + "-whole", tag + "-logs-whole",
                extra.toArray(String[]::new))));
        assertEquals(0, whole.exitCode(), whole.out() + whole.err());
        List<String> stop = new ArrayList<>(extra);
        stop.addAll(List.of("--stop_at_step", "2"));
        CommandRun first = train(withOptimizer(setting.split(" ")[0], reference(tag + "-split", tag + "-logs-first",
                stop.toArray(String[]::new))));
        assertEquals(TrainingRun.INTERRUPTED, first.exitCode(), first.out() + first.err());
        List<String> resume = new ArrayList<>(extra);
        resume.addAll(List.of("--resume", dir.resolve(tag + "-split/ghibli-step00000002-state").toString()));
        CommandRun second = train(withOptimizer(setting.split(" ")[0], reference(tag + "-split", tag + "-logs-second",
                resume.toArray(String[]::new))));
        assertEquals(0, second.exitCode(), second.out() + second.err());
        List<Float> resumed = new ArrayList<>(losses(tag + "-logs-first"));
        resumed.addAll(losses(tag + "-logs-second"));
        assertEquals(losses(tag + "-logs-whole"), resumed, "losses of the interrupted + resumed run");
        try (SafeTensors a = SafeTensors.open(dir.resolve(tag + "-whole/ghibli.safetensors"));
             SafeTensors b = SafeTensors.open(dir.resolve(tag + "-split/ghibli.safetensors"))) {
            for (String key : a.keys()) assertArrayEquals(a.floats(key), b.floats(key), key);
        }
    }

    /**
     * --network_args: exclude/include patterns train a subset of modules (the file holds only those and reads back as
     * a LoRA), LoRA+ and verbose are reported, and ss_network_args records the arguments as musubi's json.dumps does.
     */
    @Test
    void networkArgsSelectModulesAndLoraplus() throws IOException {
        CommandRun r = train(reference("netargs", "logs-netargs", "--network_args", "exclude_patterns=['.*ffn.*']",
                "include_patterns=['blocks.0.ffn.0']", "loraplus_lr_ratio=4", "verbose=True"));
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("LoRA+: lora_up learning rate × 4"), r.out());
        assertTrue(r.out().contains("\tlora_unet_blocks_0_ffn_0"), r.out());
        assertFalse(r.out().contains("lora_unet_blocks_0_ffn_2"), r.out());
        try (SafeTensors st = SafeTensors.open(dir.resolve("netargs/ghibli.safetensors"))) {
            // 2 blocks × 8 attention modules + blocks.0.ffn.0, 3 tensors each (down, up, alpha)
            assertEquals(17 * 3, st.keys().size(), st.keys().toString());
            assertTrue(st.contains("lora_unet_blocks_0_ffn_0.lora_up.weight"));
            assertFalse(st.contains("lora_unet_blocks_1_ffn_0.lora_up.weight"));
            assertEquals("{\"exclude_patterns\": \"['.*ffn.*']\", \"include_patterns\": \"['blocks.0.ffn.0']\","
                    + " \"loraplus_lr_ratio\": \"4\", \"verbose\": \"True\"}", st.metadata().get("ss_network_args"));
        }
        assertEquals(17, dev.wanlora.models.lora.LoraFile.read(dir.resolve("netargs/ghibli.safetensors")).modules().size());
    }

    /** The reference command with another --optimizer_type (flags after --optimizer_args belong to the trainer). */
    private static String[] withOptimizer(String type, String[] args) {
        List<String> list = new ArrayList<>(Arrays.asList(args));
        list.set(list.indexOf("--optimizer_type") + 1, type);
        int at = list.indexOf("--learning_rate");
        int given = list.lastIndexOf("--learning_rate");
        if (given != at) { // the setting names its own learning rate
            list.remove(at + 1);
            list.remove(at);
        }
        return list.toArray(String[]::new);
    }

    /**
     * Samples at first, every 3 steps and every epoch (demo stand-ins for umT5 and the VAE, block streaming and fp8 as
     * in the reference) leave training untouched: the same losses and the same LoRA, bit for bit, as the run without.
     */
    @Test
    void samplingLeavesTrainingBitIdentical() throws IOException {
        List<Float> expected = wholeRunLosses();
        Path prompts = Files.writeString(dir.resolve("sample_prompts.txt"),
                "a cat --w 32 --h 32 --f 5 --s 2 --d 3\na dog --w 32 --h 16 --s 2 --l 1.0\n");
        StringWriter text = new StringWriter();
        int code = TrainCommand.run(reference("sampled", "logs-sampled", "--sample_prompts", prompts.toString(),
                "--sample_at_first", "--sample_every_n_steps", "3", "--sample_every_n_epochs", "1"),
                new PrintWriter(text, true), SampleModels.demoStandIns());
        assertEquals(0, code, text.toString());
        assertEquals(expected, losses("logs-sampled"));
        try (SafeTensors a = SafeTensors.open(dir.resolve("whole/ghibli.safetensors"));
             SafeTensors b = SafeTensors.open(dir.resolve("sampled/ghibli.safetensors"))) {
            for (String key : a.keys()) assertArrayEquals(a.floats(key), b.floats(key), key);
        }
        List<String> names;
        try (Stream<Path> s = Files.list(dir.resolve("sampled/sample"))) {
            names = s.map(p -> p.getFileName().toString()).sorted().toList();
        }
        // at first (step 0), after step 3, after epochs 1 and 2: two prompts each
        assertEquals(8, names.size(), names.toString());
        assertTrue(names.stream().anyMatch(n -> n.matches("ghibli_000000_00_\\d{14}_3\\.mp4")), names.toString());
        assertTrue(names.stream().anyMatch(n -> n.matches("ghibli_000003_01_\\d{14}_\\d+_000\\.png")), names.toString());
        assertEquals(2, names.stream().filter(n -> n.matches("ghibli_e00000[12]_00_\\d{14}_3\\.mp4")).count(), names.toString());
    }

    /**
     * Issue 14, item 2: after a resumed run, its config dump held {@code resume = …}, so {@code --config_file} on it
     * went back to that state and rewrote the later epoch files without the --overwrite check. The dump records the
     * run, not the resume; resuming an older state of a run that went on stops with one line unless --overwrite.
     */
    @Test
    void resumingAnOlderStateDoesNotOverwriteLaterFilesAndTheDumpRecordsNoResume() throws IOException {
        assertEquals(0, wholeRun().exitCode(), wholeRun().out() + wholeRun().err());
        Path older = dir.resolve("older");
        try (Stream<Path> files = Files.walk(dir.resolve("whole"))) {
            for (Path f : files.toList()) Files.copy(f, older.resolve(dir.resolve("whole").relativize(f).toString()));
        }
        Path state = older.resolve("ghibli-000001-state"); // after epoch 1, step 2
        var finalLoraTime = Files.getLastModifiedTime(older.resolve("ghibli.safetensors"));

        CommandRun refused = train(reference("older", "logs-older", "--resume", state.toString()));
        assertEquals(Main.USER_ERROR, refused.exitCode(), refused.out() + refused.err());
        assertEquals(1, refused.err().lines().count(), refused.err());
        // steps 3 and 4 (file + state each) and the final file and state; not epoch 1's file, saved with the state
        assertTrue(refused.err().contains("holds 6 file(s) saved after this state (step 2) that the run would overwrite:"
                + " ghibli-state, ghibli-step00000003-state, ghibli-step00000003.safetensors and 3 more; pass --overwrite"),
                refused.err());
        assertEquals(finalLoraTime, Files.getLastModifiedTime(older.resolve("ghibli.safetensors")), "nothing written");

        CommandRun resumed = train(reference("older", "logs-older", "--resume", state.toString(), "--overwrite"));
        assertEquals(0, resumed.exitCode(), resumed.out() + resumed.err());
        Path dump = older.resolve("ghibli-config.toml");
        var config = TrainConfigFile.readFlat(dump);
        assertFalse(config.containsKey("resume"), config.toString());
        assertFalse(config.containsKey("overwrite"), config.toString());

        // the dump reruns the whole run from step 0, so the guard against replacing a run's files applies
        CommandRun rerun = train("--config_file", dump.toString());
        assertEquals(Main.USER_ERROR, rerun.exitCode(), rerun.out() + rerun.err());
        assertTrue(rerun.err().contains("exists from an earlier run named 'ghibli'"), rerun.err());

        // a step state saved by the step that ended epoch 1 (it said "batch 3 of 2")
        CommandRun endOfEpoch = train(reference("older", "logs-older-step2", "--resume",
                older.resolve("ghibli-step00000002-state").toString(), "--overwrite"));
        assertEquals(0, endOfEpoch.exitCode(), endOfEpoch.out() + endOfEpoch.err());
        assertTrue(endOfEpoch.out().contains("resuming at step 2 (after the last batch of epoch 1)"), endOfEpoch.out());

        // the final state is as new as the final file: continuing it needs no --overwrite; with the same step budget
        // nothing is left to train, which is its own one-line refusal (issue 15), not the overwrite guard
        CommandRun fromFinal = train(reference("older", "logs-older-final", "--resume", older.resolve("ghibli-state").toString()));
        assertEquals(Main.USER_ERROR, fromFinal.exitCode(), fromFinal.out() + fromFinal.err());
        assertTrue(fromFinal.err().contains("nothing is left to train"), fromFinal.err());
        assertFalse(fromFinal.err().contains("--overwrite"), fromFinal.err());
    }

    /**
     * Training with --sample_prompts and real-format --t5 / --vae files (the golden tiny umT5 widened to the DiT's
     * 4096-wide text, its tokenizer through --t5_tokenizer, the golden tiny Wan VAE): the samples are written at the
     * last epoch, encoded and decoded by the real models, not the stand-ins.
     */
    @Test
    void samplesWithTheRealEncoderAndVae() throws IOException {
        Path t5 = RealSampleModelsTest.widenedT5(Files.createDirectories(dir.resolve("t5")));
        Path prompts = Files.writeString(dir.resolve("real_prompts.txt"), "a cat --w 32 --h 32 --s 2 --d 3\n");
        CommandRun r = train(reference("real", "logs-real", "--sample_prompts", prompts.toString(),
                "--sample_every_n_epochs", "2", "--t5", t5.toString(), "--t5_tokenizer",
                Golden.dir("sampling-tiny").resolve("tokenizer").toString(), "--vae",
                Golden.dir("vae-tiny").resolve("vae.safetensors").toString()));
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("encoded by umT5 (2 layers) from t5-wide.safetensors"), r.out());
        List<String> names;
        try (Stream<Path> s = Files.list(dir.resolve("real/sample"))) {
            names = s.map(p -> p.getFileName().toString()).sorted().toList();
        }
        assertEquals(1, names.size(), names.toString());
        assertTrue(names.getFirst().matches("ghibli_e000002_00_\\d{14}_3_000\\.png"), names.toString());
    }

    /**
     * A real kill: a separate JVM trains, gets SIGTERM (what Ctrl-C's SIGINT also triggers: the JVM's shutdown hooks)
     * after its second step, saves a state and exits; resuming it gives the uninterrupted run's losses.
     */
    @Test
    void killedProcessSavesAStateThatResumesExactly() throws Exception {
        List<Float> expected = wholeRunLosses();
        String java = ProcessHandle.current().info().command().orElse("java");
        String classPath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp", classPath,
                Main.class.getName(), "train"));
        command.addAll(List.of(reference("killed", "logs-killed")));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        StringBuilder output = new StringBuilder();
        try (var lines = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream()))) {
            for (String line; (line = lines.readLine()) != null; ) {
                output.append(line).append('\n');
                if (line.startsWith("step 2/")) p.toHandle().destroy(); // SIGTERM; Process.destroy would also close our pipe
            }
        }
        int code = p.waitFor();
        assertEquals(143, code, "128 + SIGTERM after the shutdown hook let the JVM exit:\n" + output);
        Path state;
        try (Stream<Path> s = Files.list(dir.resolve("killed"))) {
            state = s.filter(f -> f.getFileName().toString().matches("ghibli-step\\d{8}-state")).findFirst()
                    .orElseThrow(() -> new AssertionError("no state folder after the kill:\n" + output));
        }
        long stoppedAt = TrainState.read(state).globalStep();
        assertTrue(stoppedAt >= 2 && stoppedAt < 4, "stopped at step " + stoppedAt + ":\n" + output);
        assertTrue(output.toString().contains("interrupted after step " + stoppedAt), output.toString());

        CommandRun resumed = train(reference("killed", "logs-killed-resumed", "--resume", state.toString()));
        assertEquals(0, resumed.exitCode(), resumed.out() + resumed.err());
        List<Float> all = new ArrayList<>(losses("logs-killed").subList(0, (int) stoppedAt));
        all.addAll(losses("logs-killed-resumed"));
        assertEquals(expected, all);
    }

    /** A separate JVM running {@code wanlora train ARGS}; {@code onLine} sees each output line as it comes. */
    private static Spawned spawn(List<String> args, java.util.function.BiConsumer<Process, String> onLine) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        String classPath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp", classPath,
                Main.class.getName(), "train"));
        command.addAll(args);
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        List<String> lines = new ArrayList<>();
        try (var reader = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream()))) {
            for (String line; (line = reader.readLine()) != null; ) {
                lines.add(line);
                onLine.accept(p, line);
            }
        }
        return new Spawned(p.waitFor(), lines);
    }

    private record Spawned(int exitCode, List<String> lines) {
        String output() {
            return String.join("\n", lines);
        }
    }

    /** Ctrl-C as a terminal sends it: SIGINT to the process. */
    private static void ctrlC(Process p) {
        try {
            new ProcessBuilder("kill", "-INT", Long.toString(p.pid())).start().waitFor();
        } catch (IOException | InterruptedException e) {
            throw new AssertionError(e);
        }
    }

    /**
     * Issue 14, item 5: Ctrl-C said nothing until the step ended. The notice comes at once, before the step in progress
     * ends (the line after the one the test reacted to), then the state is saved and the process exits with 130.
     */
    @Test
    void ctrlCSaysAtOnceThatItStopsAfterThisStep() throws Exception {
        Spawned r = spawn(List.of(reference("ctrl-c", "logs-ctrl-c")), (p, line) -> {
            if (line.startsWith("step 1/")) ctrlC(p);
        });
        assertEquals(TrainingRun.INTERRUPTED, r.exitCode(), r.output());
        int stepLine = r.lines().indexOf(r.lines().stream().filter(l -> l.startsWith("step 1/")).findFirst().orElseThrow());
        assertEquals(RunInterrupt.NOTICE, r.lines().get(stepLine + 1), r.output());
        String last = r.lines().stream().filter(l -> l.startsWith("interrupted after step ")).findFirst().orElseThrow(
                () -> new AssertionError("no state saved:\n" + r.output()));
        Path state = Path.of(last.substring(last.indexOf("state saved to ") + "state saved to ".length(), last.indexOf(';')));
        assertTrue(TrainState.read(state).globalStep() >= 1, r.output());
    }

    /** A second Ctrl-C stops at once, leaving only complete files (each is renamed into place when written). */
    @Test
    void secondCtrlCStopsAtOnceLeavingCompleteFiles() throws Exception {
        Spawned r = spawn(List.of(reference("ctrl-c-twice", "logs-ctrl-c-twice")), (p, line) -> {
            if (line.startsWith("step 1/") || line.equals(RunInterrupt.NOTICE)) ctrlC(p);
        });
        assertEquals(TrainingRun.INTERRUPTED, r.exitCode(), r.output());
        assertTrue(r.output().contains("stopping now: the step in progress is lost; the files saved before it are complete"),
                r.output());
        Path out = dir.resolve("ctrl-c-twice");
        try (Stream<Path> files = Files.list(out)) {
            for (Path f : files.toList()) {
                String name = f.getFileName().toString();
                if (name.endsWith("-state")) TrainState.read(f); // checks the three files are there
                if (name.endsWith(".safetensors")) SafeTensors.open(f).close();
            }
        }
    }

    /** SIGTERM during the last step lets the run finish: the final LoRA (and state) are written, then the JVM exits. */
    @Test
    void sigtermDuringTheLastStepStillWritesTheFinalLora() throws Exception {
        // one step in all (two batches accumulated, one epoch), so the signal, sent before it ends, lands in the last step
        Spawned r = spawn(List.of(reference("term-last", "logs-term-last", "--max_train_epochs", "1",
                "--gradient_accumulation_steps", "2")), (p, line) -> {
            if (line.startsWith("TensorBoard: ")) p.toHandle().destroy();
        });
        assertEquals(143, r.exitCode(), r.output());
        assertTrue(r.output().contains("received SIGTERM: stopping after this step and saving state"), r.output());
        assertTrue(r.output().contains("the stop came during the last step: saving the final LoRA"), r.output());
        try (SafeTensors lora = SafeTensors.open(dir.resolve("term-last/ghibli.safetensors"))) {
            assertEquals("1", lora.metadata().get("ss_steps"));
        }
        assertEquals(1, TrainState.read(dir.resolve("term-last/ghibli-state")).globalStep());
    }

    @Test
    void nonFiniteLossStopsAfterSavingTheLastGoodState() {
        // lr 1e30 without clipping: the first update makes the LoRA enormous, the second loss is not finite
        CommandRun r = train(reference("nan", "logs-nan", "--learning_rate", "1e30", "--max_grad_norm", "0"));
        assertEquals(TrainingRun.STOPPED_NON_FINITE, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("step 2: the loss is NaN; training stopped without applying it. The last good state"
                + " (after step 1) is in " + dir.resolve("nan/ghibli-step00000001-state")), r.out());
        assertEquals(1, TrainState.read(dir.resolve("nan/ghibli-step00000001-state")).globalStep());
    }

    @Test
    void startsFromNetworkWeightsWithGradientAccumulation() {
        Path start = dir.resolve("whole/ghibli-000001.safetensors");
        assertEquals(0, wholeRun().exitCode());
        // two batches per epoch accumulated into one step; --max_train_steps 1 ends the run after it
        CommandRun r = train("--dit", dit.toString(), "--dataset_config", dataset.toString(), "--output_dir",
                dir.resolve("warm").toString(), "--output_name", "warm", "--network_weights", start.toString(),
                "--gradient_accumulation_steps", "2", "--max_train_steps", "1", "--seed", "5", "--backend", "cpu",
                "--optimizer_type", "AdamW", "--learning_rate", "1e-3");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("initial LoRA weights from " + start + " (rank 4)"), r.out());
        assertTrue(r.out().contains("dataset: 2 items, 2 batches per epoch, 1 step per epoch; 1 step in 1 epoch"), r.out());
        assertTrue(Files.isRegularFile(dir.resolve("warm/warm.safetensors")));

        CommandRun wrongRank = train("--dit", dit.toString(), "--dataset_config", dataset.toString(), "--output_dir",
                dir.resolve("warm2").toString(), "--output_name", "warm", "--network_weights", start.toString(),
                "--network_dim", "8", "--backend", "cpu");
        assertEquals(Main.USER_ERROR, wrongRank.exitCode());
        assertTrue(wrongRank.err().contains("LoRA rank 4 differs from --network_dim 8; pass --network_dim 4"), wrongRank.err());
    }

    @Test
    void taskMustMatchTheCheckpoint() {
        CommandRun r = train(reference("task", "logs-task", "--task", "t2v-14B"));
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("t2v-14B") && r.err().contains("model.safetensors"), r.err());
    }

    @Test
    void missingCachesEndInOneLine() throws IOException {
        Path empty = Files.createDirectories(dir.resolve("empty-cache"));
        Path config = Files.writeString(dir.resolve("empty.toml"), """
                [[datasets]]
                image_directory = "%s"
                cache_directory = "%s"
                """.formatted(empty, empty));
        CommandRun r = train("--dit", dit.toString(), "--dataset_config", config.toString(), "--output_dir",
                dir.resolve("none").toString(), "--output_name", "x", "--backend", "cpu");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("no latent caches"), r.err());

        Path invalid = Files.writeString(dir.resolve("invalid.toml"), "[[datasets]\nimage_directory = 3\n");
        r = train("--dit", dit.toString(), "--dataset_config", invalid.toString(), "--output_dir",
                dir.resolve("none").toString(), "--output_name", "x", "--backend", "cpu");
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("invalid.toml"), r.err());
    }
}
