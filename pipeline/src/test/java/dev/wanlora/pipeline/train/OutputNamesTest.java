package dev.wanlora.pipeline.train;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalLong;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** musubi's file names and --save_last_n_* pruning (spec §11; musubi utils/train_utils.py). */
class OutputNamesTest {

    @Test
    void namesAsMusubi() {
        OutputNames n = new OutputNames("ghibli", 1, null, null, null, null, null);
        assertEquals("ghibli-000001.safetensors", n.epochFile(1));
        assertEquals("ghibli-step00000500.safetensors", n.stepFile(500));
        assertEquals("ghibli.safetensors", n.lastFile());
        assertEquals("ghibli-000012-state", n.epochState(12));
        assertEquals("ghibli-step00000500-state", n.stepState(500));
        assertEquals("ghibli-state", n.lastState());
        assertEquals("ghibli-config.toml", n.configDump());
    }

    @Test
    void epochPruning() {
        // every 2 epochs, keep 3 files: saving epoch 8 removes epoch 8 − 2·3 = 2
        OutputNames n = new OutputNames("x", 2, 3, null, null, null, null);
        assertEquals(OptionalLong.empty(), n.epochFileToRemove(6));
        assertEquals(OptionalLong.of(2), n.epochFileToRemove(8));
        assertEquals(OptionalLong.of(2), n.epochStateToRemove(8), "states follow --save_last_n_epochs");
        OutputNames states = new OutputNames("x", 2, 3, 1, null, null, null);
        assertEquals(OptionalLong.of(6), states.epochStateToRemove(8), "--save_last_n_epochs_state overrides it for states");
        assertEquals(OptionalLong.empty(), new OutputNames("x", 2, null, null, null, null, null).epochFileToRemove(8));
    }

    @Test
    void stepPruning() {
        // musubi's own example: save_every_n_steps=10, save_last_n_steps=30, at step 50 keep 30 steps and remove step 10
        OutputNames n = new OutputNames("x", null, null, null, 10, 30, null);
        assertEquals(OptionalLong.of(10), n.stepFileToRemove(50));
        assertEquals(OptionalLong.empty(), n.stepFileToRemove(40)); // 40 − 31 = 9 → 0: nothing to remove
        assertEquals(OptionalLong.of(10), n.stepStateToRemove(50));
        assertEquals(OptionalLong.of(30), new OutputNames("x", null, null, null, 10, 30, 10).stepStateToRemove(50));
    }

    @Test
    void existingRunFiles(@TempDir Path dir) throws IOException {
        for (String f : List.of("a.safetensors", "a-000001.safetensors", "a-step00000010.safetensors", "a-config.toml",
                "ab-000001.safetensors", "a-000001.safetensors.tmp", "b.safetensors")) {
            Files.writeString(dir.resolve(f), "");
        }
        Files.createDirectory(dir.resolve("a-000002-state"));
        OutputNames n = new OutputNames("a", null, null, null, null, null, null);
        assertEquals(List.of("a-000001.safetensors", "a-000002-state", "a-step00000010.safetensors", "a.safetensors"),
                n.existingRunFiles(dir).stream().map(p -> p.getFileName().toString()).toList());
    }
}
