package dev.wanlora.models.lora;

import dev.wanlora.engine.io.ModelHashes;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsWriter;
import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp16;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads and writes Wan LoRA files in musubi's layout or the converted PEFT layout ({@link LoraFormat}; spec §7.3,
 * §7.4).
 *
 * <p><b>Writing.</b> Every tensor is stored in the {@link SavePrecision} (musubi converts its whole state dict,
 * alpha included, to --save_precision). The tensors are written in the order the Rust safetensors serializer uses
 * (dtype, then name), so the file's data section is the one musubi's {@code save_file} writes. The metadata gets
 * musubi's {@code sshs_model_hash} and {@code sshs_legacy_hash} ({@link ModelHashes}), computed over the
 * written tensors and the {@code ss_*} keys only, exactly as musubi's {@code precalculate_safetensors_hashes}.
 * The PEFT form follows musubi's {@code convert_lora.py --target other} (L83‑180 at 30c658c4): keys
 * {@code diffusion_model.<module path>.lora_A.weight} / {@code lora_B.weight}, module path recovered from the musubi
 * name by "_" → "." and fixing {@code self_attn}/{@code cross_attn}/{@code k_img}/{@code v_img}; both matrices
 * multiplied by √(alpha/rank) computed in the save precision (alpha/rank, its sqrt and each product rounded to it,
 * as torch computes on the saved tensors); no alpha key. The converter copies the metadata; we write it with hashes
 * of the PEFT tensors.
 *
 * <p><b>Reading</b> detects the layout from the keys. PEFT files ({@code diffusion_model.} or {@code transformer.}
 * prefix, as musubi's converter accepts) read back with alpha = rank (musubi's {@code convert_from_diffusers}), or
 * with their alpha key if one is present. Values are widened to float exactly.
 */
public final class LoraFile {
    private LoraFile() {}

    /** musubi's module-name prefix for DiT LoRA modules. */
    public static final String MUSUBI_PREFIX = "lora_unet_";
    /** The key prefix of the PEFT form ({@code convert_lora.py}'s default {@code --diffusers_prefix}). */
    public static final String PEFT_PREFIX = "diffusion_model";
    /** Largest rank or feature count a LoRA module may have: far above any Wan layer (the 14B FFN has 13824). */
    static final long MAX_FEATURES = 1 << 20;

    private static final Pattern MUSUBI_KEY = Pattern.compile("(.+)\\.(lora_down\\.weight|lora_up\\.weight|alpha)");
    private static final Pattern PEFT_KEY = Pattern.compile("(diffusion_model|transformer)\\.(.+)\\.(lora_A\\.weight|lora_B\\.weight|alpha)");

    /** A LoRA file's contents: its modules (in name order), its layout, its tensors' dtype and its metadata. */
    public record Contents(List<LoraModuleWeights> modules, LoraFormat format, DType dtype, Map<String, String> metadata) {}

    /**
     * Writes {@code modules} to {@code file} (atomically) in {@code format}, every tensor in {@code precision}, with
     * {@code metadata} (e.g. {@link LoraMetadata#toMap}) plus the two sshs_* hashes.
     */
    public static void write(Path file, List<LoraModuleWeights> modules, SavePrecision precision, LoraFormat format,
                             Map<String, String> metadata) {
        List<SafeTensorsWriter.Entry> entries = new ArrayList<>();
        DType dtype = precision.dtype();
        for (LoraModuleWeights w : modules) {
            Shape downShape = Shape.of(w.rank(), w.inFeatures()), upShape = Shape.of(w.outFeatures(), w.rank());
            float[] down = round(dtype, w.down()), up = round(dtype, w.up());
            float alpha = round(dtype, w.alpha());
            if (format == LoraFormat.MUSUBI) {
                entries.add(SafeTensorsWriter.Entry.ofFloats(w.name() + ".lora_down.weight", dtype, downShape, down));
                entries.add(SafeTensorsWriter.Entry.ofFloats(w.name() + ".lora_up.weight", dtype, upShape, up));
                entries.add(SafeTensorsWriter.Entry.ofFloats(w.name() + ".alpha", dtype, Shape.of(), new float[] {alpha}));
            } else {
                String key = PEFT_PREFIX + "." + modulePath(w.name());
                // convert_to_diffusers: scale = (alpha / dim).sqrt(), each op on the saved dtype, then weight * scale
                float scale = round(dtype, (float) Math.sqrt(round(dtype, alpha / w.rank())));
                entries.add(SafeTensorsWriter.Entry.ofFloats(key + ".lora_A.weight", dtype, downShape, scaled(dtype, down, scale)));
                entries.add(SafeTensorsWriter.Entry.ofFloats(key + ".lora_B.weight", dtype, upShape, scaled(dtype, up, scale)));
            }
        }
        List<SafeTensorsWriter.Entry> sorted = ModelHashes.canonicalOrder(entries);
        ModelHashes hashes = ModelHashes.of(sorted, metadata);
        Map<String, String> full = new LinkedHashMap<>(metadata);
        full.put("sshs_model_hash", hashes.modelHash());
        full.put("sshs_legacy_hash", hashes.legacyHash());
        SafeTensorsWriter.write(file, sorted, full);
    }

