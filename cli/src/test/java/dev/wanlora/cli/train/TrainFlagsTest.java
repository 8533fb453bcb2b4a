package dev.wanlora.cli.train;

import dev.wanlora.pipeline.train.OutputNames;
import dev.wanlora.pipeline.train.RunSaver;
import com.fasterxml.jackson.databind.JsonNode;
import dev.wanlora.cli.CommandRun;
import dev.wanlora.cli.Main;
import dev.wanlora.engine.testing.Golden;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Parsing, defaults, --config_file, checks and error lines of {@code wanlora train} (issue 5), without training. */
class TrainFlagsTest {

    @TempDir
    Path dir;
    Path dit;
    Path dataset;

    @BeforeEach
    void files() throws IOException {
        dit = Files.writeString(dir.resolve("dit.safetensors"), "x");
        dataset = Files.writeString(dir.resolve("dataset.toml"), "[general]\n");
    }

    /** Parses {@code args} as {@code wanlora train ARGS} and returns the effective options (with --config_file applied). */
    private static TrainOptions parse(String... args) {
        CommandLine main = Main.commandLine();
        CommandLine.ParseResult result = main.parseArgs(concat(new String[]{"train"}, args));
        CommandLine.ParseResult train = result.subcommand();
        TrainCommand command = train.commandSpec().commandLine().getCommand();
        return TrainCommand.withConfigFile(command.options, train);
    }

    private static CommandRun run(String... args) {
        return CommandRun.run(concat(new String[]{"train"}, args));
    }

