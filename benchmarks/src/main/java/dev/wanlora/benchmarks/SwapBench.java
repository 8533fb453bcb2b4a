package dev.wanlora.benchmarks;

import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.cuda.CudaEvent;
import dev.wanlora.engine.cuda.CudaTensor;
import dev.wanlora.engine.cuda.PinnedHostBuffer;
import dev.wanlora.engine.memory.BlockLayout;
import dev.wanlora.engine.stream.BlockStreamer;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.WanDitConfig;
import dev.wanlora.models.wan.WanDitWeights.BlockLinear;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What block streaming ({@code --blocks_to_swap}) costs per swapped block on the present GPU, at Wan2.1-14B sizes
 * (DESIGN.md §6), timed with CUDA events:
 * <ol>
 *   <li>host→device bandwidth of one block image (the ten Linears as fp8 codes + bf16 scales, 345.5 MiB) from pinned
 *       memory on the copy stream;</li>
 *   <li>a block's frozen-weight work at L tokens (each of the ten Linears dequantized, then its GEMM, as {@code WanDit}
 *       runs them; cross-attention k/v over the 512 text rows), once per block ("forward") and twice ("backward":
 *       recompute plus the input-gradient GEMMs), first with one resident block, then with {@link #BLOCKS} blocks
 *       streamed through a 2-slot {@link BlockStreamer} in order, every block a copy. The difference per block is
 *       what a swapped block adds to a step when its copy does not hide under that work. Attention, norms and LoRA
 *       are left out, so the real per-block work is longer and the overhead at most what is printed.</li>
 * </ol>
 * Run: {@code java --enable-native-access=ALL-UNNAMED -cp "lib/*" dev.wanlora.benchmarks.SwapBench [device]}.
 */
public final class SwapBench {
    /** Blocks in pinned memory: more than the ring's 2 slots, so every block of a pass is copied. */
    private static final int BLOCKS = 6;
    private static final int PASSES = 5;

    private final CudaBackend cuda;
    private final WanDitConfig config = WanDitConfig.t2v14B();
    private final CudaEvent start, stop;

    private SwapBench(CudaBackend cuda) {
        this.cuda = cuda;
        this.start = cuda.context().newEvent(true);
        this.stop = cuda.context().newEvent(true);
    }

    public static void main(String[] args) {
        int device = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        try (CudaBackend cuda = CudaBackend.open(device)) {
            SwapBench bench = new SwapBench(cuda);
            System.out.println("SwapBench on " + cuda.name());
            BlockLayout layout = bench.layout();
            bench.bandwidth(layout);
            try (BlockStreamer streamer = bench.filled(layout)) {
                for (long l : new long[] {3744, 32760}) bench.perBlock(streamer, l);
            }
        }
    }

    /** One 14B block's Linears as the GPU streams them: per Linear the fp8 codes (O, I), then the bf16 scale (O, I/64, 1). */
    private BlockLayout layout() {
        List<BlockLayout.Entry> entries = new ArrayList<>();
        for (BlockLinear l : BlockLinear.values()) {
            Shape w = l.weightShape(config);
            entries.add(new BlockLayout.Entry(DType.F8_E4M3, w));
            entries.add(new BlockLayout.Entry(DType.BF16, Shape.of(w.dim(0), w.dim(1) / 64, 1)));
        }
        return new BlockLayout(entries);
    }

    private void bandwidth(BlockLayout layout) {
        try (PinnedHostBuffer host = cuda.allocatePinned(layout.sizeBytes(), "bench block image");
             CudaTensor slot = cuda.allocateUninitialized(DType.U8, Shape.of(layout.sizeBytes()))) {
            cuda.copyToDeviceAsync(slot, host, 0); // warm-up
            cuda.synchronize();
            start.recordOnCopy();
            for (int i = 0; i < 10; i++) cuda.copyToDeviceAsync(slot, host, 0);
            stop.recordOnCopy();
            stop.synchronize();
            double seconds = stop.elapsedMillisSince(start) / 1e3 / 10;
            System.out.printf(Locale.ROOT, "block image %.1f MiB pinned -> device: %.2f ms, %.1f GB/s%n",
                    layout.sizeBytes() / 1048576.0, seconds * 1e3, layout.sizeBytes() / seconds / 1e9);
        }
    }

    /** {@link #BLOCKS} blocks of random fp8 codes (finite, |value| ≤ 2) and scales 1/64. */
    private BlockStreamer filled(BlockLayout layout) {
        long largest = 0;
        for (BlockLayout.Entry e : layout.entries()) largest = Math.max(largest, e.sizeBytes());
        byte[] codes = new byte[Math.toIntExact(largest)];
        java.util.SplittableRandom random = new java.util.SplittableRandom(5);
        // sign, exponent ≤ 7 (2^0 after the bias of 7), any mantissa: never the NaN code 0x7F / 0xFF
        for (int i = 0; i < codes.length; i++) codes[i] = (byte) (random.nextInt(0x40) | (random.nextBoolean() ? 0x80 : 0));
        java.lang.foreign.MemorySegment bytes = java.lang.foreign.MemorySegment.ofArray(codes);
        BlockStreamer s = BlockStreamer.open(cuda, layout, BLOCKS, BlockStreamer.DEFAULT_SLOTS);
        for (int b = 0; b < BLOCKS; b++) {
            for (int e = 0; e < layout.numEntries(); e++) {
                BlockLayout.Entry entry = layout.entry(e);
                if (entry.dtype() == DType.F8_E4M3) {
                    try (CudaTensor t = cuda.fromBytes(DType.F8_E4M3, entry.shape(), bytes.asSlice(0, entry.sizeBytes()))) {
                        s.store(b, e, t);
                    }
                } else {
                    try (CudaTensor t = cuda.allocate(entry.dtype(), entry.shape())) {
                        cuda.fill(t, 1f / 64);
                        s.store(b, e, t);
                    }
                }
            }
        }
        return s;
    }

    private void perBlock(BlockStreamer streamer, long tokens) {
        long c = config.dim(), ffn = config.ffnDim(), text = config.textLen();
        try (CudaTensor x = cuda.allocate(DType.BF16, Shape.of(tokens, c));
             CudaTensor xFfn = cuda.allocate(DType.BF16, Shape.of(tokens, ffn));
             CudaTensor context = cuda.allocate(DType.BF16, Shape.of(text, c));
             CudaTensor y = cuda.allocate(DType.BF16, Shape.of(tokens, c));
             CudaTensor yFfn = cuda.allocate(DType.BF16, Shape.of(tokens, ffn));
             CudaTensor yText = cuda.allocate(DType.BF16, Shape.of(text, c));
             CudaTensor scratch = cuda.allocate(DType.BF16, Shape.of(ffn * c))) {
            cuda.gaussianNoise(x, 1, 0);
            cuda.gaussianNoise(xFfn, 2, 0);
            cuda.gaussianNoise(context, 3, 0);
            Work work = new Work(x, xFfn, context, y, yFfn, yText, scratch);
            for (int repeats : new int[] {1, 2}) {
                int k = streamer.acquire(0);
                work.run(streamer.slot(k), repeats); // warm-up (cuBLASLt plans)
                double resident = time(() -> {
                    for (int b = 0; b < BLOCKS; b++) work.run(streamer.slot(k), repeats);
                });
                streamer.release(0);
                double streamed = time(() -> {
                    for (int b = 0; b < BLOCKS; b++) {
                        int slot = streamer.acquire(b);
                        streamer.prefetch((b + 1) % BLOCKS);
                        work.run(streamer.slot(slot), repeats);
                        streamer.release(b);
                    }
                });
                double flops = repeats * 2.0 * tokens * (8 * c * c + 2 * c * ffn) - repeats * 2.0 * 2 * (tokens - text) * c * c;
                System.out.printf(Locale.ROOT, "L=%d %s: resident %.2f ms/block (%.0f TFLOP/s), streamed %.2f ms/block,"
                                + " overhead %.2f ms per swapped block%n", tokens, repeats == 1 ? "forward " : "backward",
                        resident / BLOCKS * 1e3, flops * BLOCKS / resident / 1e12, streamed / BLOCKS * 1e3,
                        (streamed - resident) / BLOCKS * 1e3);
            }
        }
    }

    /** The ten Linears of one block: dequantize each weight into the scratch, then its GEMM (repeated {@code repeats} times). */
    private record Work(CudaTensor x, CudaTensor xFfn, CudaTensor context, CudaTensor y, CudaTensor yFfn, CudaTensor yText,
                        CudaTensor scratch) {
        void run(List<Tensor> slot, int repeats) {
            CudaBackend cuda = x.cudaBackend();
            for (int r = 0; r < repeats; r++) {
                for (BlockLinear l : BlockLinear.values()) {
                    Tensor codes = slot.get(2 * l.ordinal()), scale = slot.get(2 * l.ordinal() + 1);
                    Tensor w = scratch.view(0, codes.shape());
                    cuda.dequantizeFp8(w, codes, scale);
                    switch (l) {
                        case CROSS_ATTN_K, CROSS_ATTN_V -> cuda.gemm(yText, context, false, w, true, 1, 0, null);
                        case FFN_0 -> cuda.gemm(yFfn, x, false, w, true, 1, 0, null);
                        case FFN_2 -> cuda.gemm(y, xFfn, false, w, true, 1, 0, null);
                        default -> cuda.gemm(y, x, false, w, true, 1, 0, null);
                    }
                }
            }
        }
    }

    /**
     * Median of {@link #PASSES} passes, seconds, between events on the compute stream. No synchronization between
     * passes: a streamed pass prefetches the next pass's first block, which must not get a free head start.
     */
    private double time(Runnable pass) {
        double[] seconds = new double[PASSES];
        cuda.synchronize();
        for (int p = 0; p < PASSES; p++) {
            start.recordOnCompute();
            pass.run();
            stop.recordOnCompute();
            stop.synchronize();
            seconds[p] = stop.elapsedMillisSince(start) / 1e3;
        }
        java.util.Arrays.sort(seconds);
        return seconds[PASSES / 2];
    }
}
