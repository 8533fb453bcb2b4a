package dev.wanlora.benchmarks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Turns the rows {@link TrainStepBenchmark} appended to {@code $WANLORA_TRAIN_STEP_TABLE} into the per-resolution table
 * of issue 11: {@code java -cp "lib/*" dev.wanlora.benchmarks.TrainStepTable ROWS.tsv OUT} writes {@code OUT.md} (markdown)
 * and {@code OUT.json} (one object per trial). Columns: model, shape, tokens, weights, swap, s/it (median, min, max of
 * the measured steps), peak memory (wanlora's allocations) and plan, % of the GEMM floor (the frozen Linear GEMMs'
 * FLOPs at the GEMM rate measured in the same trial, over the median step), and a profiled step's device time by phase
 * (data, forward, backward with the recompute, update, outside = stalls between ops). A trial that failed (e.g. out
 * of memory) is listed with its reason.
 */
public final class TrainStepTable {
    private TrainStepTable() {}

    private static final String[] KEYS = {"task", "shape", "tokens", "weights", "swap", "checkpoint_attention",
            "backward_weights", "steps", "s_per_it", "min_s", "max_s", "peak_gib", "plan_gib", "gemm_tflop_per_step",
            "gemm_tflops", "gemm_floor_s", "pct_of_floor", "data_ms", "forward_ms", "backward_ms", "update_ms", "outside_ms",
            "device"};

    public static void main(String[] args) throws IOException {
        if (args.length != 2) {
            System.err.println("usage: TrainStepTable ROWS.tsv OUT (writes OUT.md and OUT.json)");
            System.exit(2);
        }
        List<String[]> rows = new ArrayList<>();
        for (String line : Files.readAllLines(Path.of(args[0]))) if (!line.isBlank()) rows.add(line.split("\t", -1));
        Files.writeString(Path.of(args[1] + ".md"), markdown(rows));
        Files.writeString(Path.of(args[1] + ".json"), json(rows));
        System.out.print(markdown(rows));
    }

    static String markdown(List<String[]> rows) {
        StringBuilder md = new StringBuilder("| model | shape (tokens) | weights | swap | s/it (min–max) | peak / plan GiB |"
                + " % of GEMM floor (floor s @ TFLOP/s) | phases ms: data / fwd / bwd+recompute / update / stalls |"
                + " ckpt attn, bwd weights |\n|---|---|---|---|---|---|---|---|---|\n");
        for (String[] r : rows) {
            String model = r[0].replace("t2v-", "");
            if (r.length < KEYS.length) {
                md.append(String.format(Locale.ROOT, "| %s | %s (%s) | %s | %s | %s | | | | |%n", model, r[1], r[2], r[3], r[4],
                        r.length > 5 ? r[5] : "failed"));
                continue;
            }
            md.append(String.format(Locale.ROOT, "| %s | %s (%s) | %s | %s | %.3f (%.3f–%.3f) | %.2f / %.2f | %.0f %% (%.3f @ %.0f) |"
                            + " %.1f / %.1f / %.1f / %.1f / %.1f | %s, %s |%n", model, r[1], r[2], r[3], r[4], d(r[8]), d(r[9]),
                    d(r[10]), d(r[11]), d(r[12]), d(r[16]), d(r[15]), d(r[14]), d(r[17]), d(r[18]), d(r[19]), d(r[20]),
                    d(r[21]), r[5], r[6]));
        }
        String device = rows.stream().filter(r -> r.length >= KEYS.length).map(r -> r[KEYS.length - 1]).distinct()
                .reduce((a, b) -> a + ", " + b).orElse("no device");
        return md.append("\n").append(device).append("; median of the measured steps; peak = wanlora's own device allocations.\n").toString();
    }

    static String json(List<String[]> rows) {
        StringBuilder js = new StringBuilder("[\n");
        for (int i = 0; i < rows.size(); i++) {
            String[] r = rows.get(i);
            js.append("  {");
            if (r.length < KEYS.length) {
                for (int k = 0; k < Math.min(5, r.length); k++) js.append(field(KEYS[k], r[k])).append(", ");
                js.append(quoted("failed")).append(": ").append(quoted(r.length > 5 ? r[5] : "unknown"));
            } else {
                for (int k = 0; k < KEYS.length; k++) js.append(k == 0 ? "" : ", ").append(field(KEYS[k], r[k]));
            }
            js.append(i + 1 < rows.size() ? "},\n" : "}\n");
        }
        return js.append("]\n").toString();
    }

    private static String field(String key, String value) {
        boolean isNumber = value.matches("-?[0-9]+(\\.[0-9]+)?");
        return quoted(key) + ": " + (isNumber ? value : quoted(value));
    }

    private static String quoted(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    private static double d(String s) { return Double.parseDouble(s); }
}