    private static String[] concat(String[] a, String... b) {
        String[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    private String[] required(String... more) {
        return concat(new String[]{"--dit", dit.toString(), "--dataset_config", dataset.toString(),
                "--output_dir", dir.resolve("out").toString(), "--output_name", "lora"}, more);
    }

    @Test
    void everyIssueFlagHasBothSpellings() {
        List<String> flags = List.of("task", "dit", "vae", "t5", "dataset_config", "fp8_base", "fp8_scaled", "blocks_to_swap",
                "gradient_checkpointing", "mixed_precision", "network_module", "network_dim", "network_alpha", "network_args",
                "network_weights", "optimizer_type", "optimizer_args", "learning_rate", "lr_scheduler", "lr_warmup_steps",
                "max_grad_norm", "gradient_accumulation_steps", "timestep_sampling", "discrete_flow_shift", "sigmoid_scale",
                "min_timestep", "max_timestep", "max_train_epochs", "max_train_steps", "save_every_n_epochs", "save_every_n_steps",
                "save_last_n_epochs", "save_state", "resume", "save_precision", "seed", "output_dir", "output_name",
                "sample_prompts", "sample_every_n_epochs", "sample_every_n_steps", "sample_at_first", "log_with", "logging_dir",
                "log_config", "metadata_title", "metadata_author", "metadata_description", "metadata_license", "metadata_tags",
                "metadata_reso", "metadata_arch", "config_file", "sdpa", "xformers", "flash_attn", "max_data_loader_n_workers",
                "persistent_data_loader_workers");
        Set<String> names = CommandSpec.forAnnotatedObject(new TrainOptions()).options().stream()
                .flatMap(o -> Arrays.stream(o.names())).collect(Collectors.toSet());
        List<String> missing = new ArrayList<>();
        for (String f : flags) {
            if (!names.contains("--" + f)) missing.add("--" + f);
            if (f.contains("_") && !names.contains("--" + f.replace('_', '-'))) missing.add("--" + f.replace('_', '-'));
        }
        assertEquals(List.of(), missing);
        for (OptionSpec o : CommandSpec.forAnnotatedObject(new TrainOptions()).options()) {
            String snake = o.longestName().substring(2).replace('-', '_');
            if (snake.contains("_")) {
                assertEquals(Set.of("--" + snake, "--" + snake.replace('_', '-')), Set.of(o.names()), "spellings of " + snake);
            }
        }
    }

    @Test
    void musubiDefaults() {
        // parser_common.py and wan_train_network.py at the spec's pinned commit (spec §4.2, §7.2, §9).
        TrainOptions o = parse();
        assertEquals(2.0e-6, o.learning_rate);
        assertEquals(1600, o.max_train_steps);
        assertNull(o.max_train_epochs);
        assertEquals(1.0, o.network_alpha);
        assertNull(o.network_dim); // None → 4 in lora.py
        assertEquals("constant", o.lr_scheduler);
        assertEquals(0, o.lr_warmup_steps.resolve(1600));
        assertEquals("sigma", o.timestep_sampling);
        assertEquals(1.0, o.discrete_flow_shift);
        assertEquals(1.0, o.sigmoid_scale);
        assertEquals(1.0, o.max_grad_norm);
        assertEquals(1, o.gradient_accumulation_steps);
        assertEquals("", o.optimizer_type);
        assertNull(o.seed);
        assertNull(o.mixed_precision);
        assertNull(o.save_precision);
        assertEquals(8, o.foreign.max_data_loader_n_workers);
        assertEquals("auto", o.backend);
    }

    @Test
    void designReferenceCommandParses() {
        // DESIGN.md §1: musubi's reference command with `accelerate launch wan_train_network.py` replaced by `wanlora train`.
        TrainOptions o = parse(("--task t2v-14B --dit wan2.1_t2v_14B_bf16.safetensors --dataset_config ghibli.toml"
                + " --fp8_base --fp8_scaled --blocks_to_swap 10 --gradient_checkpointing --mixed_precision bf16"
                + " --optimizer_type adamw8bit --learning_rate 5e-5 --network_dim 32 --network_alpha 32"
                + " --timestep_sampling shift --discrete_flow_shift 3.0 --max_train_epochs 50 --save_every_n_epochs 1"
                + " --sample_prompts prompts.txt --sample_every_n_epochs 1 --vae wan_2.1_vae.safetensors"
                + " --t5 models_t5_umt5-xxl-enc-bf16.pth --seed 2025 --output_dir out --output_name ghibli"
                + " --save_state --log_with tensorboard --logging_dir logs").split(" "));
        assertEquals("t2v-14B", o.task);
        assertTrue(o.fp8_base && o.fp8_scaled && o.gradient_checkpointing && o.save_state);
        assertEquals(10, o.blocks_to_swap.count());
        assertEquals("adamw8bit", o.optimizer_type);
        assertEquals(5e-5, o.learning_rate);
        assertEquals(32, o.network_dim);
        assertEquals(32.0, o.network_alpha);
        assertEquals("shift", o.timestep_sampling);
        assertEquals(3.0, o.discrete_flow_shift);
        assertEquals(50, o.max_train_epochs);
        assertEquals(2025L, o.seed);
        assertEquals(Path.of("logs"), o.logging_dir);
    }

    @Test
    void kebabCaseAndListsAndRatios() {
        TrainOptions o = parse("--blocks-to-swap", "3", "--network-args", "loraplus_lr_ratio=4", "verbose=True",
                "--optimizer-args", "weight_decay=0.1", "--lr-warmup-steps", "0.05", "--lr_decay_steps", "5%");
        assertEquals(3, o.blocks_to_swap.count());
        assertEquals(List.of("loraplus_lr_ratio=4", "verbose=True"), o.network_args);
        assertEquals(List.of("weight_decay=0.1"), o.optimizer_args);
        // musubi: int(ratio · max_train_steps)
        assertEquals(80, o.lr_warmup_steps.resolve(1600));
        assertEquals(80, o.lr_decay_steps.resolve(1600));
        assertEquals(100, parse("--lr_warmup_steps", "100").lr_warmup_steps.resolve(1600));
    }

    @Test
    void configFileWithCommandLineOverride() throws IOException {
        Path cfg = Files.writeString(dir.resolve("run.toml"), """
                learning_rate = 1e-4
                network_dim = 16
                network_args = ["a=1", "b=2"]
                gradient_checkpointing = true
                [timesteps]
                timestep_sampling = "shift"
                discrete_flow_shift = 3.0
                """);
        TrainOptions o = parse("--config_file", cfg.toString(), "--network_dim", "8", "--network_args", "c=3");
        assertEquals(1e-4, o.learning_rate);
        assertEquals(8, o.network_dim, "the command line wins");
        assertEquals(List.of("c=3"), o.network_args, "a list on the command line replaces the file's");
        assertTrue(o.gradient_checkpointing);
        assertEquals("shift", o.timestep_sampling);
        assertEquals(3.0, o.discrete_flow_shift);
        // musubi appends .toml to a name without it
        assertEquals(16, parse("--config_file", dir.resolve("run").toString()).network_dim);
    }

    @Test
    void configDumpRoundTrips() throws IOException {
        TrainOptions o = parse(required("--network_dim", "16", "--network_args", "x=1", "--fp8_base", "--lr_warmup_steps", "0.1",
                "--seed", "7", "--timestep_sampling", "shift"));
        Path dump = RunSaver.writeConfigDump(o.output_dir, new OutputNames(o.output_name, null, null, null, null, null, null),
                TrainConfigFile.text(o.output_name + "-config.toml", TrainCommand.values(o)));
        assertEquals(dir.resolve("out/lora-config.toml"), dump);
        Map<String, JsonNode> flat = TrainConfigFile.readFlat(dump);
        assertEquals(16, flat.get("network_dim").asInt());
        assertEquals(2.0e-6, flat.get("learning_rate").asDouble());
        assertEquals(dit.toAbsolutePath().toString(), flat.get("dit").asText());
        assertFalse(flat.containsKey("stop_at_step"), "hidden test hooks are not dumped");
        assertFalse(flat.containsKey("config_file"));
        TrainOptions again = parse("--config_file", dump.toString());
        assertEquals(absolutePaths(TrainCommand.values(o)), absolutePaths(TrainCommand.values(again)));
        assertFalse(Files.list(dump.getParent()).anyMatch(p -> p.toString().endsWith(".tmp")), "no temporary file left");
    }

    private static String absolutePaths(Map<String, Object> values) {
        return values.entrySet().stream().map(e -> e.getKey() + "=" + (e.getValue() instanceof Path p ? p.toAbsolutePath().normalize() : e.getValue()))
                .collect(Collectors.joining("\n"));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--netwrk_dim 3                 | unknown flag --netwrk_dim; did you mean --network_dim?",
            "--network-dimm=3               | unknown flag --network-dimm; did you mean --network-dim?",
            "--network_dim abc              | Invalid value for option '--network_dim': 'abc' is not an int",
            "--network_dim 0                | --network_dim 0: expected an integer from 1 to 8192",
            "--network_dim 100000           | --network_dim 100000: expected an integer from 1 to 8192",
            "--gradient_accumulation_steps 2147483647 | --gradient_accumulation_steps 2147483647: expected an integer from 1 to 65536",
            "--block_swap_ring_size 65      | --block_swap_ring_size 65: expected an integer from 2 to 64",
            "--metadata_reso abc            | --metadata_reso: not a resolution; got 'abc', expected WIDTH,HEIGHT or SIZE",
            "--network_alpha 1e300          | --network_alpha 1.0E300: expected a number >= 0",
            "--learning_rate 1e300          | --learning_rate 1.0E300: expected a positive number",
            "--learning_rate -1             | --learning_rate -1.0: expected a positive number",
            "--min_timestep 1000            | --min_timestep 1000: expected 0..999",
            "--min_timestep 500 --max_timestep 400 | the minimum must be below the maximum",
            "--discrete_flow_shift 0        | --discrete_flow_shift 0.0: expected a positive number",
            "--timestep_sampling flux_shift | --timestep_sampling flux_shift: this musubi mode is not supported; supported: sigma, uniform, sigmoid, shift",
            "--timestep_sampling foo        | --timestep_sampling foo: unknown mode",
            "--mixed_precision fp16         | fp16 compute is not supported",
            "--task i2v-14B                 | --task i2v-14B: wanlora trains the Wan2.1 text-to-video DiT only",
            "--network_module networks.lora | wanlora trains musubi's networks.lora_wan LoRA only",
            "--save_last_n_epochs 2         | add --save_every_n_epochs N",
            "--lr_warmup_steps 1.5          | --lr_warmup_steps 1.5: expected a step count >= 0 or a ratio in [0, 1)",
            "--log_with tensorboard         | --log_with tensorboard: needs --logging_dir",
            "--log_with wandb               | wandb is not supported",
            "--huggingface_repo_id a/b      | uploading to or resuming from Hugging Face is not supported",
            "--backend tpu                  | --backend tpu: expected one of auto, cpu, cuda",
            "--vae missing.safetensors      | --vae missing.safetensors: file not found",
            "--resume nowhere               | --resume nowhere: no such folder",
            "--validate_every_n_steps 5     | add --validation_dataset_config",
            "--validation_timesteps 0.5,1.0 | --validation_timesteps 1.0: expected noise levels strictly between 0 and 1",
            "--lr_scheduler cosine_with_min_lr | --lr_scheduler cosine_with_min_lr: needs the final lr ratio (transformers refuses it without one); add --lr_scheduler_min_lr_ratio, e.g. 0.1",
            "--lr_scheduler_min_lr_ratio 2  | --lr_scheduler_min_lr_ratio 2.0: expected a ratio in [0, 1]",
            "--lr_scheduler_timescale 0     | --lr_scheduler_timescale 0: expected an integer >= 1",
            "--optimizer_type adafactor --lr_warmup_steps 10 | Adafactor with relative_step=True makes its own step size and takes no warm-up",
            "--optimizer_type prodigyopt.Prodigy --optimizer_args slice_p=11 | --optimizer_args: slice_p=11 is not supported",
            "--network_args loraplus_ratio=4 | --network_args: unknown key 'loraplus_ratio'; networks.lora_wan keys wanlora supports: exclude_patterns, include_patterns, loraplus_lr_ratio, verbose",
            "--network_args module_dropout=0.1 | --network_args module_dropout: not supported",
            "--optimizer_type prodigy --network_args loraplus_lr_ratio=4 | --network_args loraplus_lr_ratio: Prodigy takes one learning rate for all parameters",
    })
    void badInputEndsInOneLine(String args, String expected) {
        CommandRun r = run(required(args.strip().split(" +")));
        assertEquals(Main.USER_ERROR, r.exitCode(), r.err());
        assertEquals(1, r.err().lines().count(), "exactly one line: " + r.err());
        assertTrue(r.err().contains(expected), r.err());
        assertFalse(r.err().contains("Exception"), r.err());
    }

    @Test
    void missingRequiredAndWrongPaths() {
        CommandRun r = run("--dataset_config", dataset.toString());
        assertTrue(r.err().strip().endsWith("--dit is required: the Wan2.1 DiT checkpoint, e.g. --dit wan2.1_t2v_14B_bf16.safetensors"), r.err());
        r = run("--dit", dir.resolve("nope.safetensors").toString(), "--dataset_config", dataset.toString(), "--output_dir", "o",
                "--output_name", "n");
        assertEquals(1, r.err().lines().count());
        assertTrue(r.err().contains("nope.safetensors: file not found; check the path"), r.err());
        r = run("--dit", dir.toString(), "--dataset_config", dataset.toString(), "--output_dir", "o", "--output_name", "n");
        assertTrue(r.err().contains(": is a folder, expected a file"), r.err());
    }

    @Test
    void configFileErrorsNameTheFile() throws IOException {
        Path bad = Files.writeString(dir.resolve("bad.toml"), "learning_rate = = 3\n");
        CommandRun r = run(required("--config_file", bad.toString()));
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("bad.toml: invalid TOML at line 1"), r.err());

        Path unknown = Files.writeString(dir.resolve("unknown.toml"), "lerning_rate = 3e-4\n");
        r = run(required("--config_file", unknown.toString()));
        assertTrue(r.err().contains("unknown.toml: unknown key 'lerning_rate'; did you mean learning_rate?"), r.err());

        Path wrong = Files.writeString(dir.resolve("wrong.toml"), "network_dim = \"sixteen\"\n");
        r = run(required("--config_file", wrong.toString()));
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("wrong.toml: Invalid value for key 'network_dim': 'sixteen' is not an int"), r.err());

