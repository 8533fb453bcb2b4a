package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.Timeline;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Backend.write through the pinned staging ring, the allocator's high-water mark, and the event timeline. */
@RequiresCuda
class CudaUploadTest {
    private final CudaBackend cuda = CudaTests.backend();

    @Test
    void writeMatchesFromFloatsForEveryDtype() {
        float[] v = {0f, 1f, -2.5f, 0.15625f, 448f, -0.001953125f, 1 + 0x1p-9f, 3.3f};
        for (DType t : new DType[] {DType.F32, DType.BF16, DType.F16, DType.F8_E4M3}) {
            try (CudaTensor expected = cuda.fromFloats(t, Shape.of(8), v); CudaTensor x = cuda.allocate(t, Shape.of(8))) {
                cuda.write(x, v);
                assertArrayEquals(cuda.toFloats(expected), cuda.toFloats(x), t.toString());
            }
        }
        try (CudaTensor codes = cuda.allocate(DType.U8, Shape.of(3))) {
            cuda.write(codes, new float[] {0, 7, 255});
            assertArrayEquals(new float[] {0, 7, 255}, cuda.toFloats(codes));
            assertThrows(IllegalArgumentException.class, () -> cuda.write(codes, new float[] {1, 2}));
        }
    }

    /**
     * Writes are stream-ordered: a kernel queued before a write reads the old values, one queued after reads the new,
     * even when the staging ring wraps many times over (each round reuses regions whose copies must be complete).
     * 200 writes of 1 MiB go round the 64 MiB ring three times.
     */
    @Test
    void writesAreOrderedOnTheStreamAndStagingIsReusedSafely() {
        int n = 1 << 18; // 1 MiB of F32
        try (CudaTensor x = cuda.allocate(DType.F32, Shape.of(n)); CudaTensor sums = cuda.allocate(DType.F32, Shape.of(200))) {
            float[] values = new float[n];
            for (int round = 0; round < 200; round++) {
                java.util.Arrays.fill(values, round);
                cuda.write(x, values);
                // sums[round] = Σ x² = n·round²: every partial sum is round² times an integer below 2¹⁹, exact in float
                cuda.sumOfSquares(sums.view(round, Shape.of(1)), x);
            }
            float[] s = cuda.toFloats(sums);
            for (int round = 0; round < 200; round++) assertEquals((double) n * round * round, s[round], 0, "round " + round);
        }
    }

    @Test
    void writeAllocatesNothingOnceTheRingExists() {
        try (CudaTensor x = cuda.allocate(DType.BF16, Shape.of(1000))) {
            cuda.write(x, new float[1000]);
            long allocations = DeviceBuffer.allocationCount();
            for (int i = 0; i < 50; i++) cuda.write(x, new float[1000]);
            assertEquals(allocations, DeviceBuffer.allocationCount(), "write must not allocate device memory");
        }
    }

    @Test
    void liveBytesAndPeakFollowAllocations() {
        DeviceBuffer.resetPeakLiveBytes();
        long before = DeviceBuffer.liveBytes();
        assertEquals(before, DeviceBuffer.peakLiveBytes());
        try (CudaTensor a = cuda.allocate(DType.F32, Shape.of(1 << 20))) {
            assertEquals(before + (4L << 20), DeviceBuffer.liveBytes());
            try (CudaTensor b = cuda.allocate(DType.BF16, Shape.of(1 << 20))) {
                assertEquals(before + (6L << 20), DeviceBuffer.liveBytes());
            }
        }
        assertEquals(before, DeviceBuffer.liveBytes());
        assertEquals(before + (6L << 20), DeviceBuffer.peakLiveBytes());
        DeviceBuffer.resetPeakLiveBytes();
        assertEquals(before, DeviceBuffer.peakLiveBytes());
    }

    @Test
    void timelineMeasuresDeviceTime() {
        try (Timeline t = cuda.openTimeline(); CudaTensor x = cuda.allocate(DType.F32, Shape.of(1 << 24))) {
            int start = t.mark();
            for (int i = 0; i < 20; i++) cuda.scale(x, x, 1.0001f);
            int end = t.mark();
            double ms = t.millisBetween(start, end);
            // 20 passes over 64 MiB read + written = 2.7 GB: between ~0.5 ms (5 TB/s) and a generous 1 s
            System.out.printf("timeline: 20 scale passes over 64 MiB in %.3f ms%n", ms);
            assertTrue(ms > 0.2 && ms < 1000, "elapsed " + ms + " ms");
            assertEquals(0, t.millisBetween(end, end));
            t.reset();
            assertEquals(0, t.size());
        }
    }
}