    /** Reads a LoRA file of either layout; a key, shape or dtype that does not fit ends in one line naming the file. */
    public static Contents read(Path file) {
        try (SafeTensors st = SafeTensors.open(file)) {
            if (st.keys().isEmpty()) throw error(file, "has no tensors", "LoRA tensors (lora_down/lora_up/alpha or lora_A/lora_B)");
            boolean isPeft = st.keys().stream().anyMatch(k -> k.endsWith(".lora_A.weight") || k.endsWith(".lora_B.weight"));
            Pattern pattern = isPeft ? PEFT_KEY : MUSUBI_KEY;
            // module name → {"down"/"up"/"alpha" → key}
            Map<String, Map<String, String>> byModule = new TreeMap<>();
            DType dtype = null;
            for (String key : st.keys()) {
                Matcher m = pattern.matcher(key);
                if (!m.matches()) {
                    throw error(file, "has key '" + key + "', which is not part of a "
                            + (isPeft ? "PEFT (diffusion_model.….lora_A/lora_B.weight)" : "musubi (….lora_down.weight/lora_up.weight/alpha)")
                            + " LoRA", "only LoRA keys of one layout. hint: LoHa/LoKr and mixed files are not supported");
                }
                String name = isPeft ? MUSUBI_PREFIX + m.group(2).replace('.', '_') : m.group(1);
                String part = switch (m.group(isPeft ? 3 : 2)) {
                    case "lora_down.weight", "lora_A.weight" -> "down";
                    case "lora_up.weight", "lora_B.weight" -> "up";
                    default -> "alpha";
                };
                byModule.computeIfAbsent(name, n -> new LinkedHashMap<>()).put(part, key);
                if (!part.equals("alpha")) dtype = checkDType(file, key, st.info(key).dtype(), dtype);
            }
            List<LoraModuleWeights> modules = new ArrayList<>();
            for (var e : byModule.entrySet()) modules.add(module(file, st, e.getKey(), e.getValue(), isPeft));
            return new Contents(List.copyOf(modules), isPeft ? LoraFormat.PEFT : LoraFormat.MUSUBI, dtype, st.metadata());
        }
    }

    private static LoraModuleWeights module(Path file, SafeTensors st, String name, Map<String, String> keys, boolean isPeft) {
        String downKey = keys.get("down"), upKey = keys.get("up"), alphaKey = keys.get("alpha");
        if (downKey == null || upKey == null) {
            String present = downKey != null ? downKey : upKey != null ? upKey : alphaKey;
            throw error(file, "module " + name + " has " + present + " but no " + (downKey == null ? "down" : "up")
                    + " matrix", "both " + (isPeft ? "lora_A.weight and lora_B.weight" : "lora_down.weight and lora_up.weight"));
        }
        Shape down = st.info(downKey).shape(), up = st.info(upKey).shape();
        if (down.rank() != 2 || up.rank() != 2 || down.dim(0) != up.dim(1)) {
            throw error(file, "module " + name + " has down " + down + " and up " + up,
                    "down (rank, in) and up (out, rank) with the same rank");
        }
        for (long d : new long[] {down.dim(0), down.dim(1), up.dim(0)}) {
            if (d < 1 || d > MAX_FEATURES) {
                throw error(file, "module " + name + " has down " + down + " and up " + up,
                        "rank and feature counts from 1 to " + MAX_FEATURES);
            }
        }
        int rank = (int) down.dim(0);
        float alpha;
        if (alphaKey != null) {
            alpha = scalar(file, st, alphaKey);
        } else if (isPeft) {
            alpha = rank; // convert_from_diffusers: "Diffusers has no alpha, so alpha is set to rank"
        } else {
            throw error(file, "module " + name + " has no alpha", "'" + name + ".alpha' (a scalar) beside lora_down/lora_up."
                    + " hint: re-save the LoRA with musubi, or convert it with musubi's convert_lora.py");
        }
        if (!Float.isFinite(alpha)) throw error(file, "module " + name + " has alpha " + alpha, "a finite alpha");
        return new LoraModuleWeights(name, rank, (int) down.dim(1), (int) up.dim(0), alpha,
                finite(file, downKey, st.floats(downKey)), finite(file, upKey, st.floats(upKey)));
    }

