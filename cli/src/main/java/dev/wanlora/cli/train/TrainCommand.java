package dev.wanlora.cli.train;

import dev.wanlora.pipeline.sample.SampleModels;
import dev.wanlora.pipeline.train.TrainingRun;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.ParseResult;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * {@code wanlora train}: musubi's {@code wan_train_network.py} with the same flags (DESIGN.md §1). Parses the
 * command line and {@code --config_file}, checks every flag ({@link TrainChecks}), resolves them into the run's
 * settings ({@link FlagResolution}) and runs the training ({@link TrainingRun}); Ctrl-C and SIGTERM stop it at a step
 * boundary ({@link RunInterrupt}).
 */
@Command(name = "train", sortOptions = false, mixinStandardHelpOptions = true,
        customSynopsis = "wanlora train --dit FILE --dataset_config TOML --output_dir DIR --output_name NAME [FLAGS...]",
        // the first line is the summary `wanlora --help` lists, so it is a whole sentence
        description = {"Train a LoRA for the Wan2.1 T2V DiT on musubi caches, with musubi's flags.",
                "Flags are musubi's (wan_train_network.py), in --snake_case or --kebab-case; PyTorch-only flags are"
                        + " accepted and ignored."})
public final class TrainCommand implements Callable<Integer> {

    @Mixin
    TrainOptions options;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        TrainOptions o = withConfigFile(options, spec.commandLine().getParseResult());
        for (String line : TrainChecks.check(o)) out.println(line);
        out.flush();
        return new TrainingRun(FlagResolution.resolve(o, out), SampleModels.files(o.t5, o.t5_tokenizer, o.fp8_t5, o.vae),
                RunInterrupt::install, out, false).run();
    }

    /**
     * Runs {@code wanlora train ARGS} for another command (the demo), printing to {@code out} a plain progress line
     * for every step. The arguments are the caller's, so a parse error is a bug there, not a user error.
     */
    public static int run(String[] args, PrintWriter out) {
        TrainOptions o = new TrainOptions();
        new CommandLine(o).setOverwrittenOptionsAllowed(true).parseArgs(args);
        return run(o, out, SampleModels.files(o.t5, o.t5_tokenizer, o.fp8_t5, o.vae));
    }

    /** {@link #run(String[], PrintWriter)} with samples made by {@code sampleModels} (the demo's stand-ins). */
    public static int run(String[] args, PrintWriter out, SampleModels sampleModels) {
        TrainOptions o = new TrainOptions();
        new CommandLine(o).setOverwrittenOptionsAllowed(true).parseArgs(args);
        return run(o, out, sampleModels);
    }

    private static int run(TrainOptions o, PrintWriter out, SampleModels sampleModels) {
        for (String line : TrainChecks.check(o)) out.println(line);
        return new TrainingRun(FlagResolution.resolve(o, out), sampleModels, RunInterrupt::install, out, true).run();
    }

    /**
     * The effective options: {@code cli} when it names no {@code --config_file}; otherwise the file's values with
     * every flag that {@code parsed} matched on the command line taking precedence.
     */
    static TrainOptions withConfigFile(TrainOptions cli, ParseResult parsed) {
        if (cli.config_file == null) return cli;
        TrainOptions merged = new TrainOptions();
        CommandLine mergedLine = new CommandLine(merged);
        CommandSpec mergedSpec = mergedLine.getCommandSpec();
        Set<OptionSpec> given = new HashSet<>();
        for (OptionSpec m : parsed.matchedOptions()) {
            OptionSpec same = mergedSpec.findOption(m.longestName());
            if (same != null) given.add(same);
        }
        mergedLine.parseArgs(TrainConfigFile.tokens(cli.config_file, mergedSpec, given).toArray(String[]::new));
        for (OptionSpec m : parsed.matchedOptions()) {
            OptionSpec same = mergedSpec.findOption(m.longestName());
            if (same != null) same.setValue(m.getValue());
        }
        return merged;
    }

    /**
     * Every visible option's snake_case name and current value, in declaration order (the config dump's content).
     * The dump records the run, not how it was started: without {@code resume} (rerunning a resumed run's dump would
     * otherwise go back to that state) and {@code overwrite}.
     */
    static Map<String, Object> values(TrainOptions o) {
        Map<String, Object> values = new LinkedHashMap<>();
        for (OptionSpec option : CommandSpec.forAnnotatedObject(o).options()) {
            String key = option.longestName().substring(2).replace('-', '_');
            if (option.hidden() || key.equals("config_file") || key.equals("resume") || key.equals("overwrite")) continue;
            values.put(key, option.getValue());
        }
        return values;
    }
}
