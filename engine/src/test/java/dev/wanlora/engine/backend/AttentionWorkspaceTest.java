package dev.wanlora.engine.backend;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The attention backward's workspace layout (DeviceFacts.AttentionWorkspace): the parts, the per-launch bound. */
class AttentionWorkspaceTest {
    private static final long MIB = 1L << 20;

    @Test
    void allHeadsInOneLaunchUpTo6912Tokens() {
        // 3744 tokens, 40 heads: delta 40·3744·4 = 599 040 B; 59 tiles; 40·59 semaphores (9 440 B); 40·59·32 KiB of dQ
        var w = DeviceFacts.AttentionWorkspace.of(1, 40, 3744);
        assertEquals(599_040, w.deltaBytes());
        assertEquals(599_040, w.semaphoreOffset());                   // already a multiple of 256
        assertEquals(599_040 + 9_472, w.accumulatorOffset());         // 9 440 rounded up to 256
        assertEquals(40, w.pairsPerLaunch());
        assertEquals(599_040 + 9_472 + 40L * 59 * 32768, w.totalBytes());
        assertEquals(40, DeviceFacts.AttentionWorkspace.of(1, 40, 6912).pairsPerLaunch()); // 108 tiles: 135 MiB
    }

    @Test
    void longSequencesLaunchFewerHeadsAtATime() {
        // 32760 tokens: 512 tiles of 32 KiB = 16 MiB per head, so 16 heads per launch and a 256 MiB accumulator
        var w = DeviceFacts.AttentionWorkspace.of(1, 40, 32760);
        assertEquals(16, w.pairsPerLaunch());
        assertEquals(256 * MIB, w.totalBytes() - w.accumulatorOffset());
        assertTrue(w.totalBytes() < 262 * MIB, "delta 5 MiB + semaphores + 256 MiB");
        // a sequence whose one head exceeds the budget still gets one head per launch
        assertEquals(1, DeviceFacts.AttentionWorkspace.of(2, 40, 600_000).pairsPerLaunch());
    }

    @Test
    void plansCountTheFusedPartsOnlyWhenTheFusedBackwardIsAskedFor() {
        var w = DeviceFacts.AttentionWorkspace.of(1, 40, 32760);
        String before = System.getProperty(DeviceFacts.AttentionWorkspace.BACKWARD_PROPERTY);
        try {
            System.clearProperty(DeviceFacts.AttentionWorkspace.BACKWARD_PROPERTY); // the default: the two passes
            assertEquals(w.deltaBytes(), DeviceFacts.attentionWorkspaceBytes(1, 40, 32760));
            for (String fused : new String[] {"auto", "fused"}) {
                System.setProperty(DeviceFacts.AttentionWorkspace.BACKWARD_PROPERTY, fused);
                assertEquals(w.totalBytes(), DeviceFacts.attentionWorkspaceBytes(1, 40, 32760), fused);
            }
            System.setProperty(DeviceFacts.AttentionWorkspace.BACKWARD_PROPERTY, "passes");
            assertEquals(w.deltaBytes(), DeviceFacts.attentionWorkspaceBytes(1, 40, 32760));
        } finally {
            if (before == null) System.clearProperty(DeviceFacts.AttentionWorkspace.BACKWARD_PROPERTY);
            else System.setProperty(DeviceFacts.AttentionWorkspace.BACKWARD_PROPERTY, before);
        }
    }
}
