package dev.wanlora.engine.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes output files so that a crash never leaves a half-written one (DESIGN.md §7): the content goes to a
 * temporary name in the target's folder ({@code .<name>.<random>.tmp}), is flushed to disk, and is renamed over
 * the target in one atomic step. Readers see either the old file or the complete new one. If writing fails the
 * temporary is deleted and the target is untouched.
 *
 * <p>Use it for every output a user keeps: LoRA files (through {@link SafeTensorsWriter}), configs, state
 * folders. Streams appended over time (TensorBoard events) do not fit this pattern.
 */
public final class AtomicFiles {
    private AtomicFiles() {}

    /** Fills the temporary path it is given (a file: an empty file exists there; a folder: an empty folder). */
    @FunctionalInterface
    public interface Content {
        void writeTo(Path temp) throws IOException;
    }

    /**
     * Writes {@code target} through {@code content}, atomically replacing any existing file. I/O failures become
     * {@link UncheckedIOException} naming the target; exceptions thrown by {@code content} pass through unchanged.
     */
    public static void write(Path target, Content content) {
        Path temp = temporarySibling(target);
        boolean isDone = false;
        try {
            Files.createFile(temp);
            content.writeTo(temp);
            try (FileChannel ch = FileChannel.open(temp, StandardOpenOption.WRITE)) {
                ch.force(true); // data on disk before the rename makes it visible
            }
            move(temp, target);
            isDone = true;
        } catch (IOException e) {
            throw failure(target, temp, e);
        } finally {
            if (!isDone) deleteQuietly(temp);
        }
    }

    /** Writes {@code text} as UTF-8 to {@code target}, atomically. */
    public static void writeString(Path target, String text) {
        write(target, temp -> Files.writeString(temp, text, StandardCharsets.UTF_8));
    }

    /**
     * Writes the folder {@code target} through {@code content}, which fills an empty temporary folder. With no
     * existing target the rename is atomic. An existing target is first renamed aside and deleted after the new
     * folder is in place, so a crash between the two renames leaves both complete copies
     * ({@code .<name>.<random>.old} and {@code .<name>.<random>.tmp}) and never a partial folder.
     */
    public static void writeDirectory(Path target, Content content) {
        Path temp = temporarySibling(target);
        boolean isDone = false;
        try {
            Files.createDirectory(temp);
            content.writeTo(temp);
            forceTree(temp);
            if (Files.exists(target)) {
                Path old = temp.resolveSibling(temp.getFileName().toString().replaceFirst("\\.tmp$", ".old"));
                move(target, old);
                move(temp, target);
                isDone = true;
                deleteTree(old);
            } else {
                move(temp, target);
                isDone = true;
            }
        } catch (IOException e) {
            throw failure(target, temp, e);
        } finally {
            if (!isDone) deleteQuietly(temp);
        }
    }

    /** The temporary and set-aside names this class gives: {@code .<name>.<16 hex digits>.tmp} or {@code .old}. */
    private static final Pattern LEFTOVER = Pattern.compile("\\.(.+)\\.[0-9a-f]{16}\\.(tmp|old)");

    /**
     * Cleans up after writes that a kill interrupted in {@code dir} (call it only while no other process writes
     * there): a temporary ({@code .tmp}) is deleted, being an unfinished write or a finished one never renamed in
     * place; a set-aside old folder ({@code .old}) is deleted once its target exists. A kill between
     * {@link #writeDirectory}'s two renames leaves the target missing beside a complete old and new copy: the new copy
     * is renamed into place. Returns the paths removed, with their sizes in bytes.
     */
    public static Map<Path, Long> removeLeftovers(Path dir) {
        Map<Path, Long> removed = new TreeMap<>();
        if (!Files.isDirectory(dir)) return removed;
        List<Path> entries;
        try (Stream<Path> s = Files.list(dir)) {
            entries = s.sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(dir + ": cannot list (" + SafeTensors.oneLine(String.valueOf(e.getMessage())) + ")", e);
        }
        for (Path p : entries) {
            Matcher m = LEFTOVER.matcher(p.getFileName().toString());
            if (!m.matches()) continue;
            Path target = dir.resolve(m.group(1));
            String base = p.getFileName().toString().replaceFirst("\\.(tmp|old)$", "");
            Path temp = dir.resolve(base + ".tmp"), old = dir.resolve(base + ".old");
            try {
                if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) continue; // restored or removed with its pair
                if (Files.exists(old) && Files.exists(temp) && !Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
                    move(temp, target); // complete: it was forced to disk before the target was set aside
                    removed.put(old, sizeOf(old));
                    deleteTree(old);
                    continue;
                }
                if (p.equals(old) && !Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
                    continue; // an old copy with nothing to replace it: keep it for the user to look at
                }
                removed.put(p, sizeOf(p));
                deleteTree(p);
            } catch (IOException e) {
                throw new UncheckedIOException(p + ": cannot remove the leftover of an interrupted save ("
                        + SafeTensors.oneLine(String.valueOf(e.getMessage())) + "); remove it by hand", e);
            }
        }
        return removed;
    }

    private static long sizeOf(Path p) throws IOException {
        try (Stream<Path> s = Files.walk(p)) {
            long total = 0;
            for (Path f : s.toList()) {
                if (Files.isRegularFile(f, LinkOption.NOFOLLOW_LINKS)) total += Files.size(f);
            }
            return total;
        }
    }

    private static Path temporarySibling(Path target) {
        Path abs = target.toAbsolutePath();
        String random = HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong());
        return abs.resolveSibling("." + abs.getFileName() + "." + random + ".tmp");
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            throw new IOException("the file system cannot rename " + from.getFileName() + " atomically", e);
        }
    }

    private static void forceTree(Path dir) throws IOException {
        Files.walkFileTree(dir, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                if (attrs.isRegularFile()) {
                    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
                        ch.force(true);
                    }
                }
                return FileVisitResult.CONTINUE;
            }
        });
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) return;
        Files.walkFileTree(p, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                Files.delete(file);
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                if (e != null) throw e;
                Files.delete(d);
                return FileVisitResult.CONTINUE;
            }
        });
    }

    /** Removes a leftover temporary after a failure; a second failure must not hide the first, so it is dropped. */
    private static void deleteQuietly(Path temp) {
        try {
            deleteTree(temp);
        } catch (IOException ignored) {
            // The original exception is already on its way; a stray .tmp file is the lesser problem.
        }
    }

    /**
     * The failure named after what the user asked to write: the temporary's name is an implementation detail, so where
     * the I/O error names it (or a file inside a temporary folder) the target's name stands in its place.
     */
    private static UncheckedIOException failure(Path target, Path temp, IOException e) {
        String message = e.getMessage() == null ? null : e.getMessage().replace(temp.toString(), target.toString())
                .replace(temp.getFileName().toString(), target.getFileName().toString());
        String reason = message == null ? e.getClass().getSimpleName() : e.getClass().getSimpleName() + ": " + message;
        return new UncheckedIOException(target + ": cannot write (" + SafeTensors.oneLine(reason)
                + "). hint: check that the folder exists, is writable and has free space", e);
    }
}
