package dev.wanlora.engine.backend;

import java.util.List;

/**
 * A {@link Backend} that forwards every call to another one and, while recording, times each op on that backend's
 * {@link Timeline} (device time between consecutive events on a GPU): the per-op profile of a training step. Made by
 * {@link #wrap}, which needs no code per op: every Backend method that takes a tensor is an op, recorded under the
 * method's name with its tensor arguments' names, shapes and dtypes ({@link OpProfiler}). Profiling is opt-in (the
 * bench and the profile tools), so the reflective forwarding of a {@link java.lang.reflect.Proxy} costs only there;
 * models and the trainer call their backend directly.
 *
 * <p>Tensors are the wrapped backend's: {@code t.backendName()} names the wrapped one, so ops a caller sends there directly
 * are not seen; their time falls into the next {@code "(outside)"} entry, which {@link #phase} and
 * {@link #stopRecording} close. An op's time is the interval from the end of the previous recorded op to its own end,
 * so it includes any idle gap before it (a GPU waiting for the host to launch): a host-bound stretch shows as ops
 * slower than their kernels.
 */
public interface ProfilingBackend extends Backend {

    /**
     * One recorded op: the phase the caller had set, the op's name, its operands, its time. Operands name each non-null
     * tensor argument with its shape and dtype, those of equal shape and dtype together, a transposed GEMM operand
     * marked ᵀ: {@code "c(3744,5120)bf16 a(3744,13824)bf16 bᵀ(5120,13824)bf16 bias(5120)bf16"},
     * {@code "out,x(1,3744,5120)bf16 mod(1,6,5120)f32"}.
     */
    record OpTime(String phase, String op, String operands, double millis) {}

    /** Wraps {@code inner}; the timeline is made here on inner's clock and closed with the wrapper. */
    static ProfilingBackend wrap(Backend inner) { return OpProfiler.wrap(inner); }

    /** The wrapped backend. */
    Backend inner();

    boolean isRecording();

    /** Starts a new recording (forgetting the last one) in phase {@code phase}. */
    void startRecording(String phase);

    /** Labels the ops that follow; while recording, closes the current stretch of unseen work as "(outside)". */
    void phase(String phase);

    /** Ends the recording; waits for the device and returns every op in order with its time. */
    List<OpTime> stopRecording();

    /** Closes the timeline, not the wrapped backend (its owner closes it). */
    @Override
    void close();
}
