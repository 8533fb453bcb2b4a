package dev.wanlora.cli;

import dev.wanlora.engine.io.SafeTensorsException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;

import java.io.UncheckedIOException;

/** Entry point of {@code wanlora}: one subcommand class per job (STYLE.md §1). */
@Command(name = "wanlora", mixinStandardHelpOptions = true, version = "wanlora 0.1.0",
        description = "LoRA trainer for the Wan2.1 text-to-video DiT (musubi-tuner compatible).",
        subcommands = {InspectCommand.class, DatasetCommand.class, CommandLine.HelpCommand.class})
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
        cmd.setParameterExceptionHandler((e, args) -> {
            CommandLine c = e.getCommandLine();
            String line = e.getMessage();
            if (e instanceof CommandLine.UnmatchedArgumentException u && !u.getSuggestions().isEmpty()) {
                line += "; did you mean " + u.getSuggestions().getFirst() + "?";
            }
            String name = c.getCommandSpec().qualifiedName();
            c.getErr().println(name + ": " + line + " (see " + name + " --help)");
            return USER_ERROR;
        });
        cmd.setExecutionExceptionHandler((e, c, parsed) -> {
            if (!(e instanceof UserError || e instanceof SafeTensorsException || e instanceof UncheckedIOException)) throw e;
            c.getErr().println(c.getCommandSpec().qualifiedName() + ": " + e.getMessage());
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

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
