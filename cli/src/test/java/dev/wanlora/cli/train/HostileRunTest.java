package dev.wanlora.cli.train;

import dev.wanlora.pipeline.train.OutputLock;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.wanlora.cli.CommandRun;
import dev.wanlora.cli.Main;
import dev.wanlora.cli.demo.SyntheticCaches;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.Backends;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.optim.Optimizer;
import dev.wanlora.engine.optim.OptimizerConfig;
import dev.wanlora.engine.testing.Golden;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraFormat;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.lora.SavePrecision;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.pipeline.train.TrainState;
import dev.wanlora.pipeline.train.TrainStep;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15 through real {@code wanlora train} runs (in-process): a resume folder that does not fit the run (item 2),
 * flags that would exhaust the machine (item 5), a NaN cache (item 6), a second run in a locked output folder
 * (item 7) and the leftovers of a killed save (item 8). Every bad input ends in exit 2 and one line on stderr.
 */
class HostileRunTest {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    static Path dir;
    static Path dataset;
    static Path dit;
    static Backend cpu;
    static WanDitConfig tiny;

    @BeforeAll
    static void data() throws IOException {
        dit = Golden.dir("wan-tiny").resolve("model.safetensors");
        try (SafeTensors st = SafeTensors.open(dit, SafeTensors.DIT_PREFIXES)) {
            tiny = WanDitConfig.fromCheckpoint(st);
        }
        cpu = Backends.create("cpu");
        Path images = Files.createDirectories(dir.resolve("cache/images"));
        SyntheticCaches.image(images, "cat", 64, 64, 7, 1);
        SyntheticCaches.image(images, "dog", 64, 64, 5, 2);
        dataset = imageConfig("dataset.toml", images);
    }

    @AfterAll
    static void close() {
        cpu.close();
    }

    private static Path imageConfig(String name, Path cache) throws IOException {
        return Files.writeString(dir.resolve(name), """
                [[datasets]]
                image_directory = "%s"
                cache_directory = "%s"
                resolution = [64, 64]
                """.formatted(cache, cache));
    }

    private static CommandRun train(String output, String... more) {
        List<String> args = new ArrayList<>(List.of("train", "--dit", dit.toString(), "--dataset_config", dataset.toString(),
                "--output_dir", dir.resolve(output).toString(), "--output_name", "run", "--backend", "cpu",
                "--max_train_steps", "2", "--seed", "5", "--learning_rate", "1e-3"));
        args.addAll(Arrays.asList(more));
        return CommandRun.run(args.toArray(String[]::new));
    }

    /** Exit 2 with one stderr line holding every fragment; returns the line. */
    private static String userError(CommandRun r, String... fragments) {
        assertEquals(Main.USER_ERROR, r.exitCode(), r.out() + r.err());
        assertEquals(1, r.err().lines().count(), r.err());
        for (String f : fragments) assertTrue(r.err().contains(f), "missing '" + f + "' in: " + r.err());
        return r.err().strip();
    }

    /**
     * A state folder for this dataset (2 batches per epoch) at step 0 of a 2-step run: rank-4 LoRA, a fresh
     * {@code optimizerType} state, and state.json with {@code edit} applied.
     */
    private static Path stateFolder(String name, String optimizerType, Consumer<ObjectNode> edit) throws IOException {
        Path state = dir.resolve(name);
        Path lora = dir.resolve(name + "-lora.safetensors"), optimizer = dir.resolve(name + "-optimizer.safetensors");
        try (LoraNetwork network = LoraNetwork.create(cpu, tiny, 4, 4f, 5);
             Optimizer opt = TrainStep.optimizer(cpu, OptimizerConfig.fromFlags(optimizerType, List.of()), network)) {
            LoraFile.write(lora, network.toWeights(), SavePrecision.FP32, LoraFormat.MUSUBI, Map.of());
            opt.saveState(optimizer);
        }
        new TrainState(TrainState.FORMAT, "run", 5, 0, 1, 0, 2, 7, 0, new int[0], List.of(), 1.7e9, 9, 1.7e9)
                .write(state, p -> Files.copy(lora, p, StandardCopyOption.REPLACE_EXISTING),
                        p -> Files.copy(optimizer, p, StandardCopyOption.REPLACE_EXISTING));
        Path json = state.resolve(TrainState.STATE_FILE);
        ObjectNode root = (ObjectNode) JSON.readTree(json.toFile());
        edit.accept(root);
        Files.writeString(json, root.toString());
        return state;
    }

