package dev.wanlora.cli;

import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;

/**
 * One {@code wanlora ARGS} run in-process, as {@link Main#main} runs it but without {@code System.exit}: the exit code
 * and everything the command printed to its out and err writers.
 */
public record CommandRun(int exitCode, String out, String err) {

    /** Runs {@code wanlora args} on a fresh {@link Main#commandLine()} and captures its output. */
    public static CommandRun run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        CommandLine cmd = Main.commandLine();
        cmd.setOut(new PrintWriter(out, true));
        cmd.setErr(new PrintWriter(err, true));
        int code = cmd.execute(args);
        return new CommandRun(code, out.toString(), err.toString());
    }
}
