package dev.wanlora.engine.backend;

/**
 * Points in time on a backend's own clock, for timing a sequence of ops without disturbing it: on a GPU each point
 * is an event recorded on the compute stream (so the interval between two points is device time, and recording one
 * does not wait for anything); on a synchronous backend (the CPU) it is the host clock. Made by
 * {@link Backend#openTimeline}.
 *
 * <p>Points are numbered from 0 since the last {@link #reset()}; the resources behind them (events) are kept and
 * reused, so a timeline records without allocating once it has reached its largest size.
 */
public interface Timeline extends AutoCloseable {

    /** Records a point after every op queued so far; returns its index. */
    int mark();

    /** Number of points recorded since the last {@link #reset()}. */
    int size();

    /** Milliseconds from point {@code from} to point {@code to} (from ≤ to &lt; size()); waits until {@code to} is reached. */
    double millisBetween(int from, int to);

    /** Forgets every point. */
    void reset();

    @Override
    void close();
}
