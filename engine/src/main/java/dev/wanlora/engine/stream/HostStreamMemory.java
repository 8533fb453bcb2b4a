package dev.wanlora.engine.stream;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.memory.StreamMemory;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * {@link StreamMemory} for a backend whose tensors already live in host memory and whose ops run synchronously (the
 * CPU reference): block images and slots are ordinary tensors of the backend and a load is {@link Backend#copy} of
 * each entry, done at once, so both ordering rules hold trivially. It runs the same {@link BlockStreamer} schedule
 * as the GPU, which is what the swap-versus-resident bit-identity tests exercise.
 */
final class HostStreamMemory implements StreamMemory {
    private final Backend backend;
    private final BlockLayout layout;
    /** images[b][e]: block b's entry e. */
    private final Tensor[][] images;
    private final List<List<Tensor>> slots = new ArrayList<>();

    HostStreamMemory(Backend backend, BlockLayout layout, int numBlocks, int numSlots) {
        this.backend = backend;
        this.layout = layout;
        this.images = new Tensor[numBlocks][layout.numEntries()];
        try {
            for (Tensor[] image : images) {
                for (int e = 0; e < image.length; e++) image[e] = backend.allocate(layout.entry(e).dtype(), layout.entry(e).shape());
            }
            for (int k = 0; k < numSlots; k++) {
                List<Tensor> slot = new ArrayList<>();
                for (BlockLayout.Entry entry : layout.entries()) slot.add(backend.allocate(entry.dtype(), entry.shape()));
                slots.add(List.copyOf(slot));
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    @Override
    public List<Tensor> slot(int k) { return slots.get(k); }

    @Override
    public void store(int block, int entry, Tensor value) {
        backend.copy(images[block][entry], value);
    }

    @Override
    public void load(int block, int k) {
        List<Tensor> slot = slots.get(k);
        for (int e = 0; e < slot.size(); e++) backend.copy(slot.get(e), images[block][e]);
    }

    @Override
    public void awaitLoad(int k) {}

    @Override
    public void release(int k) {}

    @Override
    public long hostBytes() { return images.length * layout.sizeBytes(); }

    @Override
    public long deviceBytes() { return slots.size() * layout.sizeBytes(); }

    @Override
    public void close() {
        for (Tensor[] image : images) for (Tensor t : image) if (t != null) t.close();
        for (List<Tensor> slot : slots) slot.forEach(Tensor::close);
        slots.clear();
    }
}
