package dev.wanlora.pipeline.train;

import dev.wanlora.pipeline.UserError;
import dev.wanlora.pipeline.tensorboard.EventReader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The loop's helpers: musubi's moving average, state.json, the TensorBoard run log and the plain progress lines. */
class TrainPiecesTest {

    @Test
    void theLastLineGivesTheMeanAndTheMedianOfTheTimedSteps() {
        assertEquals("", TrainingRun.stepTimes(java.util.List.of(), 2));
        assertEquals("", TrainingRun.stepTimes(java.util.List.of(0.7), 2));
        // one slow step (an epoch's first read) moves the mean, not the median, and is named
        assertEquals("; steps after the first: mean 0.700 s/it, median 0.650 s/it, slowest 0.900 s (step 3)",
                TrainingRun.stepTimes(java.util.List.of(0.65, 0.9, 0.65, 0.6), 2));
        assertEquals("; steps after the first: mean 0.650 s/it, median 0.640 s/it, slowest 0.680 s (step 14)",
                TrainingRun.stepTimes(java.util.List.of(0.64, 0.63, 0.68), 12));
    }

    private static <T> java.util.List<T> all(java.util.Iterator<T> items) {
        java.util.List<T> list = new java.util.ArrayList<>();
        items.forEachRemaining(list::add);
        return list;
    }

    /** The read-ahead's sequence runs on from the resume position through every later epoch, in the loop's order. */
    @Test
    void theRemainingBatchesRunAcrossEpochs() {
        java.util.function.IntFunction<java.util.List<String>> epochOf = e -> java.util.List.of(e + "a", e + "b", e + "c");
        assertEquals(java.util.List.of("2c", "3a", "3b", "3c"), all(TrainingRun.remaining(epochOf, 2, 2, 3)));
        assertEquals(java.util.List.of("3a", "3b", "3c"), all(TrainingRun.remaining(epochOf, 2, 3, 3))); // saved at an epoch's end
        assertEquals(java.util.List.of(), all(TrainingRun.remaining(epochOf, 4, 0, 3)));
    }

    @Test
    void lossRecorderIsMusubisMovingAverage() {
        // epoch 0: positions 0,1,2 → mean of all; epoch 1 replaces position by position (a one-epoch window)
        LossRecorder r = new LossRecorder();
        r.add(0, 1.0);
        r.add(1, 2.0);
        r.add(2, 3.0);
        assertEquals(2.0, r.average());
        r.add(0, 4.0); // (4 + 2 + 3) / 3
        assertEquals(3.0, r.average());
        LossRecorder resumed = new LossRecorder(r.losses());
        resumed.add(1, 5.0); // (4 + 5 + 3) / 3
        assertEquals(4.0, resumed.average());
    }

    @Test
    void stateRoundTripAndDamage(@TempDir Path dir) throws IOException {
        TrainState s = new TrainState(TrainState.FORMAT, "lora", 7, 12, 3, 2, 40, 99, 123, new int[]{4, 5}, List.of(0.5, 0.25),
                1.7e9, 42, 1.7e9 + 5);
        Path folder = dir.resolve("lora-step00000012-state");
        s.write(folder, p -> Files.writeString(p, "lora"), p -> Files.writeString(p, "opt"));
        TrainState r = TrainState.read(folder);
        assertEquals(12, r.globalStep());
        assertEquals(3, r.epoch());
        assertEquals(2, r.epochPosition());
        assertEquals(123, r.samplerCounter());
        assertArrayEquals(new int[]{4, 5}, r.samplerBucketPool());
        assertEquals(List.of(0.5, 0.25), r.lossHistory());
        assertEquals("lora", Files.readString(folder.resolve(TrainState.LORA_FILE)));

        Files.delete(folder.resolve(TrainState.OPTIMIZER_FILE));
        UserError e = assertThrows(UserError.class, () -> TrainState.read(folder));
        assertTrue(e.getMessage().endsWith("optimizer.safetensors is missing; the state folder is incomplete, resume from an older one"),
                e.getMessage());
        e = assertThrows(UserError.class, () -> TrainState.read(dir));
        assertTrue(e.getMessage().contains("no state.json in it"), e.getMessage());
    }

