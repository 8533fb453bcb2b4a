package dev.wanlora.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** Entry point of {@code wanlora}: one subcommand class per job (STYLE.md §1). */
@Command(name = "wanlora", mixinStandardHelpOptions = true, version = "wanlora 0.1.0",
        description = "LoRA trainer for the Wan2.1 text-to-video DiT (musubi-tuner compatible).",
        subcommands = {CommandLine.HelpCommand.class, VerifyGoldenCommand.class})
public final class Main implements Runnable {

    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new Main()).execute(args));
    }
}
