package dev.wanlora.engine.stream;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.memory.OffloadMemory;
import dev.wanlora.engine.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * {@link OffloadMemory} for a backend whose ops run synchronously in host memory (the CPU reference): images and
 * slots are ordinary tensors of the backend and a store or load is {@link Backend#copy} of each entry, done at once,
 * so the ordering rules hold trivially. It runs the GPU's {@link ActivationOffload} schedule, which is what the
 * offload-versus-resident bit-identity tests exercise: a wrong item in a slot or a missed reload changes the numbers.
 */
final class HostOffloadMemory implements OffloadMemory {
    private final Backend backend;
    private final BlockLayout layout;
    /** images[i][e]: item i's entry e. */
    private final Tensor[][] images;
    private final List<List<Tensor>> slots = new ArrayList<>();

    HostOffloadMemory(Backend backend, BlockLayout layout, int numItems, int numSlots) {
        this.backend = backend;
        this.layout = layout;
        this.images = new Tensor[numItems][layout.numEntries()];
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
    public void store(int item, int k) {
        List<Tensor> slot = slots.get(k);
        for (int e = 0; e < slot.size(); e++) backend.copy(images[item][e], slot.get(e));
    }

    @Override
    public void load(int item, int k) {
        List<Tensor> slot = slots.get(k);
        for (int e = 0; e < slot.size(); e++) backend.copy(slot.get(e), images[item][e]);
    }

    @Override
    public void awaitCopies(int k) {}

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
