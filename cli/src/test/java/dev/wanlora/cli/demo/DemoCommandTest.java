package dev.wanlora.cli.demo;

import dev.wanlora.cli.CommandRun;
import dev.wanlora.cli.Main;
import dev.wanlora.engine.io.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code wanlora demo} (issue 3): files, a loss line per step, a second run over its own folder, and refusal of others. */
class DemoCommandTest {

    private static CommandRun demo(Path dir) {
        return CommandRun.run("demo", "--dir", dir.toString(), "--backend", "cpu");
    }

    private static Map<String, float[]> tensors(Path file) {
        Map<String, float[]> m = new HashMap<>();
        try (SafeTensors st = SafeTensors.open(file)) {
            for (String k : st.keys()) m.put(k, st.floats(k));
        }
        return m;
    }

    @Test
    void trainsTwoEpochsAndRepeatsItselfInItsOwnFolder(@TempDir Path tmp) {
        Path dir = tmp.resolve("demo-run");
        CommandRun first = demo(dir);
        assertEquals(0, first.exitCode(), first.out() + first.err());
        // 3 images + 2 clips, batch size 1: 5 steps per epoch, 2 epochs, one loss line per step
        List<String> steps = first.out().lines().filter(l -> l.startsWith("step ")).toList();
        assertEquals(10, steps.size(), first.out());
        assertTrue(steps.getLast().startsWith("step 10/10 epoch 2/2 loss "), steps.getLast());
        Path output = dir.resolve("output");
        for (String f : List.of("demo-000001.safetensors", "demo-000002.safetensors", "demo.safetensors")) {
            assertTrue(Files.isRegularFile(output.resolve(f)), f);
        }
        assertTrue(first.out().contains("the demo also copied it to demo-000002.safetensors"), first.out());
        Map<String, float[]> epoch2 = tensors(output.resolve("demo-000002.safetensors"));

        // the folder is the demo's own: a second run replaces it, and the seeded run repeats bit for bit
        CommandRun second = demo(dir);
        assertEquals(0, second.exitCode(), second.out() + second.err());
        Map<String, float[]> again = tensors(output.resolve("demo-000002.safetensors"));
        assertEquals(epoch2.keySet(), again.keySet());
        epoch2.forEach((k, v) -> assertArrayEquals(v, again.get(k), k));
    }

    @Test
    void neverOverwritesAForeignFolder(@TempDir Path tmp) throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("mine"));
        Files.writeString(dir.resolve("notes.txt"), "keep me");
        CommandRun r = demo(dir);
        assertEquals(Main.USER_ERROR, r.exitCode());
        assertEquals(1, r.err().lines().count(), r.err());
        assertTrue(r.err().contains("exists and was not made by wanlora demo"), r.err());
        assertEquals("keep me", Files.readString(dir.resolve("notes.txt")));
    }
}
