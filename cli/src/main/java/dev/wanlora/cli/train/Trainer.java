package dev.wanlora.cli.train;

import dev.wanlora.cli.UserError;
import dev.wanlora.cli.sampling.SamplePrompt;
import dev.wanlora.cli.sampling.SamplePromptFile;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.List;

/**
 * One training run of {@code wanlora train}, from checked options to saved LoRA files.
 */
final class Trainer {
    private final TrainOptions o;
    private final PrintWriter out;

    Trainer(TrainOptions o, PrintWriter out) {
        this.o = o;
        this.out = out;
    }

    int run() {
        checkSamples();
        OutputNames names = OutputNames.of(o);
        refuseOverwrite(names);
        if (o.seed == null) {
            // musubi draws a random seed when none is given; ours is printed and saved so the run can be repeated.
            o.seed = new SecureRandom().nextLong() & 0x7FFF_FFFFL;
            out.println("info: --seed not given; using --seed " + o.seed);
        }
        Path dump = TrainCommand.writeConfigDump(o);
        out.println("configuration: " + dump);
        throw new UserError("the training loop is not wired in this build yet (flags and configuration checked, " + dump
                + " written)");
    }

    /**
     * Parses and checks the sample prompt file when samples are asked for, then stops: sample generation during
     * training is a separate piece of work that has not landed.
     */
    private void checkSamples() {
        boolean asked = o.sample_at_first || o.sample_every_n_epochs != null || o.sample_every_n_steps != null;
        if (o.sample_prompts == null || !asked) return;
        List<SamplePrompt> prompts = SamplePromptFile.read(o.sample_prompts);
        if (o.vae == null || o.t5 == null) {
            throw new UserError("--sample_prompts: samples need the VAE and the text encoder; add --vae FILE and --t5 FILE");
        }
        throw new UserError("--sample_prompts " + o.sample_prompts + ": " + prompts.size() + " prompt(s) read and checked, but"
                + " sample generation during training is not available yet; remove --sample_every_n_epochs,"
                + " --sample_every_n_steps and --sample_at_first to train without samples");
    }

    /** Refuses to write over files of a run with the same name unless --overwrite or --resume (the same run) is given. */
    private void refuseOverwrite(OutputNames names) {
        if (o.overwrite || o.resume != null) return;
        List<Path> existing = names.existingRunFiles(o.output_dir);
        if (!existing.isEmpty()) {
            throw new UserError(existing.getFirst() + ": exists from an earlier run named '" + o.output_name + "' ("
                    + existing.size() + " file(s)); pass --overwrite to replace them, --resume STATE to continue that run,"
                    + " or choose another --output_name");
        }
    }
}
