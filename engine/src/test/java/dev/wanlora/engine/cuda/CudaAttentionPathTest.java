package dev.wanlora.engine.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The choice of attention path from the device and WANLORA_KERNELS (no GPU needed). */
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
}