        Path flag = Files.writeString(dir.resolve("flag.toml"), "fp8_base = 1\n");
        r = run(required("--config_file", flag.toString()));
        assertTrue(r.err().contains("flag.toml: key 'fp8_base' is 1, expected true or false"), r.err());

        r = run(required("--config_file", dir.resolve("absent.toml").toString()));
        assertTrue(r.err().contains("absent.toml: file not found; check the --config_file path"), r.err());
    }

    /** Issue 14: every flag the trainer refuses says so in --help (picocli's option descriptions). */
    @Test
    void refusedFlagsAreMarkedInHelp() {
        var spec = picocli.CommandLine.Model.CommandSpec.forAnnotatedObject(new TrainOptions());
        for (String flag : List.of("--network_dropout", "--dim_from_weights", "--scale_weight_norms", "--base_weights",
                "--base_weights_multiplier", "--lr_scheduler_type", "--lr_scheduler_args", "--num_timestep_buckets",
                "--show_timesteps", "--clip", "--one_frame", "--dit_high_noise", "--timestep_boundary",
                "--offload_inactive_dit", "--force_v2_1_time_embedding", "--huggingface_repo_id", "--save_state_to_huggingface",
                "--resume_from_huggingface", "--async_upload", "--wandb_api_key", "--network_args", "--optimizer_type",
                "--lr_scheduler", "--log_with", "--timestep_sampling", "--weighting_scheme", "--mixed_precision")) {
            String text = String.join(" ", spec.findOption(flag).description()).toLowerCase(java.util.Locale.ROOT);
            assertTrue(text.contains("not supported"), flag + ": " + text);
        }
        for (String flag : List.of("--lr_scheduler_min_lr_ratio", "--lr_scheduler_timescale", "--lr_decay_steps")) {
            String text = String.join(" ", spec.findOption(flag).description()).toLowerCase(java.util.Locale.ROOT);
            assertFalse(text.contains("not supported"), flag + ": " + text);
        }
    }

    @Test
    void schedulersAndOptimizersOnceRefusedAreAccepted() {
        for (String[] args : new String[][] {
                {"--lr_scheduler", "cosine_with_min_lr", "--lr_scheduler_min_lr_ratio", "0.1"},
                {"--lr_scheduler", "warmup_stable_decay", "--lr_decay_steps", "0.2", "--lr_warmup_steps", "10"},
                {"--lr_scheduler", "rex", "--lr_scheduler_min_lr_ratio", "0.05"},
                {"--lr_scheduler", "inverse_sqrt", "--lr_scheduler_timescale", "100"},
                {"--optimizer_type", "prodigyopt.Prodigy", "--optimizer_args", "decouple=True", "use_bias_correction=True",
                        "safeguard_warmup=True", "weight_decay=0.01", "d_coef=1"},
                {"--optimizer_type", "adafactor", "--optimizer_args", "relative_step=False", "scale_parameter=False",
                        "warmup_init=False", "--lr_scheduler", "constant_with_warmup", "--lr_warmup_steps", "10"}}) {
            assertEquals(List.of(), TrainChecks.check(parse(required(args))), String.join(" ", args));
        }
        List<String> info = TrainChecks.check(parse(required("--optimizer_type", "Adafactor")));
        assertEquals(List.of("info: Adafactor relative_step=True (musubi's default): the step size is min(1e-2,"
                + " 1/sqrt(step))·RMS(weights); --learning_rate and --lr_scheduler are not used (pass --optimizer_args"
                + " relative_step=False to use them)"), info);
    }

    @Test
    void pytorchOnlyFlagsGiveOneInfoLine() {
        TrainOptions o = parse(required("--sdpa", "--xformers", "--max_data_loader_n_workers", "2",
                "--persistent_data_loader_workers", "--num_cpu_threads_per_process", "1"));
        List<String> info = TrainChecks.check(o);
        assertEquals(1, info.size(), info.toString());
        assertTrue(info.getFirst().startsWith("info: ignoring --sdpa, --xformers, --max_data_loader_n_workers,"
                + " --persistent_data_loader_workers, accelerate launch options"), info.getFirst());
        assertEquals(List.of(), TrainChecks.check(parse(required())));
    }

    @Test
    void overwriteProtection() throws IOException {
        dit = Golden.dir("wan-tiny").resolve("model.safetensors"); // the settings read its header before the run starts
        Path out = Files.createDirectories(dir.resolve("out"));
        Files.writeString(out.resolve("lora-000001.safetensors"), "old");
        Files.writeString(out.resolve("other-000001.safetensors"), "another name");
        CommandRun r = run(required());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("lora-000001.safetensors: exists from an earlier run named 'lora' (1 file(s)); pass --overwrite"),
                r.err());
    }

    /**
     * Issue 14: a DiT passed as --vae and --t5 was accepted; --resume FILE.safetensors said "no such folder". Each model
     * file is checked for what it is when training starts, in one line naming the file and the fix.
     */
    @Test
    void modelFilesAreWhatTheirFlagsNeed() throws IOException {
        Path ditFile = Golden.dir("wan-tiny").resolve("model.safetensors");
        Path vae = Golden.dir("vae-tiny").resolve("vae.safetensors");
        Path t5 = Golden.dir("sampling-tiny").resolve("t5.safetensors");
        Map<List<String>, String> refused = Map.of(
                List.of("--vae", ditFile.toString()), "--vae " + ditFile + ": is a Wan DiT checkpoint, not the Wan VAE; pass"
                        + " the Wan VAE, e.g. --vae wan_2.1_vae.safetensors",
                List.of("--t5", ditFile.toString()), "--t5 " + ditFile + ": is a Wan DiT checkpoint, not the umT5 text encoder;"
                        + " pass the umT5 text encoder, e.g. --t5 models_t5_umt5-xxl-enc-bf16.pth",
                List.of("--vae", t5.toString()), "--vae " + t5 + ": is the umT5 text encoder, not the Wan VAE",
                List.of("--t5", vae.toString()), "--t5 " + vae + ": is the Wan VAE, not the umT5 text encoder",
                List.of("--vae", dataset.toString()), "--vae " + dataset + ": expected a .safetensors or .pth file",
                List.of("--resume", ditFile.toString()), "--resume " + ditFile + ": is a file; --resume takes a state folder"
                        + " written by --save_state (e.g. out/lora-000002-state), --network_weights takes a LoRA file to start from");
        refused.forEach((args, expected) -> {
            CommandRun r = run(required(args.toArray(String[]::new)));
            assertEquals(Main.USER_ERROR, r.exitCode(), r.err());
            assertEquals(1, r.err().lines().count(), r.err());
            assertTrue(r.err().contains(expected), r.err());
        });
        assertEquals(List.of(), TrainChecks.check(parse(required("--vae", vae.toString(), "--t5", t5.toString()))));
        Path pth = Files.writeString(dir.resolve("umt5.pth"), "x"); // .pth files are only checked to exist for now
        assertEquals(List.of(), TrainChecks.check(parse(required("--t5", pth.toString()))));
    }

    @Test
    void samplesWithBadModelFilesStopWithOneLine() throws IOException {
        dit = Golden.dir("wan-tiny").resolve("model.safetensors"); // the settings read its header before the run starts
        Path prompts = Files.writeString(dir.resolve("prompts.txt"), "# test\na cat --w 832 --h 480 --f 81\n\na dog --d 3\n");
        Path vae = Golden.dir("vae-tiny").resolve("vae.safetensors");
        Path t5 = Files.writeString(dir.resolve("t5.pth"), "x"); // .pth files are only checked to exist for now
        CommandRun r = run(required("--sample_prompts", prompts.toString(), "--sample_every_n_epochs", "1", "--vae", vae.toString(),
                "--t5", t5.toString()));
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("no umT5 tokenizer.json found (looked beside the T5 checkpoint"), r.err());
        assertFalse(Files.exists(dir.resolve("out")), "nothing is written before the stop");

        r = run(required("--sample_prompts", prompts.toString(), "--sample_every_n_epochs", "1"));
        assertTrue(r.err().contains("samples need the VAE and the text encoder; add --vae FILE and --t5 FILE"), r.err());

        Files.writeString(prompts, "a cat --w 830\n");
        r = run(required("--sample_prompts", prompts.toString(), "--sample_at_first", "--vae", vae.toString(), "--t5", t5.toString()));
        assertTrue(r.err().contains("prompts.txt line 1: width (--w) 830 is not a multiple of 16"), r.err());

        Files.writeString(prompts, "a cat\n");
        r = run(required("--sample_prompts", prompts.toString(), "--sample_at_first", "--sample_solver", "dpm++"));
        assertTrue(r.err().contains("--sample_solver dpm++: unknown solver; expected unipc or euler"), r.err());
    }
}
