package dev.wanlora.pipeline.train;

import dev.wanlora.pipeline.UserError;

import java.io.IOException;
import java.net.InetAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Optional;

/**
 * One training run per output folder: {@value #FILE_NAME} in {@code --output_dir}, locked by the operating system
 * while a run holds it and holding that run's pid and host for the message a second run prints. Two runs in one
 * folder would interleave their states and epoch files, and the "earlier run exists" check alone races.
 *
 * <p>Why an OS lock rather than "the file exists": the kernel releases the lock when its process dies however it dies
 * ({@code kill -9}, a power cut on a network mount), so a stale lock cannot block the next run. A lock file that still
 * names a run but is not locked is such a stale lock; it is taken over with one info line. The file stays after a run
 * (emptied), because deleting it while locked would let a third run lock a new file while a second one waits on the
 * old one. Where the file system cannot lock, the pid and host decide: a live pid on this host refuses the run.
 */
public final class OutputLock implements AutoCloseable {
    public static final String FILE_NAME = ".wanlora.lock";

    private final FileChannel channel;
    private final FileLock lock;
    private final String stale;

    private OutputLock(FileChannel channel, FileLock lock, String stale) {
        this.channel = channel;
        this.lock = lock;
        this.stale = stale;
    }

    /**
     * Creates {@code dir} if needed and locks it for this process.
     *
     * @throws UserError when another run holds the folder, or the folder cannot be created or written
     */
    public static OutputLock acquire(Path dir) {
        Path file = dir.resolve(FILE_NAME);
        FileChannel ch;
        try {
            Files.createDirectories(dir);
            ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new UserError("--output_dir " + dir + ": cannot create the lock file " + FILE_NAME + " ("
                    + e.getClass().getSimpleName() + ": " + e.getMessage() + "); check that the folder is writable");
        }
        try {
            FileLock lock;
            boolean canLock = true;
            try {
                lock = ch.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null; // this JVM already holds it: another run in the same process
            } catch (IOException e) {
                lock = null;
                canLock = false;
            }
            String holder = read(ch).strip();
            if (lock == null && (canLock || isAlive(holder))) {
                ch.close();
                throw new UserError("--output_dir " + dir + ": another wanlora train (" + (holder.isEmpty() ? "starting" : holder)
                        + ") is using this folder; wait for it to end, or pass another --output_dir");
            }
            ch.truncate(0);
            ch.write(ByteBuffer.wrap(("pid " + ProcessHandle.current().pid() + " on host " + host() + "\n")
                    .getBytes(StandardCharsets.UTF_8)), 0);
            ch.force(true);
            return new OutputLock(ch, lock, holder.isEmpty() ? null : holder);
        } catch (IOException e) {
            closeQuietly(ch);
            throw new UserError(file + ": cannot write the lock file (" + e.getMessage() + "); check that the folder is writable");
        } catch (RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
    }

    /** The earlier run ("pid N on host H") whose lock was found stale and taken over, if any. */
    public Optional<String> staleHolder() {
        return Optional.ofNullable(stale);
    }

    /** Empties the lock file and releases the lock. Idempotent. */
    @Override
    public void close() {
        if (!channel.isOpen()) return;
        try {
            channel.truncate(0);
            if (lock != null) lock.release();
        } catch (IOException e) {
            // the lock goes with the channel below; an unemptied file reads as a stale lock next time
        } finally {
            closeQuietly(channel);
        }
    }

    /** Without OS locks: whether "pid N on host H" names a live process on this host (another host: assumed alive). */
    private static boolean isAlive(String holder) {
        String[] words = holder.split(" ");
        if (words.length != 5 || !words[0].equals("pid")) return false;
        if (!words[4].equals(host())) return true;
        try {
            long pid = Long.parseLong(words[1]);
            return pid != ProcessHandle.current().pid() && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
        } catch (NumberFormatException e) {
            return false;
        }
    }

    private static String read(FileChannel ch) throws IOException {
        ByteBuffer b = ByteBuffer.allocate((int) Math.min(ch.size(), 4096));
        while (b.hasRemaining() && ch.read(b, b.position()) > 0) {
            // keep reading until the buffer is full or the file ends
        }
        return new String(b.array(), 0, b.position(), StandardCharsets.UTF_8).lines().findFirst().orElse("")
                .replaceAll("\\p{Cntrl}", "?");
    }

    private static String host() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "unknown";
        }
    }

    private static void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // closing releases the lock; nothing more to do
        }
    }
}
