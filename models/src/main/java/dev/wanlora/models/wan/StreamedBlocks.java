package dev.wanlora.models.wan;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitWeights.Block;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;
import dev.wanlora.models.wan.WanDitWeights.BlockSwap;
import dev.wanlora.models.wan.WanDitWeights.Linear;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * The Linear weights of the swapped blocks ({@link BlockSwap}, musubi's {@code --blocks_to_swap N}): their host images
 * in a {@link BlockStreamer}, filled while loading, and each streamed block seen with its Linears bound to the device
 * slot that holds it. Entry order in a block's image is the {@link WanDitTree#blockLinearLayout}: per
 * {@link BlockLinear}, the weight, or the fp8 codes then the scale.
 */
final class StreamedBlocks implements AutoCloseable {
    private final BlockStreamer streamer;
    private final int firstSwapped;
    /** views[s][k]: streamed block firstSwapped + s with its Linears bound to slot k (made on first use). */
    private final Block[][] views;
    /** Weights made but not yet stored: all of one block (stored together, so the device waits once per block). */
    private final List<Tensor[]> pending = new ArrayList<>();
    private final List<BlockLinear> pendingLinears = new ArrayList<>();
    private int pendingBlock = -1;

    private StreamedBlocks(BlockStreamer streamer, int firstSwapped, int count, int slots) {
        this.streamer = streamer;
        this.firstSwapped = firstSwapped;
        this.views = new Block[count][slots];
    }

    /** Host images of the last {@code swap.count()} of {@code numLayers} blocks, each of {@code layout}. */
    static StreamedBlocks open(Backend backend, BlockLayout layout, BlockSwap swap, int numLayers) {
        return new StreamedBlocks(BlockStreamer.open(backend, layout, swap.count(), swap.slots()),
                swap.firstSwapped(numLayers), swap.count(), swap.slots());
    }

    BlockStreamer streamer() { return streamer; }

    /**
     * Hands over block {@code block}'s Linear {@code which} (its weight, or codes and scale; {@code owned} tracks
     * them) to be stored in the block's image and freed. The weights of one block are kept until one of another block
     * arrives or {@link #flush} is called, so loading holds at most one block's Linear weights on the device.
     */
    void put(int block, BlockLinear which, Tensor[] tensors, List<Tensor> owned) {
        if (block != pendingBlock) flush(owned);
        pendingBlock = block;
        pending.add(tensors);
        pendingLinears.add(which);
    }

    /** Stores the weights handed over so far and frees them. */
    void flush(List<Tensor> owned) {
        for (int p = 0; p < pending.size(); p++) {
            int e = entryOf(pendingLinears.get(p));
            for (Tensor t : pending.get(p)) {
                streamer.store(pendingBlock - firstSwapped, e++, t);
                owned.remove(t);
                t.close();
            }
        }
        pending.clear();
        pendingLinears.clear();
        pendingBlock = -1;
    }

    /** The first entry of {@code which} in a block's image. */
    private int entryOf(BlockLinear which) {
        int e = 0;
        for (BlockLinear l : BlockLinear.values()) {
            if (l == which) return e;
            e += streamer.layout().entry(e).dtype() == DType.F8_E4M3 ? 2 : 1;
        }
        throw new AssertionError(which);
    }

    /** {@code home} (a streamed block: biases, norms, modulation) with its Linears in a slot, copied there if needed. */
    Block acquire(Block home) {
        int s = home.index() - firstSwapped;
        int k = streamer.acquire(s);
        Block view = views[s][k];
        if (view == null) {
            view = bound(home, streamer.slot(k));
            views[s][k] = view;
        }
        return view;
    }

    void release(int block) { streamer.release(block - firstSwapped); }

    void prefetch(int block) { streamer.prefetch(block - firstSwapped); }

    /** The largest fp8 code tensor of a block's image (0 when the weights are not quantized). */
    long largestQuantizedElements() {
        long max = 0;
        for (BlockLayout.Entry e : streamer.layout().entries()) {
            if (e.dtype() == DType.F8_E4M3) max = Math.max(max, e.shape().numElements());
        }
        return max;
    }

    /** True when the images hold {@code --fp8_compute}'s per-tensor codes (a scale of one element after the codes). */
    boolean hasTensorScales() {
        List<BlockLayout.Entry> entries = streamer.layout().entries();
        return entries.get(0).dtype() == DType.F8_E4M3 && entries.get(1).shape().rank() == 1;
    }

    long deviceBytes() { return streamer.deviceBytes(); }

    @Override
    public void close() { streamer.close(); }

    /** {@code home} with its Linear weights bound to a slot's tensors. */
    private static Block bound(Block home, List<Tensor> slot) {
        Map<BlockLinear, Linear> linears = new EnumMap<>(BlockLinear.class);
        int e = 0;
        for (BlockLinear which : BlockLinear.values()) {
            Linear l = home.linear(which);
            boolean isQuantized = slot.get(e).dtype() == DType.F8_E4M3;
            linears.put(which, isQuantized ? new Linear(l.key(), null, slot.get(e), slot.get(e + 1), l.bias())
                    : new Linear(l.key(), slot.get(e), null, null, l.bias()));
            e += isQuantized ? 2 : 1;
        }
        return new Block(home.index(), home.modulation(), Collections.unmodifiableMap(linears), home.selfAttnNormQ(),
                home.selfAttnNormK(), home.norm3Weight(), home.norm3Bias(), home.crossAttnNormQ(), home.crossAttnNormK());
    }
}
