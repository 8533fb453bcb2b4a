package dev.wanlora.engine.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;

/**
 * Bytes a backend reads into its own memory in pieces ({@code Backend.writeBytes}): a tensor's range of a file or a
 * memory segment. {@link #read} may be called from several threads at once for disjoint pieces.
 *
 * <p>A file range is read with positional reads ({@code pread}) straight into the caller's memory (a pinned staging
 * buffer on a GPU): the page cache is used, but nothing is mapped into the process, so loading a 27 GiB checkpoint
 * does not count 27 GiB of file pages in the process's resident set, and several large reads can be in flight at
 * once (what a cold disk needs to reach its sequential speed).
 */
public interface ByteSource {

    long byteSize();

    /** Copies bytes [offset, offset + into.byteSize()) of this source into {@code into}. Thread-safe. */
    void read(long offset, MemorySegment into);

    /** What {@link #read} reads, for messages: "file.safetensors @ 1234 (+5678 bytes)". */
    String describe();

    /** A source over the bytes of {@code segment} (a heap array, a map, native memory). */
    static ByteSource of(MemorySegment segment) {
        return new ByteSource() {
            @Override
            public long byteSize() { return segment.byteSize(); }

            @Override
            public void read(long offset, MemorySegment into) {
                MemorySegment.copy(segment, offset, into, 0, into.byteSize());
            }

            @Override
            public String describe() { return "memory (" + segment.byteSize() + " bytes)"; }
        };
    }

    /**
     * Bytes [position, position + byteSize) of an open file. The channel must stay open while the source is used
     * ({@link SafeTensors#source} keeps its channels until it is closed).
     */
    record FileRange(Path file, FileChannel channel, long position, long byteSize) implements ByteSource {
        @Override
        public void read(long offset, MemorySegment into) {
            if (offset < 0 || offset + into.byteSize() > byteSize) {
                throw new IndexOutOfBoundsException(describe() + ": read of [" + offset + ", " + (offset + into.byteSize())
                        + ") outside the range");
            }
            // A ByteBuffer holds at most 2^31 − 1 bytes: read larger pieces in slices.
            for (long done = 0; done < into.byteSize(); ) {
                long n = Math.min(into.byteSize() - done, 1L << 30);
                ByteBuffer buffer = into.asSlice(done, n).asByteBuffer();
                try {
                    while (buffer.hasRemaining()) {
                        int r = channel.read(buffer, position + offset + done + buffer.position());
                        if (r < 0) {
                            throw new SafeTensorsException(file + ": ends early, at " + (position + offset + done
                                    + buffer.position()) + " bytes. hint: the file is truncated; download it again");
                        }
                    }
                } catch (IOException e) {
                    throw new UncheckedIOException(file + ": cannot read " + n + " bytes at " + (position + offset + done)
                            + " (" + e.getMessage() + ")", e);
                }
                done += n;
            }
        }

        @Override
        public String describe() { return file.getFileName() + " @ " + position + " (+" + byteSize + " bytes)"; }
    }
}
