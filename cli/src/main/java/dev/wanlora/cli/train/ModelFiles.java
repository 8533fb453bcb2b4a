package dev.wanlora.cli.train;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.io.SafeTensorsException;

import java.nio.file.Path;
import java.util.Locale;
import java.util.Set;

/**
 * What a model file given to {@code --vae} or {@code --t5} is, told by its tensor names, checked when training starts
 * (a DiT passed for both was accepted and would fail only at the first sample). safetensors files are recognised by
 * their keys: the Wan VAE ({@code encoder.*}, {@code decoder.*}, {@code conv1}, {@code conv2}: musubi's
 * {@code WanVAE_}, testdata/golden/vae-tiny/keys.txt), the umT5 encoder of Wan ({@code token_embedding},
 * {@code blocks.N.attn.*}: testdata/golden/sampling-tiny/t5_keys.txt), the Wan DiT ({@code patch_embedding},
 * {@code blocks.N.self_attn.*}) and LoRA files. A {@code .pth} (PyTorch pickle) is only checked to exist for now.
 */
final class ModelFiles {
    private ModelFiles() {}

    enum Kind {
        VAE("the Wan VAE", "wan_2.1_vae.safetensors"),
        T5("the umT5 text encoder", "models_t5_umt5-xxl-enc-bf16.pth"),
        DIT("a Wan DiT checkpoint", null),
        LORA("a LoRA file", null);

        final String description;
        final String example;

        Kind(String description, String example) {
            this.description = description;
            this.example = example;
        }
    }

    /** Refuses {@code file} for {@code flag} unless it is {@code expected} (or a .pth, not read yet); null passes. */
    static void require(String flag, Path file, Kind expected) {
        if (file == null) return;
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (name.endsWith(".pth") || name.endsWith(".pt")) return;
        String fix = "pass " + expected.description + ", e.g. " + flag + " " + expected.example;
        if (!name.endsWith(".safetensors")) {
            throw new UserError(flag + " " + file + ": expected a .safetensors or .pth file; " + fix);
        }
        Kind found;
        try (SafeTensors st = SafeTensors.open(file)) {
            found = kind(st.keys());
        } catch (SafeTensorsException e) {
            throw new UserError(flag + " " + file + ": not a readable safetensors file (" + e.getMessage() + "); " + fix, e);
        }
        if (found == expected) return;
        throw new UserError(flag + " " + file + ": " + (found == null ? "its tensor names are not those of "
                + expected.description : "is " + found.description + ", not " + expected.description) + "; " + fix);
    }

    /** The kind whose characteristic tensor names {@code keys} has (any prefix before them), or null. */
    static Kind kind(Set<String> keys) {
        if (hasKey(keys, "patch_embedding.weight") || hasKey(keys, "blocks.0.self_attn.q.weight")) return Kind.DIT;
        if (keys.stream().anyMatch(k -> k.contains("lora_down") || k.contains("lora_A") || k.contains("lora_up"))) {
            return Kind.LORA;
        }
        if (hasKey(keys, "decoder.conv1.weight") && hasKey(keys, "encoder.conv1.weight") && hasKey(keys, "conv2.weight")) {
            return Kind.VAE;
        }
        if (hasKey(keys, "token_embedding.weight") && hasKey(keys, "blocks.0.attn.q.weight")) return Kind.T5;
        return null;
    }

    private static boolean hasKey(Set<String> keys, String suffix) {
        return keys.contains(suffix) || keys.stream().anyMatch(k -> k.endsWith("." + suffix));
    }
}
