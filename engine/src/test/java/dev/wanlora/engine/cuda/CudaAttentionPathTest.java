package dev.wanlora.engine.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The choice of attention path from the device and WANLORA_KERNELS, and of the Hopper backward (no GPU needed). */
class CudaAttentionPathTest {
    @Test
    void hopperWhereItsKernelIsLoadedUnlessPortableIsForced() {
        assertEquals(CudaAttention.Path.HOPPER, CudaAttention.defaultPath(true, null));
        assertEquals(CudaAttention.Path.HOPPER, CudaAttention.defaultPath(true, ""));
        assertEquals(CudaAttention.Path.HOPPER, CudaAttention.defaultPath(true, "auto"));
        assertEquals(CudaAttention.Path.PORTABLE, CudaAttention.defaultPath(true, "portable"));
        assertEquals(CudaAttention.Path.PORTABLE, CudaAttention.defaultPath(false, null));
        assertEquals(CudaAttention.Path.PORTABLE, CudaAttention.defaultPath(false, "auto"));
    }

    @Test
    void anUnknownValueIsAOneLineErrorNamingTheVariable() {
        var e = assertThrows(IllegalArgumentException.class, () -> CudaAttention.defaultPath(true, "portabel"));
        assertEquals("WANLORA_KERNELS=portabel is not known; supported: portable (the sm_80 kernels on every card),"
                + " auto (the default: the Hopper attention on compute capability 9.0)", e.getMessage());
    }

    @Test
    void theHopperBackwardFromItsPropertyWithOneLineErrors() {
        assertEquals(CudaAttention.DEFAULT_BACKWARD, CudaAttention.backwardFrom(null));
        assertEquals(CudaAttention.DEFAULT_BACKWARD, CudaAttention.backwardFrom(""));
        assertEquals(CudaAttention.Backward.AUTO, CudaAttention.backwardFrom("auto"));
        assertEquals(CudaAttention.Backward.PASSES, CudaAttention.backwardFrom("passes"));
        assertEquals(CudaAttention.Backward.FUSED, CudaAttention.backwardFrom("fused"));
        var e = assertThrows(IllegalArgumentException.class, () -> CudaAttention.backwardFrom("fast"));
        assertEquals("-Dwanlora.attentionBackward=fast is not known; supported: auto (fused where the grid fills the card),"
                + " passes (dK/dV and dQ passes), fused", e.getMessage());
    }
}
