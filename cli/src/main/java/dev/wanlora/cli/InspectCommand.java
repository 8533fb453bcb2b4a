package dev.wanlora.cli;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.io.PthFile;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.models.wan.WanCheckpointKind;
import dev.wanlora.models.wan.vae.WanVaeConfig;
import dev.wanlora.pipeline.UserError;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code wanlora inspect FILE}: what a safetensors file holds. Always: tensor count, dtype histogram, data bytes,
 * metadata, the first tensors. Then what it is, when the names say so: a musubi latent cache
 * ({@code *_wan.safetensors}, spec §5.1), a text-encoder cache ({@code *_wan_te.safetensors}, §5.2), or a LoRA in
 * musubi's {@code lora_unet_*.lora_down/lora_up/alpha} form or the PEFT {@code *.lora_A/lora_B} form (§7.3, §7.4), or
 * a Wan 2.1 VAE (§12).
 */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Summarise a safetensors file (weights, musubi cache, LoRA, umT5), a shard, an index.json or a PyTorch .pth.")
final class InspectCommand implements Callable<Integer> {

    /** Metadata values longer than this are cut (ss_datasets and configs run to kilobytes of JSON). */
    private static final int MAX_VALUE_CHARS = 100;

    /** {@code {item}_{W:04d}x{H:04d}_wan}, the item possibly ending in {@code _{start:05d}-{count:03d}} for a video. */
    private static final Pattern LATENT_NAME = Pattern.compile("(.+?)(?:_(\\d+)-(\\d+))?_(\\d+)x(\\d+)_wan\\.safetensors");
    private static final Pattern TEXT_NAME = Pattern.compile("(.+)_wan_te\\.safetensors");
    private static final Pattern LATENT_KEY = Pattern.compile("latents_(\\d+)x(\\d+)x(\\d+)_(\\w+)");
    private static final Pattern TEXT_KEY = Pattern.compile("varlen_t5_(\\w+)");

    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "FILE", description = "A .safetensors file, one shard of a set, an index.json, or a .pth/.pt state dict.")
    Path file;

    @Option(names = "--limit", paramLabel = "N", defaultValue = "20", description = "Tensors to list (default: ${DEFAULT-VALUE}).")
    int limit;

    @Override
    public Integer call() {
        if (limit < 0) {
            throw new UserError("--limit " + limit + ": expected a count >= 0");
        }
        PrintWriter out = spec.commandLine().getOut();
        if (PthFile.isPthName(file)) {
            try (PthFile pth = PthFile.open(file)) {
                CheckpointInspect.printPth(out, pth, limit);
            }
            out.flush();
            return 0;
        }
        String text = TextFileKind.describe(file);
        if (text != null) throw new UserError(file + ": " + text);
        try (SafeTensors st = SafeTensors.open(file)) {
            printSummary(out, st);
            CheckpointInspect.printKind(out, st);
            printModel(out);
            printCache(out, st);
            printLora(out, st);
            printVae(out, st);
            printTensors(out, st);
        }
        out.flush();
        return 0;
    }

    private static void printSummary(PrintWriter out, SafeTensors st) {
        Map<DType, Integer> histogram = new TreeMap<>();
        long dataBytes = 0;
        for (String k : st.keys()) {
            SafeTensors.TensorInfo info = st.info(k);
            histogram.merge(info.dtype(), 1, Integer::sum);
            dataBytes += info.byteLength();
        }
        out.println("file:     " + st.path());
        long shards = st.keys().stream().map(k -> st.info(k).file()).distinct().count();
        if (shards > 1) out.println("shards:   " + shards);
        out.println("tensors:  " + st.keys().size());
        List<String> parts = new ArrayList<>();
        histogram.forEach((dtype, n) -> parts.add(dtype + " " + n));
        out.println("dtypes:   " + (parts.isEmpty() ? "-" : String.join(", ", parts)));
        out.println("data:     " + String.format(Locale.ROOT, "%,d bytes (%s)", dataBytes, humanBytes(dataBytes)));
        out.println("metadata: " + (st.metadata().isEmpty() ? "none" : st.metadata().size() + " entries"));
        st.metadata().forEach((k, v) -> out.println("  " + k + " = " + abbreviate(v)));
    }

    /** What a DiT checkpoint is (model, task, dtypes, quantization, prefix), when the file is one. */
    private void printModel(PrintWriter out) {
        try (SafeTensors st = SafeTensors.open(file, SafeTensors.DIT_PREFIXES);
             SafeTensors raw = SafeTensors.open(file)) {
            WanCheckpointKind kind = raw.keys().isEmpty() ? null : WanCheckpointKind.of(st, raw.keys().iterator().next());
            if (kind != null) kind.describe().forEach(out::println);
        } catch (IllegalArgumentException | SafeTensorsException e) {
            out.println("Wan2.1 DiT: not loadable (" + e.getMessage() + ")");
        }
    }

    /** Latent or text-encoder cache details, from the file name (spec §5.1, §5.2) and the tensor keys. */
    private void printCache(PrintWriter out, SafeTensors st) {
        String name = file.getFileName().toString();
        Matcher latent = LATENT_NAME.matcher(name);
        Matcher text = TEXT_NAME.matcher(name);
        if (latent.matches()) {
            out.println("musubi latent cache:");
            out.println("  item:          " + latent.group(1));
            if (latent.group(2) != null) {
                out.println("  frames:        start " + number(latent.group(2)) + ", count " + number(latent.group(3)));
            }
            out.println("  original size: " + number(latent.group(4)) + "x" + number(latent.group(5)) + " (WxH)");
            for (String k : st.keys()) {
                Matcher m = LATENT_KEY.matcher(k);
                if (!m.matches()) continue;
                Shape s = st.info(k).shape();
                // the key's numbers may have any number of digits: exact arithmetic, no overflow
                BigInteger frames = number(m.group(1));
                BigInteger eight = BigInteger.valueOf(8);
                out.println("  latent:        " + k + " " + st.info(k).dtype() + " " + s + " = " + frames + " latent frames ("
                        + frames.subtract(BigInteger.ONE).shiftLeft(2).add(BigInteger.ONE) + " video frames), "
                        + number(m.group(2)) + "x" + number(m.group(3)) + " latent HxW ("
                        + eight.multiply(number(m.group(3))) + "x" + eight.multiply(number(m.group(2))) + " pixels WxH)");
            }
        } else if (text.matches()) {
            out.println("musubi text-encoder cache:");
            out.println("  item:          " + text.group(1));
            for (String k : st.keys()) {
                if (!TEXT_KEY.matcher(k).matches()) continue;
                Shape s = st.info(k).shape();
                out.println("  text:          " + k + " " + st.info(k).dtype() + " " + s + (s.rank() != 2
                        ? ": expected (tokens, width)" : " = " + s.dim(0) + " tokens (incl. EOS) of width " + s.dim(1)));
            }
        }
    }

    /** LoRA structure: musubi's {@code X.lora_down.weight (r, in) / X.lora_up.weight (out, r) / X.alpha}, or PEFT's. */
    private static void printLora(PrintWriter out, SafeTensors st) {
        String downSuffix, upSuffix, format;
        if (st.keys().stream().anyMatch(k -> k.startsWith("lora_unet_") && k.endsWith(".lora_down.weight"))) {
            downSuffix = ".lora_down.weight";
            upSuffix = ".lora_up.weight";
            format = "musubi (lora_unet_*.lora_down / lora_up / alpha)";
        } else if (st.keys().stream().anyMatch(k -> k.startsWith("diffusion_model.") && k.endsWith(".lora_A.weight"))) {
            downSuffix = ".lora_A.weight";
            upSuffix = ".lora_B.weight";
            format = "PEFT (*.lora_A / lora_B)";
        } else {
            return;
        }
        TreeSet<Long> ranks = new TreeSet<>();
        TreeMap<Float, Integer> alphas = new TreeMap<>();
        List<String> problems = new ArrayList<>();
        int modules = 0;
        for (String k : st.keys()) {
            if (!k.endsWith(downSuffix)) continue;
            String module = k.substring(0, k.length() - downSuffix.length());
            modules++;
            Shape down = st.info(k).shape();
            if (down.rank() != 2) {
                problems.add(k + " has shape " + down + ", expected (rank, in)");
                continue;
            }
            ranks.add(down.dim(0));
            if (!st.contains(module + upSuffix)) {
                problems.add(module + " has no " + upSuffix.substring(1));
            } else {
                Shape up = st.info(module + upSuffix).shape();
                if (up.rank() != 2 || up.dim(1) != down.dim(0)) {
                    problems.add(module + upSuffix + " has shape " + up + ", expected (out, " + down.dim(0) + ")");
                }
            }
            if (st.contains(module + ".alpha")) {
                SafeTensors.TensorInfo alpha = st.info(module + ".alpha");
                if (alpha.numElements() != 1) problems.add(module + ".alpha has " + alpha.numElements() + " values, expected 1");
                else alphas.merge(scalar(st, module + ".alpha"), 1, Integer::sum);
            }
        }
        out.println("LoRA:");
        out.println("  format:  " + format);
        out.println("  modules: " + modules);
        out.println("  rank:    " + (ranks.isEmpty() ? "-" : ranks.size() == 1 ? ranks.first() : ranks.first() + ".." + ranks.last()));
        if (alphas.isEmpty()) {
            out.println("  alpha:   none (scale 1: " + (downSuffix.contains("lora_A") ? "converters fold alpha/rank into A and B"
                    : "missing alpha") + ")");
        } else {
            List<String> parts = new ArrayList<>();
            alphas.forEach((a, n) -> parts.add(formatFloat(a) + (alphas.size() > 1 ? " (" + n + " modules)" : "")
                    + (ranks.size() == 1 ? ", scale alpha/rank = " + formatFloat(a / ranks.first()) : "")));
            out.println("  alpha:   " + String.join("; ", parts));
            if (alphas.values().stream().mapToInt(Integer::intValue).sum() != modules) {
                problems.add((modules - alphas.values().stream().mapToInt(Integer::intValue).sum()) + " modules have no .alpha");
            }
        }
        for (String p : problems) out.println("  problem: " + p);
    }

    /** A Wan 2.1 VAE (recognised, as ComfyUI does, by decoder.middle.0.residual.0.gamma; spec §12). */
    private static void printVae(PrintWriter out, SafeTensors st) {
        if (!st.contains(WanVaeConfig.DECODER_MARKER)) return;
        WanVaeConfig config;
        try {
            config = WanVaeConfig.fromCheckpoint(st);
        } catch (IllegalArgumentException e) {
            out.println("Wan 2.1 VAE:");
            out.println("  problem: " + e.getMessage());
            return;
        }
        long encoder = 0, decoder = 0, other = 0;
        for (String k : st.keys()) {
            long n = st.info(k).numElements();
            if (k.startsWith("encoder.")) encoder += n;
            else if (k.startsWith("decoder.")) decoder += n;
            else other += n;
        }
        out.println("Wan 2.1 VAE:");
        out.println("  base dim:   " + config.dim() + (config.equals(WanVaeConfig.wan21()) ? " (the release model)" : "")
                + ", latent channels " + config.zDim());
        out.println(String.format(Locale.ROOT, "  parameters: %,d (encoder %,d, decoder %,d, conv1/conv2 %,d)",
                encoder + decoder + other, encoder, decoder, other));
        out.println("  use:        --vae for sample decoding (and latent caching)");
    }

    private void printTensors(PrintWriter out, SafeTensors st) {
        int n = Math.min(limit, st.keys().size());
        if (n == 0) return;
        out.println("first " + n + " tensors:");
        int width = Math.max(1, st.keys().stream().limit(n).mapToInt(String::length).max().orElse(1));
        st.keys().stream().limit(n).forEach(k -> {
            SafeTensors.TensorInfo info = st.info(k);
            out.println(String.format(Locale.ROOT, "  %-" + width + "s  %-7s %s", k, info.dtype(), info.shape()));
        });
        if (st.keys().size() > n) {
            out.println("  ... " + (st.keys().size() - n) + " more (--limit " + st.keys().size() + " lists all)");
        }
    }

    /** A number from a file name or key, however many digits it has. */
    private static BigInteger number(String digits) {
        return new BigInteger(digits);
    }

    /** A one-element tensor's value: float dtypes widened, integer alphas (convert_lora.py writes int64) converted. */
    private static float scalar(SafeTensors st, String key) {
        var data = st.data(key);
        return switch (st.info(key).dtype()) {
            case I64 -> data.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            case I32 -> data.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            case F32, F64, F16, BF16, F8_E4M3, F8_E5M2 -> st.floats(key)[0];
            default -> Float.NaN;
        };
    }

    private static String abbreviate(String value) {
        String line = value.replace("\n", "\\n");
        return line.length() <= MAX_VALUE_CHARS ? line
                : line.substring(0, MAX_VALUE_CHARS) + "... (" + value.length() + " chars)";
    }

    private static String formatFloat(float f) {
        return f == Math.rint(f) && Math.abs(f) < 1e9 ? String.valueOf((long) f) : String.valueOf(f);
    }

    private static String humanBytes(long bytes) {
        if (bytes < 1024) return bytes + " B";
        String[] units = {"KiB", "MiB", "GiB", "TiB"};
        double v = bytes;
        int u = -1;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return String.format(Locale.ROOT, "%.1f %s", v, units[u]);
    }
}
