package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.Timeline;

import java.util.ArrayList;
import java.util.List;

/**
 * A {@link Timeline} of timing events on the compute stream. Events are created as the timeline first needs them
 * and reused after {@link #reset()}; recording one costs a driver call (~2 µs of host time) and no device work.
 */
public final class CudaTimeline implements Timeline {
    private final CudaContext context;
    private final List<CudaEvent> events = new ArrayList<>();
    private int size;

    public CudaTimeline(CudaContext context) { this.context = context; }

    @Override
    public int mark() {
        if (size == events.size()) events.add(context.newEvent(true));
        events.get(size).recordOnCompute();
        return size++;
    }

    @Override
    public int size() { return size; }

    @Override
    public double millisBetween(int from, int to) {
        if (from < 0 || from > to || to >= size) {
            throw new IndexOutOfBoundsException("millisBetween: points " + from + ".." + to + " outside the " + size
                    + " recorded; expected 0 ≤ from ≤ to < " + size);
        }
        CudaEvent end = events.get(to);
        end.synchronize();
        return end.elapsedMillisSince(events.get(from));
    }

    @Override
    public void reset() { size = 0; }

    @Override
    public void close() {
        events.forEach(CudaEvent::close);
        events.clear();
        size = 0;
    }
}
