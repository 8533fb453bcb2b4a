package dev.wanlora.pipeline.train;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraModule;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.lora.NetworkArgs;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.pipeline.UserError;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The run's LoRA network (musubi's lora_wan): made fresh from the seed, or read from the file it starts from (a
 * resumed state's LoRA, or --network_weights), then described in one line (and per module with verbose network args).
 */
public final class LoraSetup {
    private LoraSetup() {}

    /**
     * @param source   the LoRA file to start from (a state's, or --network_weights), or null for a fresh one
     * @param resuming the source is a resumed state's LoRA
     * @param rank     --network_dim, or null (fresh: 4; from a file: the file's rank)
     * @param alpha    --network_alpha (fresh networks)
     * @param seed     the run's seed (fresh networks' initialisation)
     * @param args     --network_args as musubi's lora_wan reads them
     */
    public record Settings(Path source, boolean resuming, Integer rank, double alpha, long seed, NetworkArgs args) {}

    /** @throws UserError for a file that is not a LoRA of this model, or of another rank than --network_dim */
    public static LoraNetwork create(Backend backend, WanDitConfig config, Settings s, PrintWriter out) {
        LoraNetwork network;
        if (s.source() == null) {
            try {
                network = LoraNetwork.create(backend, config, s.rank() == null ? 4 : s.rank(), (float) s.alpha(), s.seed(),
                        s.args().selection());
            } catch (IllegalArgumentException e) {
                throw new UserError(e.getMessage(), e);
            }
        } else {
            network = read(backend, config, s.source(), s.args(), out);
            int rank = network.modules().getFirst().rank();
            if (s.rank() != null && s.rank() != rank) {
                network.close();
                throw new UserError(s.source() + ": LoRA rank " + rank + " differs from --network_dim " + s.rank()
                        + "; pass --network_dim " + rank + " or leave it out");
            }
            out.println((s.resuming() ? "resuming LoRA from " : "initial LoRA weights from ") + s.source() + " (rank " + rank + ")");
        }
        out.printf(Locale.ROOT, "LoRA: %d modules, rank %d, alpha %s, %,d parameters%n", network.modules().size(),
                network.modules().getFirst().rank(), fmt(network.modules().getFirst().alpha()), network.numParameters());
        if (s.args().isVerbose()) { // lora.py: each module's name, rank and alpha
            for (LoraModule m : network.modules()) {
                out.printf(Locale.ROOT, "\t%-50s %d, %s%n", m.name(), m.rank(), fmt(m.alpha()));
            }
        }
        return network;
    }

    private static LoraNetwork read(Backend backend, WanDitConfig config, Path file, NetworkArgs args, PrintWriter out) {
        try {
            long start = System.nanoTime();
            LoraNetwork network = LoraNetwork.fromWeights(backend, config, LoraFile.read(file).modules(), file.toString(),
                    args.selection());
            out.println(LoadProgress.summary(file.getFileName().toString(), fileBytes(file), (System.nanoTime() - start) / 1e9));
            return network;
        } catch (IllegalArgumentException | SafeTensorsException e) {
            throw new UserError(e.getMessage(), e);
        }
    }

    /** The size of a file that was just read (0 if it cannot be asked: the summary line is informational). */
    public static long fileBytes(Path file) {
        try {
            return Files.size(file);
        } catch (IOException e) {
            return 0;
        }
    }

    /** A number as musubi prints it: whole numbers without a fraction. */
    public static String fmt(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e6 ? Long.toString((long) v) : Double.toString(v);
    }
}
