package dev.wanlora.engine.memory;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.util.List;

/**
 * The tensors of one streamed block, in order, and where each lies in the block's contiguous byte image: entry e
 * starts at {@link #offsetBytes(int) offsetBytes(e)}, a multiple of {@link #ALIGNMENT}, so a block moves host→device
 * with one copy and every entry seen in a device slot keeps the alignment kernels' vector loads need. Every block of
 * a {@code BlockStreamer} (engine.stream) has this layout.
 */
public final class BlockLayout {
    /** Byte alignment of every entry (cuMemAlloc's guarantee, which the kernels' 16-byte loads rely on). */
    public static final long ALIGNMENT = 256;

    /** One tensor of a block. */
    public record Entry(DType dtype, Shape shape) {
        public long sizeBytes() { return Math.multiplyExact(shape.numElements(), dtype.sizeBytes()); }
    }

    private final List<Entry> entries;
    private final long[] offsets;
    private final long sizeBytes;

    public BlockLayout(List<Entry> entries) {
        if (entries.isEmpty()) throw new IllegalArgumentException("BlockLayout: no entries; expected at least one tensor");
        this.entries = List.copyOf(entries);
        this.offsets = new long[entries.size()];
        long at = 0;
        for (int e = 0; e < offsets.length; e++) {
            offsets[e] = at;
            at = aligned(Math.addExact(at, entries.get(e).sizeBytes()));
        }
        this.sizeBytes = at;
    }

    public List<Entry> entries() { return entries; }

    public int numEntries() { return entries.size(); }

    public Entry entry(int e) { return entries.get(e); }

    /** Byte offset of entry e inside the block's image. */
    public long offsetBytes(int e) { return offsets[e]; }

    /** Bytes of one block's image (entries plus alignment padding), a multiple of {@link #ALIGNMENT}. */
    public long sizeBytes() { return sizeBytes; }

    /** bytes rounded up to a multiple of {@link #ALIGNMENT}. */
    public static long aligned(long bytes) { return Math.ceilDiv(bytes, ALIGNMENT) * ALIGNMENT; }

    @Override
    public String toString() { return "BlockLayout" + entries + " (" + sizeBytes + " bytes)"; }
}
