package dev.wanlora.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.dataformat.toml.TomlMapper;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Recognises a text file handed to a command that reads safetensors ({@code wanlora inspect dataset.toml} said
 * "header length 7809649008806553435 is larger than the file"): a safetensors file starts with an 8-byte little-endian
 * header length, whose high bytes are zero, so text without NUL bytes is never one. Says what the text is and which
 * command reads it.
 */
final class TextFileKind {
    private TextFileKind() {}

    /** Bytes looked at: enough for a config file's first tables. */
    private static final int SNIFF_BYTES = 64 * 1024;

    /**
     * What {@code file} is when it is a text file ("a musubi dataset config (TOML); read it with ..."), or null when it
     * is not text, or is a sharded checkpoint's index.json (which safetensors readers open).
     */
    static String describe(Path file) {
        byte[] head;
        long size;
        try (InputStream in = Files.newInputStream(file)) {
            head = in.readNBytes(SNIFF_BYTES);
            size = Files.size(file);
        } catch (IOException e) {
            return null; // the safetensors reader reports unreadable files
        }
        if (head.length == 0 || !isText(head)) return null;
        String text = new String(head, StandardCharsets.UTF_8);
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        boolean isWhole = size <= SNIFF_BYTES;
        if (text.stripLeading().startsWith("{")) {
            JsonNode json = isWhole ? parse(new JsonMapper(), text) : null;
            if (json != null && json.has("weight_map")) return null;
            return "a JSON text file, not safetensors; inspect reads .safetensors files and a sharded checkpoint's"
                    + " index.json (one with a weight_map)";
        }
        JsonNode toml = isWhole ? parse(new TomlMapper(), text) : null;
        if (toml != null && (toml.has("datasets") || toml.has("general"))) {
            return "a musubi dataset config (TOML), not safetensors; read it with wanlora dataset --dataset_config " + file
                    + " (items, buckets, batches) or pass it to wanlora train --dataset_config";
        }
        if (toml != null && (toml.has("dit") || toml.has("output_name") || toml.has("network_dim"))) {
            return "a wanlora train configuration (TOML), not safetensors; run it with wanlora train --config_file " + file;
        }
        if (toml != null && name.endsWith(".toml")) {
            return "a TOML text file, not safetensors; dataset configs go to wanlora dataset/train --dataset_config, flag"
                    + " files to wanlora train --config_file";
        }
        return "a text file, not safetensors" + (name.endsWith(".txt")
                ? "; sample prompts go to wanlora train --sample_prompts, captions sit beside the cached items" : "")
                + "; inspect reads .safetensors files";
    }

    private static boolean isText(byte[] bytes) {
        for (byte b : bytes) if (b == 0) return false;
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes, 0, safeEnd(bytes)));
            return true;
        } catch (CharacterCodingException e) {
            return false;
        }
    }

    /** The end of the last whole UTF-8 sequence, so a sniff that cuts a character in two still decodes. */
    private static int safeEnd(byte[] bytes) {
        int end = bytes.length;
        for (int back = 1; back <= 3 && end - back >= 0; back++) {
            int b = bytes[end - back] & 0xFF;
            if ((b & 0xC0) == 0xC0) return end - back; // a lead byte: maybe incomplete, cut before it
            if ((b & 0x80) == 0) break;
        }
        return end;
    }

    private static JsonNode parse(com.fasterxml.jackson.databind.ObjectMapper mapper, String text) {
        try {
            return mapper.readTree(text);
        } catch (IOException e) {
            return null;
        }
    }
}
