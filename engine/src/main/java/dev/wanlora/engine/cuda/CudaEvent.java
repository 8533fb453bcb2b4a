package dev.wanlora.engine.cuda;

import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;

import static jcuda.driver.JCudaDriver.*;

/**
 * A CUDA event: orders work between the compute and copy streams (copy-before-use, use-before-overwrite) and,
 * when created with timing, measures device time between two records (KernelBench).
 */
public final class CudaEvent implements AutoCloseable {
    private final CudaContext context;
    private final CUevent event = new CUevent();
    private boolean closed;

    CudaEvent(CudaContext context, boolean timing) {
        this.context = context;
        CudaException.check(cuEventCreate(event, timing ? CUevent_flags.CU_EVENT_DEFAULT : CUevent_flags.CU_EVENT_DISABLE_TIMING),
                "cuEventCreate");
    }

    /** Records the event on the compute stream. */
    public void recordOnCompute() { record(context.computeStream()); }

    /** Records the event on the copy stream. */
    public void recordOnCopy() { record(context.copyStream()); }

    /** Makes the compute stream wait for this event. */
    public void waitOnCompute() { waitOn(context.computeStream()); }

    /** Makes the copy stream wait for this event. */
    public void waitOnCopy() { waitOn(context.copyStream()); }

    private void record(NativeHandles.Stream stream) {
        context.makeCurrent();
        CudaException.check(cuEventRecord(event, stream), "cuEventRecord");
    }

    private void waitOn(NativeHandles.Stream stream) {
        context.makeCurrent();
        CudaException.check(cuStreamWaitEvent(stream, event, 0), "cuStreamWaitEvent");
    }

    /** Blocks the host until the event has completed. */
    public void synchronize() {
        context.makeCurrent();
        CudaException.check(cuEventSynchronize(event), "cuEventSynchronize");
    }

    /** Milliseconds between {@code start}'s record and this event's record (both timing events, both completed). */
    public float elapsedMillisSince(CudaEvent start) {
        float[] ms = new float[1];
        CudaException.check(cuEventElapsedTime(ms, start.event, event), "cuEventElapsedTime");
        return ms[0];
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        CudaException.check(cuEventDestroy(event), "cuEventDestroy");
    }
}
