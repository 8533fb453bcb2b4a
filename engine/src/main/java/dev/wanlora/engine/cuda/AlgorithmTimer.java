package dev.wanlora.engine.cuda;

import java.util.function.IntSupplier;

/**
 * Device time of one cuBLASLt algorithm candidate, for the GEMM algorithm choice of {@link CudaGemm} and
 * {@link CudaFp8Gemm} (one pair of timing events, made on first use and kept for the backend's life).
 */
final class AlgorithmTimer implements AutoCloseable {
    private final CudaContext context;
    private CudaEvent start, stop;

    AlgorithmTimer(CudaContext context) { this.context = context; }

    /**
     * µs per call of {@code run} (one matmul on the compute stream; its status): one untimed call, one timed call to
     * size the loop, then the mean of enough calls to fill ~1 ms (2..20). NaN when the first call returns a non-zero
     * status (cuBLASLt refuses the candidate).
     */
    double micros(IntSupplier run) {
        if (run.getAsInt() != 0) return Double.NaN;
        if (start == null) {
            start = context.newEvent(true);
            stop = context.newEvent(true);
        }
        start.recordOnCompute();
        run.getAsInt();
        stop.recordOnCompute();
        stop.synchronize();
        double once = stop.elapsedMillisSince(start) * 1000;
        int reps = (int) Math.clamp(Math.ceil(1000 / Math.max(once, 1)), 2, 20);
        start.recordOnCompute();
        for (int r = 0; r < reps; r++) run.getAsInt();
        stop.recordOnCompute();
        stop.synchronize();
        return stop.elapsedMillisSince(start) * 1000.0 / reps;
    }

    @Override
    public void close() {
        if (start != null) {
            start.close();
            stop.close();
        }
    }
}
