package dev.wanlora.engine.stream;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The streaming schedule (which block is in which slot, how many copies) and its contents, on the CPU backend. */
class BlockStreamerTest {
    private static final CpuBackend CPU = new CpuBackend();
    /** An F32 (3, 4) weight and a BF16 (5) bias per block. */
    private static final BlockLayout LAYOUT = new BlockLayout(List.of(
            new BlockLayout.Entry(DType.F32, Shape.of(3, 4)), new BlockLayout.Entry(DType.BF16, Shape.of(5))));

    @Test
    void layoutAlignsEveryEntry() {
        // 12 F32 = 48 bytes → the BF16 entry starts at 256; 5 BF16 = 10 bytes → the block image is 512 bytes.
        assertEquals(0, LAYOUT.offsetBytes(0));
        assertEquals(256, LAYOUT.offsetBytes(1));
        assertEquals(512, LAYOUT.sizeBytes());
        assertEquals(1024, BlockStreamer.deviceBytes(LAYOUT, 2));
    }

    @Test
    void forwardThenBackwardReusesTheResidentBlocks() {
        int blocks = 5;
        try (BlockStreamer s = filled(blocks, 2)) {
            pass(s, blocks, true);
            assertEquals(blocks, s.loadCount(), "the first forward copies every block once");
            pass(s, blocks, false);
            // The backward starts with the two blocks the forward ended with (4 acquired, 3 prefetched): 2, 1, 0 load.
            assertEquals(blocks + (blocks - 2), s.loadCount());
            pass(s, blocks, true);
            // ... and the next forward starts with 0 and 1, left by the backward.
            assertEquals(blocks + 2 * (blocks - 2), s.loadCount());
        }
    }

    @Test
    void threeSlotsPrefetchTwoAhead() {
        int blocks = 6;
        try (BlockStreamer s = filled(blocks, 3)) {
            pass(s, blocks, true);
            pass(s, blocks, false);
            // 3 slots keep the last 3 blocks of the forward for the backward: 6 + 3 copies.
            assertEquals(blocks + (blocks - 3), s.loadCount());
        }
    }

    @Test
    void refusesMisuse() {
        try (BlockStreamer s = filled(3, 2)) {
            s.acquire(0);
            assertThrows(IllegalStateException.class, () -> s.acquire(0));
            s.acquire(1);
            IllegalStateException full = assertThrows(IllegalStateException.class, () -> s.acquire(2));
            assertEquals("BlockStreamer.acquire: block 2 needs a slot but all 2 are acquired; release one first", full.getMessage());
            s.prefetch(2); // a hint: nothing free, nothing done
            assertEquals(2, s.loadCount());
            assertThrows(IllegalStateException.class, () -> s.release(2));
            assertThrows(IndexOutOfBoundsException.class, () -> s.prefetch(3));
            try (Tensor wrong = CPU.allocate(DType.BF16, Shape.of(3, 4))) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> s.store(0, 0, wrong));
                assertEquals("BlockStreamer.store: entry 0 of block 0 got BF16(3,4), expected F32(3,4)", e.getMessage());
            }
        }
        assertThrows(IllegalArgumentException.class, () -> BlockStreamer.open(CPU, LAYOUT, 3, 1));
    }

    /** Blocks whose entry values encode (block, entry, index) as 16·block + entry·8 + index. */
    private static BlockStreamer filled(int blocks, int slots) {
        BlockStreamer s = BlockStreamer.open(CPU, LAYOUT, blocks, slots);
        for (int b = 0; b < blocks; b++) {
            for (int e = 0; e < LAYOUT.numEntries(); e++) {
                try (Tensor t = CPU.fromFloats(LAYOUT.entry(e).dtype(), LAYOUT.entry(e).shape(), expected(b, e))) {
                    s.store(b, e, t);
                }
            }
        }
        return s;
    }

    private static float[] expected(int block, int entry) {
        float[] v = new float[(int) LAYOUT.entry(entry).shape().numElements()];
        // integers below 256 are exact in bf16 (8 significant bits): at most 16·5 + 8 + 11 = 99 here
        for (int i = 0; i < v.length; i++) v[i] = 16 * block + 8 * entry + i;
        return v;
    }

    /** One pass over every block, as the DiT does it: acquire, prefetch the next, check the contents, release. */
    private static void pass(BlockStreamer s, int blocks, boolean isForward) {
        for (int j = 0; j < blocks; j++) {
            int b = isForward ? j : blocks - 1 - j;
            int k = s.acquire(b);
            for (int d = 1; d < s.numSlots(); d++) {
                int next = isForward ? b + d : b - d;
                if (next >= 0 && next < blocks) s.prefetch(next);
            }
            for (int e = 0; e < LAYOUT.numEntries(); e++) {
                assertArrayEquals(expected(b, e), CPU.toFloats(s.slot(k).get(e)), "block " + b + " entry " + e);
            }
            s.release(b);
        }
    }
}