    @Test
    void aFittingStateFolderResumes() throws IOException {
        Path state = stateFolder("state-ok", "adamw8bit", root -> {});
        CommandRun r = train("resume-ok", "--resume", state.toString(), "--optimizer_type", "adamw8bit");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("resuming at step 0 (epoch 1, batch 1 of 2)"), r.out());
    }

    /** Item 2: OptimizerStateFile's good message came out as a stack trace with exit 1. */
    @Test
    void resumingWithAnotherOptimizerIsOneLine() throws IOException {
        Path state = stateFolder("state-8bit", "adamw8bit", root -> {});
        userError(train("resume-adamw", "--resume", state.toString(), "--optimizer_type", "AdamW"),
                "optimizer state was saved with optimizer=\"bitsandbytes.optim.adamw.AdamW8bit\", but this run has"
                        + " optimizer=\"torch.optim.adamw.AdamW\"", "hint: resume with the original --optimizer_type/--optimizer_args");
    }

    /** Item 2: every damaged state.json field the fuzz run found ends in one line naming the file and the field. */
    @Test
    void damagedStateFieldsAreOneLine() throws IOException {
        record Damage(String name, Consumer<ObjectNode> edit, String expected) {}
        List<Damage> damages = List.of(
                new Damage("loss-null", r -> r.putNull("lossHistory"), "lossHistory is null, expected an array of per-batch losses"),
                new Damage("pool-missing", r -> r.remove("samplerBucketPool"), "samplerBucketPool is null, expected an array"),
                new Damage("position-negative", r -> r.put("epochPosition", -1), "epochPosition is -1, expected a batch count >= 0"),
                new Damage("position-999", r -> r.put("epochPosition", 999), "epochPosition 999 is past the 2 batches per epoch"),
                new Damage("epoch-negative", r -> r.put("epoch", -3), "epoch is -3, expected a 1-based epoch number"),
                new Damage("epoch-999", r -> r.put("epoch", 999), "epoch 999 is past the 1 epoch(s) of this run"),
                new Damage("loss-nan", r -> r.putArray("lossHistory").add("NaN"), "lossHistory[0] is NaN, expected a finite loss"),
                new Damage("pool-stratum", r -> r.putArray("samplerBucketPool").add(3), "samplerBucketPool is [3], expected []"),
                new Damage("counter", r -> r.put("samplerCounter", -5), "samplerCounter is -5, expected a draw count >= 0"),
                new Damage("done", r -> r.put("globalStep", 2), "the state is at step 2 and this run trains 2 steps, so nothing is left"));
        for (Damage d : damages) {
            Path state = stateFolder("state-" + d.name(), "adamw8bit", d.edit());
            userError(train("damaged-" + d.name(), "--resume", state.toString(), "--optimizer_type", "adamw8bit"), d.expected());
        }
        Path nullFile = stateFolder("state-null-file", "adamw8bit", r -> {});
        Files.writeString(nullFile.resolve(TrainState.STATE_FILE), "null");
        userError(train("damaged-null", "--resume", nullFile.toString()), "state.json: holds JSON null");
    }

    /** Item 2: a NaN moment was accepted, so the "last good state" of the NaN stop held NaN and the resume repeated it. */
    @Test
    void nonFiniteOptimizerStateIsRefused() throws IOException {
        Path state = stateFolder("state-nan", "adamw", root -> {});
        Path file = state.resolve(TrainState.OPTIMIZER_FILE);
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        Map<String, String> metadata;
        String poisoned;
        try (SafeTensors st = SafeTensors.open(file)) {
            metadata = Map.copyOf(st.metadata());
            poisoned = st.keys().iterator().next();
            for (String key : st.keys()) {
                float[] v = st.floats(key);
                if (key.equals(poisoned)) v[0] = Float.NaN;
                entries.add(SafeTensorsWriter.Entry.ofFloats(key, DType.F32, st.info(key).shape(), v));
            }
        }
        SafeTensorsWriter.write(file, entries, metadata);
        userError(train("resume-nan", "--resume", state.toString(), "--optimizer_type", "AdamW"),
                "optimizer state '" + poisoned + "' holds NaN at element 0; expected finite values");
    }

    /** Item 5: flags that ran the JVM out of memory or into CpuTensor.allocate's limit. */
    @Test
    void flagsThatWouldExhaustTheMachineAreOneLine() {
        userError(train("flags1", "--network_dim", "100000"), "--network_dim 100000: expected an integer from 1 to 8192");
        userError(train("flags2", "--gradient_accumulation_steps", "2147483647"),
                "--gradient_accumulation_steps 2147483647: expected an integer from 1 to 65536");
        userError(train("flags3", "--network_dim", "512"), "--network_dim 512: above the model width 256");
    }

    /** Item 5: a path holding a newline made a two-line error. */
    @Test
    void newlineInACachePathStaysOneLine() throws IOException {
        Path config = Files.writeString(dir.resolve("newline.toml"), "[[datasets]]\nimage_directory = \"/no/such\\nfolder\"\n");
        String line = userError(CommandRun.run("train", "--dit", dit.toString(), "--dataset_config", config.toString(),
                "--output_dir", dir.resolve("nl").toString(), "--output_name", "run", "--backend", "cpu"), "/no/such\\nfolder");
        assertFalse(line.contains("\n"));
    }

    /** Item 6: NaN in a cache stopped training with exit 3 without naming the file. */
    @Test
    void nonFiniteCacheIsNamedAndSkippable() throws IOException {
        Path cache = Files.createDirectories(dir.resolve("cache/nan"));
        SyntheticCaches.image(cache, "cat", 64, 64, 7, 1);
        SyntheticCaches.image(cache, "bad", 64, 64, 7, 2);
        Path bad = cache.resolve("bad_0064x0064_wan.safetensors");
        byte[] bytes = Files.readAllBytes(bad);
        long headerLength = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        bytes[(int) (8 + headerLength + 2 * 10)] = (byte) 0xc0; // bf16 element 10 = 0x7fc0, a NaN
        bytes[(int) (8 + headerLength + 2 * 10 + 1)] = (byte) 0x7f;
        Files.write(bad, bytes);
        Path config = imageConfig("nan.toml", cache);
        List<String> args = List.of("train", "--dit", dit.toString(), "--dataset_config", config.toString(), "--output_dir",
                dir.resolve("nan-out").toString(), "--output_name", "run", "--backend", "cpu", "--max_train_steps", "2",
                "--seed", "5");
        userError(CommandRun.run(args.toArray(String[]::new)), bad + ": key latents_1x8x8_bfloat16 holds NaN at element 10",
                "--skip_bad_items");
        List<String> skipping = new ArrayList<>(args);
        skipping.add("--skip_bad_items");
        skipping.add("--overwrite");
        CommandRun r = CommandRun.run(skipping.toArray(String[]::new));
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("warning: " + bad + ": key latents_1x8x8_bfloat16 holds NaN"), r.out());
        assertTrue(r.out().contains("dataset: 1 item,"), r.out());
    }

    /** Item 7: a second run in a folder a run holds is refused with one line (the lock file names pid and host). */
    @Test
    void secondRunInALockedFolderIsRefused() throws IOException {
        Path out = dir.resolve("locked");
        try (OutputLock held = OutputLock.acquire(out)) {
            String line = userError(train("locked"), "--output_dir " + out + ": another wanlora train (pid "
                    + ProcessHandle.current().pid() + " on host ", ") is using this folder");
            assertTrue(Files.readString(out.resolve(OutputLock.FILE_NAME)).startsWith("pid "), line);
        }
        CommandRun r = train("locked");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertEquals("", Files.readString(out.resolve(OutputLock.FILE_NAME)), "released and emptied at the end");
    }

    /** Item 8: the temporary folder of a killed state save is removed at the next start in that folder. */
    @Test
    void leftoverOfAKilledSaveIsRemovedAtStart() throws IOException {
        Path out = Files.createDirectories(dir.resolve("leftover"));
        Path tmp = Files.createDirectories(out.resolve(".run-step00000001-state.0123456789abcdef.tmp"));
        Files.write(tmp.resolve("optimizer.safetensors"), new byte[2048]);
        CommandRun r = train("leftover");
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertFalse(Files.exists(tmp));
        assertTrue(r.out().contains("info: removed 1 leftover(s) of interrupted saves in " + out + " (0.0 MiB):"
                + " .run-step00000001-state.0123456789abcdef.tmp"), r.out());
    }
}
