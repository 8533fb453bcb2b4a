package dev.wanlora.cli;

import dev.wanlora.cli.train.TrainCommand;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.util.Arrays;
import java.util.List;

/** Entry point of {@code wanlora}: one subcommand class per job (STYLE.md §1). */
@Command(name = "wanlora", mixinStandardHelpOptions = true, version = "wanlora 0.1.0",
        description = "LoRA trainer for the Wan2.1 text-to-video DiT (musubi-tuner compatible).",
        subcommands = {TrainCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {

    /** Exit code of a user mistake (picocli's code for invalid input). */
    public static final int USER_ERROR = 2;

    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    /**
     * The command line with wanlora's error handling: a bad flag or a {@link UserError} prints one line on stderr
     * and exits with {@link #USER_ERROR}; anything else is a bug and keeps its stack trace.
     */
    public static CommandLine commandLine() {
        CommandLine cmd = new CommandLine(new Main());
        cmd.setParameterExceptionHandler((e, args) -> {
            CommandLine c = e.getCommandLine();
            String line = e.getMessage();
            if (e instanceof CommandLine.UnmatchedArgumentException u) line = unmatched(u, c);
            c.getErr().println("wanlora " + c.getCommandName() + ": " + line + " (see wanlora " + c.getCommandName() + " --help)");
            return USER_ERROR;
        });
        cmd.setExecutionExceptionHandler((e, c, parsed) -> {
            if (e instanceof UserError) {
                c.getErr().println("wanlora " + c.getCommandName() + ": " + e.getMessage());
                return USER_ERROR;
            }
            throw e;
        });
        return cmd;
    }

    /** "unknown flag --netwrk_dim; did you mean --network_dim?" for the first unknown flag, else picocli's message. */
    private static String unmatched(CommandLine.UnmatchedArgumentException e, CommandLine c) {
        String first = e.getUnmatched().getFirst();
        if (!first.startsWith("-")) return "unexpected argument '" + first + "'; this command takes only --flags";
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
