package dev.wanlora.engine.backend;

/**
 * What code above the engine may ask about the device a {@link Backend} runs on (issue 8): the questions that were
 * answered by testing the backend's type. {@link Backend#device()} gives it; code outside {@code engine} never names
 * {@code CudaBackend} or {@code CpuBackend}.
 *
 * @param name              the device as a person reads it: the GPU's name ("NVIDIA H200"), or "cpu"
 * @param storesFp32        tensors are stored in fp32 whatever their dtype (the CPU reference); a memory plan made for
 *                          a GPU then says the CPU holds more than planned
 * @param keepsFp8Quantized fp8 weights stay fp8 on the device and are dequantized per GEMM; when false they are stored
 *                          dequantized (exactly the values a GPU dequantizes before each GEMM)
 * @param pinsHostMemory    host buffers for streamed blocks and offloaded activations are page-locked (DMA copies)
 * @param totalMemoryBytes  the device memory a memory plan is checked against; 0 when the device has none of its own
 *                          (the CPU: nothing to budget)
 * @param memory            the device memory now (free, live, peak); all zero where there is none
 * @param hasFp8TensorCores the device multiplies e4m3 operands in hardware (compute capability 8.9 or newer), which
 *                          {@code gemmFp8} needs on a GPU ({@code --fp8_compute}); false for the CPU, whose reference
 *                          computes the same numbers in software
 */
public record DeviceFacts(String name, boolean storesFp32, boolean keepsFp8Quantized, boolean pinsHostMemory,
                          long totalMemoryBytes, Memory memory, boolean hasFp8TensorCores) {

    /** A device without fp8 tensor cores. */
    public DeviceFacts(String name, boolean storesFp32, boolean keepsFp8Quantized, boolean pinsHostMemory,
                       long totalMemoryBytes, Memory memory) {
        this(name, storesFp32, keepsFp8Quantized, pinsHostMemory, totalMemoryBytes, memory, false);
    }

    /** The device's memory as it is now; counters of this process's device buffers. */
    public interface Memory {
        /** Bytes free on the device now (the driver's view, other processes included). */
        long freeBytes();

        /** Bytes this process holds in device buffers now. */
        long liveBytes();

        /** The most {@link #liveBytes()} since the last {@link #resetPeakLiveBytes()}. */
        long peakLiveBytes();

        /** Starts a new peak at the current live bytes. */
        void resetPeakLiveBytes();

        /** Device allocations made by this process so far (the step loop must make none after warm-up). */
        long allocationCount();
    }

    /** No device memory of its own: every figure 0. */
    public static final Memory NO_MEMORY = new Memory() {
        @Override public long freeBytes() { return 0; }
        @Override public long liveBytes() { return 0; }
        @Override public long peakLiveBytes() { return 0; }
        @Override public void resetPeakLiveBytes() {}
        @Override public long allocationCount() { return 0; }
    };

    /** The CPU reference: fp32 storage, fp8 stored dequantized, ordinary host memory, no device memory. */
    public static DeviceFacts cpu() {
        return new DeviceFacts("cpu", true, false, false, 0, NO_MEMORY);
    }

    /** The device has memory of its own to budget (a GPU). */
    public boolean hasDeviceMemory() { return totalMemoryBytes > 0; }

    /** Bytes in use on the device now by anything (this process, the runtime, other processes); 0 without device memory. */
    public long usedBytes() { return hasDeviceMemory() ? totalMemoryBytes - memory.freeBytes() : 0; }

    /**
     * Bytes of the attention backward's workspace on a GPU for a shape: its delta ({@link AttentionWorkspace#deltaBytes()}),
     * and the fused backward's parts too ({@link AttentionWorkspace#totalBytes()}) only when
     * {@code -Dwanlora.attentionBackward} asks for the fused kernel ({@link AttentionWorkspace#fusedRequested()}):
     * the default two passes never touch them, and at 32760 tokens they are 256 MiB a 24 GB plan cannot spare. A memory
     * plan made for a GPU counts it on any backend (a --dry_run without one).
     */
    public static long attentionWorkspaceBytes(long batch, int heads, long queries) {
        AttentionWorkspace w = AttentionWorkspace.of(batch, heads, queries);
        return AttentionWorkspace.fusedRequested() ? w.totalBytes() : w.deltaBytes();
    }

    /**
     * Layout of the attention backward's workspace (one buffer, parts at 256-byte boundaries): delta (B, N, Lq) fp32
     * = rowsum(dOut∘out); for the Hopper kernels' fused backward ({@code attention_bwd_fused_sm90_bf16}) the int32
     * semaphores and the fp32 dQ accumulator of one launch, which covers {@code pairsPerLaunch} (batch, head) pairs:
     * ⌈Lq/64⌉ query tiles of 64 × 128 fp32 (32 KiB) per pair, as many pairs as fit {@link #FUSED_ACC_BUDGET} (all
     * 40 heads up to 6912 tokens, 16 at 32760), so the workspace stays small at any length.
     */
    public record AttentionWorkspace(long deltaBytes, long semaphoreOffset, long accumulatorOffset, long pairsPerLaunch,
                                     long totalBytes) {
        /** The dQ accumulator's bound per launch (the dev harness mirrors it: kFusedAccBudget in kernels/dev/attention/harness.cu). */
        public static final long FUSED_ACC_BUDGET = 256L << 20;
        /** Bytes of one 64-query tile of the dQ accumulator. */
        public static final long TILE_BYTES = 64L * 128 * Float.BYTES;
        /** The system property that picks the Hopper attention backward: auto, passes (the default) or fused. */
        public static final String BACKWARD_PROPERTY = "wanlora.attentionBackward";

        /** Whether {@value #BACKWARD_PROPERTY} is auto or fused: only then may the fused backward run in this process. */
        public static boolean fusedRequested() {
            String value = System.getProperty(BACKWARD_PROPERTY, "");
            return value.equals("auto") || value.equals("fused");
        }

        public static AttentionWorkspace of(long batch, int heads, long queries) {
            long pairs = Math.multiplyExact(batch, heads), tiles = (queries + 63) / 64;
            long deltaBytes = Math.multiplyExact(pairs, queries) * Float.BYTES;
            long perLaunch = Math.max(1, Math.min(pairs, FUSED_ACC_BUDGET / Math.max(1, tiles * TILE_BYTES)));
            long semaphores = align256(deltaBytes), accumulator = semaphores + align256(perLaunch * tiles * Integer.BYTES);
            return new AttentionWorkspace(deltaBytes, semaphores, accumulator, perLaunch,
                    accumulator + perLaunch * tiles * TILE_BYTES);
        }

        private static long align256(long bytes) { return (bytes + 255) & ~255L; }
    }
}