    @Test
    void runLogTagsAndFolder(@TempDir Path dir) throws IOException {
        Path file;
        try (TrainLog log = TrainLog.open(dir, "p-", null)) {
            log.step(1, 0.5, 0.5, 1e-4, Double.NaN, Double.NaN, 0.75);
            log.step(2, 0.25, 0.375, 1e-4, 1.5, 2.0, 0.05);
            log.epoch(1, 0.375);
            log.validation(2, Map.of(0.5, 0.125), 0.125);
            file = log.file();
        }
        // {logging_dir}/{prefix}{YYYYmmddHHMMSS}/network_train/events.out.tfevents.*
        assertEquals("network_train", file.getParent().getFileName().toString());
        assertTrue(file.getParent().getParent().getFileName().toString().matches("p-\\d{14}"));
        var events = EventReader.read(file);
        assertEquals(List.of(Map.entry(1L, 0.5f), Map.entry(2L, 0.25f)), EventReader.scalars(events, "loss/current"));
        assertEquals(List.of(Map.entry(2L, 1.5f)), EventReader.scalars(events, "s_per_it"), "no s/it before it is known");
        assertEquals(List.of(Map.entry(2L, 2.0f)), EventReader.scalars(events, "vram_peak_gib"), "no VRAM on the CPU");
        assertEquals(List.of(Map.entry(1L, 0.5f)), EventReader.scalars(events, "loss/timestep_700-799"));
        assertEquals(List.of(Map.entry(2L, 0.25f)), EventReader.scalars(events, "loss/timestep_000-099"));
        assertEquals(List.of(Map.entry(1L, 0.375f)), EventReader.scalars(events, "loss/epoch"));
        assertEquals(List.of(Map.entry(2L, 0.125f)), EventReader.scalars(events, "val_loss/t_0.50"));
        assertEquals("loss/timestep_900-999", TrainLog.timestepTag(1.0));
        try (TrainLog off = TrainLog.open(null, null, null)) {
            off.step(1, 1, 1, 1, 1, 1, 0.5);
            assertEquals(null, off.file());
        }
    }

    @Test
    void plainProgressLines() {
        StringWriter text = new StringWriter();
        try (ProgressDisplay p = ProgressDisplay.create(new PrintWriter(text), false, 0, 10, 5)) {
            for (int step = 1; step <= 10; step++) {
                p.update(new ProgressDisplay.StepReport(step, 10, 1, 2, 2.5, 0.5, 0.25, 1e-4, Double.NaN));
            }
        }
        List<String> lines = text.toString().lines().toList();
        // the first step, every 5th, and the last
        assertEquals(3, lines.size(), lines.toString());
        assertEquals("step 1/10 epoch 1/2 loss 0.5000 avg 0.2500 lr 1.00e-04 2.50 s/it eta 0:00:23", lines.get(0));
        assertEquals("step 10/10 epoch 1/2 loss 0.5000 avg 0.2500 lr 1.00e-04 2.50 s/it eta 0:00:00", lines.get(2));
    }

    /**
     * Issue 14: in an 80-column terminal the bar collapsed to {@code │ │} (the message took the whole line). The bar is
     * drawn by the library into a fixed-width consumer, as a terminal of that width would show it.
     */
    @Test
    void progressBarKeepsItsCellsInNarrowTerminals() {
        for (int width : new int[] {80, 100, 160}) {
            var drawn = new java.io.ByteArrayOutputStream();
            var consumer = new me.tongfei.progressbar.ConsoleProgressBarConsumer(
                    new java.io.PrintStream(drawn, true, java.nio.charset.StandardCharsets.UTF_8), width);
            try (ProgressDisplay p = ProgressDisplay.withBar(new PrintWriter(new StringWriter()), consumer, 35, 450)) {
                // a 14B step: 31.42 s/it, 22.1 GiB
                p.update(new ProgressDisplay.StepReport(36, 450, 4, 50, 31.42, 0.1234, 0.1111, 5e-5, 22.1));
            }
            String[] frames = drawn.toString(java.nio.charset.StandardCharsets.UTF_8).split("\r");
            String last = frames[frames.length - 1].replaceAll("\u001B\\[[0-9;]*[A-Za-z]", "").strip(); // without ANSI codes
            int open = last.indexOf('│'), close = last.lastIndexOf('│');
            assertTrue(close - open - 1 >= ProgressDisplay.MIN_BAR_CELLS, width + " columns: " + last);
            assertTrue(last.length() <= width, width + " columns: " + last);
            assertTrue(last.contains("loss 0.1234"), last);
            if (width >= 160) assertTrue(last.contains("ep 4/50 31.42s/it loss 0.1234 avg 0.1111 lr 5.00e-05 22.1G"), last);
        }
    }
}
