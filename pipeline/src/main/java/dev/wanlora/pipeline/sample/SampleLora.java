package dev.wanlora.pipeline.sample;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;
import dev.wanlora.models.lora.LoraFile;
import dev.wanlora.models.lora.LoraModuleWeights;
import dev.wanlora.models.lora.LoraNetwork;
import dev.wanlora.models.wan.WanDitConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * One {@code wanlora sample --lora FILE[:WEIGHT]} (with musubi's {@code --lora_multiplier} as the other way to give
 * the weight): the file, its multiplier (applied to the up weights, i.e. to the LoRA's output), the name its samples
 * carry, and its size read from the header alone (for the memory plan, before anything loads).
 *
 * @param name           the file stem, plus "x0.8" when weighted: the files' and the grid's name of this LoRA
 * @param parameterCount Σ of its down and up elements
 * @param rank           its largest rank
 */
public record SampleLora(Path file, float multiplier, String name, long parameterCount, int rank) {

    /**
     * The --lora specs with --lora_multiplier (empty, one weight for all, or one per --lora); each file checked and its
     * header read. A weight given both ways, or a count that matches neither, stops with one line.
     */
    public static List<SampleLora> parse(List<String> specs, List<Float> multipliers) {
        if (!multipliers.isEmpty() && specs.isEmpty()) {
            throw new UserError("--lora_multiplier without --lora: add --lora FILE for each multiplier");
        }
        if (multipliers.size() > 1 && multipliers.size() != specs.size()) {
            throw new UserError("--lora_multiplier: " + multipliers.size() + " weights for " + specs.size()
                    + " --lora files; give one weight, or one per --lora in order");
        }
        List<SampleLora> out = new ArrayList<>();
        for (int i = 0; i < specs.size(); i++) {
            String spec = specs.get(i);
            Path file = Path.of(filePart(spec));
            boolean hasWeight = !filePart(spec).equals(spec);
            if (hasWeight && !multipliers.isEmpty()) {
                throw new UserError("--lora " + spec + " and --lora_multiplier both weight this LoRA; use one of the two");
            }
            float w = hasWeight ? weightPart(spec) : multipliers.isEmpty() ? 1f : multipliers.get(multipliers.size() == 1 ? 0 : i);
            if (!Float.isFinite(w)) throw new UserError("--lora " + spec + ": the multiplier must be a finite number; got " + w);
            if (!Files.isRegularFile(file)) throw new UserError("--lora " + spec + ": no such file " + file);
            long parameters = 0;
            int rank = 0;
            try (SafeTensors st = SafeTensors.open(file)) {
                for (String k : st.keys()) {
                    boolean isDown = k.endsWith(".lora_down.weight") || k.endsWith(".lora_A.weight");
                    if (isDown || k.endsWith(".lora_up.weight") || k.endsWith(".lora_B.weight")) {
                        parameters += st.info(k).shape().numElements();
                    }
                    if (isDown) rank = Math.max(rank, Math.toIntExact(st.info(k).shape().dim(0)));
                }
            } catch (SafeTensorsException e) {
                throw new UserError("--lora " + spec + ": " + e.getMessage(), e);
            }
            if (parameters == 0) {
                throw new UserError("--lora " + spec + ": no LoRA tensors (lora_down/lora_up or lora_A/lora_B); is this a"
                        + " LoRA file?");
            }
            String stem = file.getFileName().toString().replaceFirst("\\.safetensors$", "");
            out.add(new SampleLora(file, w, w == 1f ? stem : stem + "x" + w, parameters, rank));
        }
        return out;
    }

    /** The LoRA on {@code backend} with its up weights scaled by the multiplier. */
    public LoraNetwork load(Backend backend, WanDitConfig config) {
        List<LoraModuleWeights> scaled = new ArrayList<>();
        for (LoraModuleWeights m : LoraFile.read(file).modules()) {
            float[] up = m.up().clone();
            for (int i = 0; i < up.length; i++) up[i] *= multiplier;
            scaled.add(new LoraModuleWeights(m.name(), m.rank(), m.inFeatures(), m.outFeatures(), m.alpha(), m.down(), up));
        }
        return LoraNetwork.fromWeights(backend, config, scaled, file.toString());
    }

    /** "a.safetensors × 0.8 (rank 16)". */
    public String describe() {
        return String.format(Locale.ROOT, "%s × %s (rank %d)", file, multiplier, rank);
    }

    /** The file part of FILE[:WEIGHT] (a Windows drive letter's colon is not a weight separator). */
    static String filePart(String spec) {
        int colon = spec.lastIndexOf(':');
        return colon > 1 && isNumber(spec.substring(colon + 1)) ? spec.substring(0, colon) : spec;
    }

    static float weightPart(String spec) {
        int colon = spec.lastIndexOf(':');
        return colon > 1 && isNumber(spec.substring(colon + 1)) ? Float.parseFloat(spec.substring(colon + 1)) : 1f;
    }

    private static boolean isNumber(String s) {
        try {
            return Float.isFinite(Float.parseFloat(s));
        } catch (NumberFormatException e) {
            return false;
        }
    }
}