    /** The values, unless one is NaN or infinite: such a LoRA is damaged (training or a resume would spread it). */
    private static float[] finite(Path file, String key, float[] values) {
        for (int i = 0; i < values.length; i++) {
            if (!Float.isFinite(values[i])) {
                throw error(file, "has " + values[i] + " at element " + i + " of '" + key + "'",
                        "finite weights. hint: the file is damaged; use an earlier LoRA or state folder");
            }
        }
        return values;
    }

    /** An alpha: a 0-d or one-element tensor, float or integer (convert_lora.py writes torch.tensor(rank), an int64). */
    private static float scalar(Path file, SafeTensors st, String key) {
        var info = st.info(key);
        if (info.numElements() != 1) throw error(file, "has alpha '" + key + "' of shape " + info.shape(), "a scalar");
        var data = st.data(key);
        return switch (info.dtype()) {
            case I64 -> data.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            case I32 -> data.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
            case F32, F16, BF16, F64 -> st.floats(key)[0];
            default -> throw error(file, "has alpha '" + key + "' of dtype " + info.dtype(), "F32, F16, BF16, F64, I64 or I32");
        };
    }

    private static DType checkDType(Path file, String key, DType found, DType previous) {
        if (found != DType.F32 && found != DType.BF16 && found != DType.F16) {
            throw error(file, "has '" + key + "' of dtype " + found, "F32, BF16 or F16 LoRA weights");
        }
        if (previous != null && previous != found) {
            throw error(file, "mixes " + previous + " and " + found + " weights (at '" + key + "')", "one dtype for all weights");
        }
        return found;
    }

    /**
     * musubi's module path for a LoRA name (convert_lora.py): {@code lora_unet_blocks_0_self_attn_q} →
     * {@code blocks.0.self_attn.q}.
     */
    static String modulePath(String name) {
        if (!name.startsWith(MUSUBI_PREFIX)) {
            throw new IllegalArgumentException("LoraFile: module name '" + name + "' does not start with " + MUSUBI_PREFIX
                    + "; expected musubi DiT module names, which the PEFT form can convert");
        }
        String path = name.substring(MUSUBI_PREFIX.length()).replace('_', '.');
        if (path.contains(".cross.attn.") || path.contains(".self.attn.")) {
            path = path.replace("cross.attn", "cross_attn").replace("self.attn", "self_attn")
                    .replace("k.img", "k_img").replace("v.img", "v_img");
        }
        return path;
    }

    private static float[] round(DType dtype, float[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) out[i] = round(dtype, values[i]);
        return out;
    }

    private static float round(DType dtype, float v) {
        return switch (dtype) {
            case BF16 -> Bf16.round(v);
            case F16 -> Fp16.round(v);
            default -> v;
        };
    }

    /** weight·scale with the product rounded to dtype (torch computes it in fp32 for bf16/fp16 operands). */
    private static float[] scaled(DType dtype, float[] w, float scale) {
        float[] out = new float[w.length];
        for (int i = 0; i < w.length; i++) out[i] = round(dtype, w[i] * scale);
        return out;
    }

    private static IllegalArgumentException error(Path file, String found, String expected) {
        return new IllegalArgumentException(file + ": LoRA file " + found + "; expected " + expected);
    }
}
