package dev.wanlora.engine.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static dev.wanlora.engine.io.SafeTensorsFiles.f32;
import static dev.wanlora.engine.io.SafeTensorsFiles.raw;
import static org.junit.jupiter.api.Assertions.*;

/** Shard sets: {@code -0000k-of-0000n} names and {@code index.json} open the whole set; gaps and clashes are refused. */
class SafeTensorsShardTest {

    @TempDir
    Path tmp;

    private static String tensor(String key, int begin) {
        return "\"" + key + "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" + begin + "," + (begin + 4) + "]}";
    }

    /** Three shards as the official 14B release names them; shard k holds "s{k}.a" = k and "s{k}.b" = 10k. */
    private void writeSet() throws IOException {
        for (int k = 1; k <= 3; k++) {
            raw(tmp.resolve("diffusion_pytorch_model-0000" + k + "-of-00003.safetensors"),
                    "{\"__metadata__\":{\"format\":\"pt\",\"shard\":\"" + k + "\"}," + tensor("s" + k + ".a", 0) + ","
                            + tensor("s" + k + ".b", 4) + "}", f32(k, 10 * k));
        }
    }

    private void writeIndex(String weightMap) throws IOException {
        Files.writeString(tmp.resolve("diffusion_pytorch_model.safetensors.index.json"),
                "{\"metadata\":{\"total_size\":24},\"weight_map\":{" + weightMap + "}}");
    }

    private static final String FULL_MAP = "\"s2.a\":\"diffusion_pytorch_model-00002-of-00003.safetensors\","
            + "\"s1.a\":\"diffusion_pytorch_model-00001-of-00003.safetensors\","
            + "\"s1.b\":\"diffusion_pytorch_model-00001-of-00003.safetensors\","
            + "\"s2.b\":\"diffusion_pytorch_model-00002-of-00003.safetensors\","
            + "\"s3.a\":\"diffusion_pytorch_model-00003-of-00003.safetensors\","
            + "\"s3.b\":\"diffusion_pytorch_model-00003-of-00003.safetensors\"";

    private static final List<String> ALL_KEYS = List.of("s1.a", "s1.b", "s2.a", "s2.b", "s3.a", "s3.b");

    @Test
    void anyShardNameOpensTheWholeSet() throws IOException {
        writeSet();
        Path second = tmp.resolve("diffusion_pytorch_model-00002-of-00003.safetensors");
        try (SafeTensors st = SafeTensors.open(second)) {
            assertEquals(ALL_KEYS, List.copyOf(st.keys()));
            assertArrayEquals(new float[] {30}, st.floats("s3.b"));
            assertEquals(tmp.resolve("diffusion_pytorch_model-00003-of-00003.safetensors"), st.info("s3.b").file());
            assertEquals(second, st.path());
            // Metadata merged over shards; the first shard's value wins where they differ.
            assertEquals(Map.of("format", "pt", "shard", "1"), st.metadata());
        }
    }

    @Test
    void indexOpensTheWholeSet() throws IOException {
        writeSet();
        writeIndex(FULL_MAP);
        try (SafeTensors st = SafeTensors.open(tmp.resolve("diffusion_pytorch_model.safetensors.index.json"))) {
            assertEquals(ALL_KEYS, List.copyOf(st.keys())); // shard order, then header order; not the weight_map order
            assertArrayEquals(new float[] {20}, st.floats("s2.b"));
        }
    }

    @Test
    void missingShardIsNamed() throws IOException {
        writeSet();
        Files.delete(tmp.resolve("diffusion_pytorch_model-00003-of-00003.safetensors"));
        Path first = tmp.resolve("diffusion_pytorch_model-00001-of-00003.safetensors");
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(first));
        assertEquals(first + ": shard set of 3 files is incomplete, missing "
                + tmp.resolve("diffusion_pytorch_model-00003-of-00003.safetensors")
                + ". hint: download every shard into the same folder", e.getMessage());

        writeIndex(FULL_MAP);
        Path index = tmp.resolve("diffusion_pytorch_model.safetensors.index.json");
        e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(index));
        assertTrue(e.getMessage().startsWith(index + ": shard set of 3 files is incomplete, missing "
                + tmp.resolve("diffusion_pytorch_model-00003-of-00003.safetensors")), e.getMessage());
    }

    @Test
    void keyInTwoShards() throws IOException {
        writeSet();
        Path third = tmp.resolve("diffusion_pytorch_model-00003-of-00003.safetensors");
        raw(third, "{" + tensor("s3.a", 0) + "," + tensor("s1.b", 4) + "}", f32(3, 30));
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(third));
        assertEquals(third + ": key 's1.b' is also in " + tmp.resolve("diffusion_pytorch_model-00001-of-00003.safetensors")
                + ". hint: the shards come from different downloads; download the set again", e.getMessage());
    }

    @Test
    void indexThatDisagreesWithTheShards() throws IOException {
        writeSet();
        Path index = tmp.resolve("diffusion_pytorch_model.safetensors.index.json");
        writeIndex(FULL_MAP.replace("\"s2.a\":\"diffusion_pytorch_model-00002", "\"s2.a\":\"diffusion_pytorch_model-00001"));
        SafeTensorsException e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(index));
        assertEquals(index + ": weight_map puts 's2.a' in diffusion_pytorch_model-00001-of-00003.safetensors but it is in"
                + " diffusion_pytorch_model-00002-of-00003.safetensors. hint: the index and shards come from different"
                + " downloads", e.getMessage());

        writeIndex(FULL_MAP.replace(",\"s3.b\":\"diffusion_pytorch_model-00003-of-00003.safetensors\"", ""));
        e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(index));
        assertEquals(index + ": shard diffusion_pytorch_model-00003-of-00003.safetensors has 's3.b', which the weight_map"
                + " does not list. hint: the index and shards come from different downloads", e.getMessage());

        writeIndex("\"s1.a\":\"../elsewhere.safetensors\"");
        e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(index));
        assertEquals(index + ": weight_map entry 's1.a' is \"../elsewhere.safetensors\", expected the name of a shard file"
                + " in the same folder. hint: download the index again", e.getMessage());

        Files.writeString(index, "{\"metadata\":{}}");
        e = assertThrows(SafeTensorsException.class, () -> SafeTensors.open(index));
        assertEquals(index + ": no \"weight_map\" object of key → shard file names. hint: download the index again",
                e.getMessage());
    }
}
