package dev.wanlora.engine.cuda;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Context, kernel library, memory and tensors: the plumbing every CUDA op stands on. */
@RequiresCuda
class CudaInfraTest {
    private final CudaBackend cuda = CudaTests.backend();

    @Test
    void everyKernelResolves() {
        // KernelLibrary.load resolves every Kernel entry; reaching here means none is missing.
        System.out.println("cuda: " + cuda.name() + ", compute capability " + cuda.context().computeCapability()
                + ", " + Kernel.values().length + " kernels resolved");
        assertTrue(cuda.name().startsWith("cuda:"));
    }

    @Test
    void roundTripsEveryStorageDtype() {
        float[] v = {0f, 1f, -2.5f, 0.15625f, 448f, -0.001953125f};
        for (DType t : new DType[] {DType.F32, DType.BF16, DType.F16, DType.F8_E4M3}) {
            try (CudaTensor x = cuda.fromFloats(t, Shape.of(2, 3), v)) {
                // Every value above is exact in each of these dtypes, so the round trip is exact.
                assertArrayEquals(v, cuda.toFloats(x), t.toString());
            }
        }
    }

    @Test
    void viewsFillAndCopy() {
        try (CudaTensor x = cuda.allocate(DType.BF16, Shape.of(4, 10)); CudaTensor y = cuda.allocate(DType.BF16, Shape.of(10))) {
            cuda.fill(x.slice(2), 1.5f);
            cuda.copy(y, x.slice(2));
            float[] all = cuda.toFloats(x);
            for (int i = 0; i < 40; i++) assertEquals(i / 10 == 2 ? 1.5f : 0f, all[i], "element " + i);
            float[] copied = cuda.toFloats(y);
            for (float f : copied) assertEquals(1.5f, f);
        }
    }

    @Test
    void arenaViewsDieOnReset() {
        try (DeviceArena arena = cuda.newArena(1 << 20, "test arena")) {
            CudaTensor a = arena.allocate(DType.F32, Shape.of(100));
            CudaTensor b = arena.allocate(DType.F32, Shape.of(100));
            assertEquals(0, (b.address() - a.address()) % 256, "arena alignment");
            long allocations = DeviceBuffer.allocationCount();
            arena.reset();
            assertThrows(IllegalStateException.class, a::address);
            CudaTensor c = arena.allocate(DType.F32, Shape.of(100));
            assertEquals(allocations, DeviceBuffer.allocationCount(), "arena allocation must not call cuMemAlloc");
            assertTrue(c.address() > 0);
        }
    }

    /** Pinned upload on the copy stream, ordered before a compute-stream op by an event, then an async read-back. */
    @Test
    void pinnedCopiesAndEventsOrderTheStreams() {
        int n = 1 << 20;
        try (PinnedHostBuffer host = cuda.allocatePinned(8L * n, "test pinned"); CudaTensor x = cuda.allocate(DType.F32, Shape.of(n));
             CudaEvent zeroed = cuda.context().newEvent(false); CudaEvent uploaded = cuda.context().newEvent(false);
             CudaEvent done = cuda.context().newEvent(false)) {
            for (int i = 0; i < n; i++) host.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, n + i, i);
            zeroed.recordOnCompute(); // allocate's memset runs on the compute stream: the upload must not overtake it
            zeroed.waitOnCopy();
            cuda.copyToDeviceAsync(x, host, 4L * n);
            uploaded.recordOnCopy();
            uploaded.waitOnCompute();
            cuda.scale(x, x, 2f);
            cuda.copyToHostAsync(host, 0, x);
            done.recordOnCompute();
            done.synchronize();
            for (int i = 0; i < n; i += 997) {
                assertEquals(2f * i, host.segment().getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i), "element " + i);
            }
            assertThrows(IndexOutOfBoundsException.class, () -> cuda.copyToDeviceAsync(x, host, 4L * n + 4));
        }
    }

    /** A driver error names the call, the CUresult and what was being done. */
    @Test
    void driverErrorsNameTheCall() {
        var e = assertThrows(CudaException.class, () -> DeviceBuffer.allocate(cuda.context(), 1L << 50, "a petabyte"));
        System.out.println("CudaException: " + e.getMessage());
        assertTrue(e.getMessage().startsWith("cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY"), e.getMessage());
        assertTrue(e.getMessage().contains("a petabyte"), e.getMessage());
    }

    @Test
    void closedTensorThrows() {
        CudaTensor x = cuda.allocate(DType.F32, Shape.of(8));
        x.close();
        x.close(); // idempotent
        assertThrows(IllegalStateException.class, () -> cuda.toFloats(x));
    }
}
