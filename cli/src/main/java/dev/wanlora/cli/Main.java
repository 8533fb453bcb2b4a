package dev.wanlora.cli;

import dev.wanlora.cli.demo.DemoCommand;
import dev.wanlora.pipeline.UserError;
import dev.wanlora.cli.train.TrainCommand;
import dev.wanlora.engine.io.PthException;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.models.text.ClosestName;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;

import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.List;

/** Entry point of {@code wanlora}: one subcommand class per job (STYLE.md §1). */
@Command(name = "wanlora", mixinStandardHelpOptions = true, version = "wanlora 0.1.0",
        description = "LoRA trainer for the Wan2.1 text-to-video DiT (musubi-tuner compatible).",
        subcommands = {DemoCommand.class, TrainCommand.class, SampleCommand.class, BenchCommand.class, InspectCommand.class, DatasetCommand.class, VerifyGoldenCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    /** Exit code of a user mistake (picocli's code for invalid input). */
    public static final int USER_ERROR = 2;

    @Option(names = "--debug", scope = ScopeType.INHERIT, description = "Print stack traces of user errors too.")
    boolean isDebug;

    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    /**
     * The command line with wanlora's error handling: a bad flag, an unknown subcommand or a user error
     * ({@link UserError}, a malformed file, an unwritable output) prints one line on stderr and exits with
     * {@link #USER_ERROR}, with the stack trace only under {@code --debug}; anything else is a bug and keeps its
     * stack trace.
     */
    public static CommandLine commandLine() {
        CommandLine cmd = new CommandLine(new Main());
        // musubi's argparse lets a repeated flag override an earlier one (e.g. a flag appended to a stored command)
        cmd.getSubcommands().get("train").setOverwrittenOptionsAllowed(true);
        cmd.setParameterExceptionHandler((e, args) -> {
            CommandLine c = e.getCommandLine();
            String line = e.getMessage();
            if (e instanceof CommandLine.UnmatchedArgumentException u) line = unmatched(u, c);
            String name = c.getCommandSpec().qualifiedName();
            c.getErr().println(name + ": " + oneLine(line) + " (see " + name + " --help)");
            return USER_ERROR;
        });
        cmd.setExecutionExceptionHandler((e, c, parsed) -> {
            if (!(e instanceof UserError || e instanceof SafeTensorsException || e instanceof PthException
                    || e instanceof UncheckedIOException)) throw e;
            c.getErr().println(c.getCommandSpec().qualifiedName() + ": " + oneLine(String.valueOf(e.getMessage())));
            for (CommandLine.ParseResult p = parsed; p != null; p = p.subcommand()) {
                if (p.hasMatchedOption("--debug")) {
                    e.printStackTrace(c.getErr());
                    break;
                }
            }
            return USER_ERROR;
        });
        return cmd;
    }

    /**
     * The message on one line whatever it quotes: a control character (a newline in a path or key) is written as
     * an escape (backslash n, backslash u and four hex digits), so a user error stays one line.
     */
    static String oneLine(String message) {
        StringBuilder b = new StringBuilder(message.length());
        for (int i = 0; i < message.length(); i++) {
            char c = message.charAt(i);
            if (c == '\n') b.append("\\n");
            else if (c < 0x20 || c == 0x7f || c == '\u2028' || c == '\u2029' || c == '\u0085') b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.toString();
    }

    /** "unknown flag --netwrk_dim; did you mean --network_dim?" for the first unknown argument (or command). */
    private static String unmatched(CommandLine.UnmatchedArgumentException e, CommandLine c) {
        String first = e.getUnmatched().getFirst();
        if (!first.startsWith("-")) {
            if (c.getSubcommands().isEmpty()) return "unexpected argument '" + first + "'; this command takes only --flags";
            String command = ClosestName.of(first, c.getSubcommands().keySet());
            return "unknown command '" + first + "'" + (command == null ? "" : "; did you mean " + command + "?");
        }
        String flag = first.contains("=") ? first.substring(0, first.indexOf('=')) : first;
        List<String> names = c.getCommandSpec().options().stream().filter(o -> !o.hidden())
                .flatMap(o -> Arrays.stream(o.names())).toList();
        String best = ClosestName.of(flag, names);
        return "unknown flag " + flag + (best == null ? "" : "; did you mean " + best + "?");
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
