package dev.wanlora.cli.demo;

import dev.wanlora.cli.CommandRun;
import dev.wanlora.cli.Main;
import dev.wanlora.pipeline.tensorboard.EventReader;
import dev.wanlora.engine.io.SafeTensors;
import org.jcodec.api.FrameGrab;
import org.jcodec.common.io.NIOUtils;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

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
    void trainsTwoEpochsAndRepeatsItselfInItsOwnFolder(@TempDir Path tmp) throws Exception {
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
        // samples after each epoch: a 9-frame .mp4 and a .png per epoch, playable; the phase's time in the log
        List<Path> samples = files(output.resolve("sample"));
        assertEquals(4, samples.size(), samples.toString());
        assertEquals(2, samples.stream().filter(p -> p.getFileName().toString().matches("demo_e00000[12]_00_\\d{14}_1\\.mp4")).count(),
                samples.toString());
        assertEquals(2, samples.stream().filter(p -> p.getFileName().toString().matches("demo_e00000[12]_01_\\d{14}_2_000\\.png")).count(),
                samples.toString());
        assertEquals(2, first.out().lines().filter(l -> l.matches("sampling: 2 sample\\(s\\) after epoch [12] in .* s")).count(),
                first.out());
        assertTrue(first.out().contains("sample 01/02 [####################] 10/10 steps"), first.out());
        try (var ch = NIOUtils.readableChannel(samples.stream().filter(p -> p.toString().endsWith(".mp4")).findFirst()
                .orElseThrow().toFile())) {
            FrameGrab grab = FrameGrab.createFrameGrab(ch);
            for (int f = 0; f < 9; f++) assertEquals(64, grab.getNativeFrame().getCroppedWidth(), "frame " + f);
        }
        List<EventReader.Event> events = EventReader.read(eventFile(dir.resolve("logs")));
        assertEquals(2, events.stream().filter(e -> e.images().containsKey("sample/00")).count());
        assertTrue(events.stream().anyMatch(e -> e.scalars().containsKey("sampling/seconds")));
        Map<String, float[]> epoch2 = tensors(output.resolve("demo-000002.safetensors"));

        // the folder is the demo's own: a second run replaces it, and the seeded run repeats bit for bit
        CommandRun second = demo(dir);
        assertEquals(0, second.exitCode(), second.out() + second.err());
        Map<String, float[]> again = tensors(output.resolve("demo-000002.safetensors"));
        assertEquals(epoch2.keySet(), again.keySet());
        epoch2.forEach((k, v) -> assertArrayEquals(v, again.get(k), k));
    }

    private static List<Path> files(Path folder) throws IOException {
        try (Stream<Path> s = Files.list(folder)) {
            return s.sorted().toList();
        }
    }

    private static Path eventFile(Path logs) throws IOException {
        try (Stream<Path> s = Files.walk(logs)) {
            return s.filter(p -> p.getFileName().toString().startsWith("events.out.tfevents.")).findFirst().orElseThrow();
        }
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
