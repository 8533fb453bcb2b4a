package dev.wanlora.engine.stream;

import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The offload's schedule on the CPU (synchronous copies): items written in a forward order come back in the backward
 * order with their values, resident items never move, the ring keeps what it can, and misuse fails loudly.
 */
class ActivationOffloadTest {
    private static final CpuBackend CPU = new CpuBackend();
    private static final BlockLayout LAYOUT = new BlockLayout(List.of(new BlockLayout.Entry(DType.F32, Shape.of(3)),
            new BlockLayout.Entry(DType.F32, Shape.of(2))));

    @Test
    void aForwardThenABackwardReadsBackWhatWasWritten() {
        // 6 items, the first 4 offloaded, 2 slots: as WanDit's forward (write i + 1 while reading i) and backward
        try (ActivationOffload o = ActivationOffload.open(CPU, LAYOUT, 6, 4, 2)) {
            write(o.acquireForWrite(0), 0);
            for (int i = 0; i < 5; i++) {
                write(o.acquireForWrite(i + 1), i + 1);
                o.release(i);
            }
            o.release(5);
            assertEquals(4, o.storeCount());
            for (int i = 5; i >= 0; i--) {
                List<Tensor> t = o.acquire(i);
                o.prefetch(i - 1);
                assertArrayEquals(new float[] {i, i + 0.5f, i + 0.25f}, CPU.toFloats(t.get(0)), 0f, "item " + i);
                assertArrayEquals(new float[] {-i, 2 * i}, CPU.toFloats(t.get(1)), 0f, "item " + i);
                o.release(i);
            }
            // items 3 and 2 were still in the slots; 1 and 0 came back from the host
            assertEquals(2, o.loadCount());
            assertEquals(4, o.storeCount()); // reading stores nothing
            assertEquals(4 * LAYOUT.sizeBytes(), o.hostBytes());
            assertEquals(2 * LAYOUT.sizeBytes() + 2 * 5 * Float.BYTES, o.deviceBytes());
        }
    }

    @Test
    void refusesMisuse() {
        try (ActivationOffload o = ActivationOffload.open(CPU, LAYOUT, 4, 3, 2)) {
            IllegalStateException never = assertThrows(IllegalStateException.class, () -> o.acquire(1));
            assertEquals("ActivationOffload.acquire: item 1 was never written", never.getMessage());
            o.acquireForWrite(0);
            o.acquireForWrite(1);
            IllegalStateException twice = assertThrows(IllegalStateException.class, () -> o.acquireForWrite(0));
            assertEquals("ActivationOffload: item 0 is already acquired (slot 0); release it first", twice.getMessage());
            IllegalStateException full = assertThrows(IllegalStateException.class, () -> o.acquireForWrite(2));
            assertEquals("ActivationOffload: item 2 needs a slot but all 2 are acquired; release one first", full.getMessage());
            o.release(1);
            IllegalStateException notAcquired = assertThrows(IllegalStateException.class, () -> o.release(1));
            assertEquals("ActivationOffload.release: item 1 is not acquired", notAcquired.getMessage());
        }
        IllegalArgumentException slots = assertThrows(IllegalArgumentException.class,
                () -> ActivationOffload.open(CPU, LAYOUT, 3, 2, 1));
        assertEquals("ActivationOffload: got 2 offloaded of 3 items and 1 slot(s), expected 0 to 3 offloaded and at least"
                + " 2 slots", slots.getMessage());
    }

    private static void write(List<Tensor> item, int i) {
        CPU.copy(item.get(0), CPU.fromFloats(DType.F32, Shape.of(3), new float[] {i, i + 0.5f, i + 0.25f}));
        CPU.copy(item.get(1), CPU.fromFloats(DType.F32, Shape.of(2), new float[] {-i, 2 * i}));
    }
}
