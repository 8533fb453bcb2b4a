package dev.wanlora.cli.train;

import dev.wanlora.pipeline.train.OutputLock;
import dev.wanlora.pipeline.UserError;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 15 items 3 and 7 with real files and processes: the output-folder lock against another process (refused,
 * naming its pid and host), a lock left by a killed process (stale, taken over), and a signal during start-up (the
 * shutdown hook returns at once instead of waiting for a step boundary).
 */
class OutputLockTest {

    @TempDir
    Path dir;

    /** Child process: takes the lock of args[0], prints "locked", holds it until killed. */
    public static void main(String[] args) throws Exception {
        OutputLock lock = OutputLock.acquire(Path.of(args[0]));
        System.out.println("locked " + ProcessHandle.current().pid());
        System.out.flush();
        Thread.sleep(TimeUnit.MINUTES.toMillis(5));
        lock.close();
    }

    @Test
    @Timeout(60)
    void anotherProcessHoldingTheFolderRefusesThisRunUntilItDies() throws Exception {
        Path out = dir.resolve("out");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process child = new ProcessBuilder(List.of(java, "-cp", System.getProperty("java.class.path"), OutputLockTest.class.getName(),
                out.toString())).redirectErrorStream(true).start();
        try {
            BufferedReader lines = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
            String first = CompletableFuture.supplyAsync(() -> {
                try {
                    return lines.readLine();
                } catch (IOException e) {
                    return e.toString();
                }
            }).get(50, TimeUnit.SECONDS);
            assertEquals("locked " + child.pid(), first);

            UserError e = assertThrows(UserError.class, () -> OutputLock.acquire(out));
            assertTrue(e.getMessage().startsWith("--output_dir " + out + ": another wanlora train (pid " + child.pid() + " on host "),
                    e.getMessage());
            assertTrue(e.getMessage().endsWith(") is using this folder; wait for it to end, or pass another --output_dir"),
                    e.getMessage());
        } finally {
            child.destroyForcibly(); // kill -9: no chance to empty the lock file
            child.waitFor(30, TimeUnit.SECONDS);
        }
        assertTrue(Files.readString(out.resolve(OutputLock.FILE_NAME)).startsWith("pid " + child.pid()));
        try (OutputLock lock = OutputLock.acquire(out)) {
            assertTrue(lock.staleHolder().orElseThrow().startsWith("pid " + child.pid() + " on host "), lock.staleHolder().toString());
            assertTrue(Files.readString(out.resolve(OutputLock.FILE_NAME)).startsWith("pid " + ProcessHandle.current().pid()));
        }
        try (OutputLock lock = OutputLock.acquire(out)) {
            assertFalse(lock.staleHolder().isPresent(), "a lock released normally is not stale");
        }
    }

    @Test
    void secondLockInTheSameProcessIsRefused() {
        Path out = dir.resolve("same");
        try (OutputLock first = OutputLock.acquire(out)) {
            assertThrows(UserError.class, () -> OutputLock.acquire(out));
        }
        OutputLock.acquire(out).close();
    }

    /** Item 3: SIGTERM during start-up waited up to 10 minutes for a step boundary that never came. */
    @Test
    @Timeout(30)
    void signalBeforeTheFirstStepStopsAtOnceAndAfterItWaitsForTheSave() throws Exception {
        try (RunInterrupt interrupt = RunInterrupt.install(line -> { })) {
            long started = System.nanoTime();
            interrupt.onSignal(); // start-up: nothing to save, the hook returns and the JVM may exit
            assertTrue(System.nanoTime() - started < TimeUnit.SECONDS.toNanos(1));
            assertTrue(interrupt.isRequested());
        }
        RunInterrupt training = RunInterrupt.install(line -> { });
        training.trainingStarted();
        CompletableFuture<Void> hook = CompletableFuture.runAsync(training::onSignal);
        Thread.sleep(300);
        assertFalse(hook.isDone(), "during training the hook waits for the loop's save");
        training.close();
        hook.get(10, TimeUnit.SECONDS);
    }
}
