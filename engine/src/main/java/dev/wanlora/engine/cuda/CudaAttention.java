package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.DeviceFacts;
import dev.wanlora.engine.backend.AttentionOps;
import dev.wanlora.engine.backend.OpChecks.AttentionDims;
import dev.wanlora.engine.tensor.DType;

import static jcuda.driver.JCudaDriver.cuMemsetD8Async;

/**
 * Multi-head attention on the GPU ({@code Backend.attention} / {@code attentionBackward}) through the flash-attention
 * kernels of {@code kernels/src/main/cuda/attention/flash_attention.cu} (its header gives the tiling, numerics and
 * determinism). Shapes as in the Backend contract: q, out, dOut, dq (B, Lq, N·D); k, v, dk, dv (B, Lk, N·D); lse
 * (B, N, Lq) F32. Supported: bf16 activations, head dim D = 128 (Wan), 16-byte aligned tensors; no scores matrix
 * is stored, so any L that fits the activations works. The backward is deterministic (bitwise reproducible).
 *
 * <p><b>Two paths.</b> On compute capability 9.0 (H100, H200) forward and backward run the Hopper kernels of
 * {@code kernels/src/main/cuda/attention_sm90a/flash_attention_sm90.cu} (wgmma, warp-specialised, built for sm_90a
 * only); everywhere else, or with the environment variable {@code WANLORA_KERNELS=portable}, the portable mma.sync
 * kernels (the sm_80/86/89 path our RTX 3090/4090 users take), which the Hopper machine can thus test too. Both
 * compute the same function with the same roundings (bf16 P and dS operands, fp32 sums, bf16 outputs), only the
 * order of the fp32 sums differs; both backwards are deterministic (bitwise reproducible: dQ in its own pass, or on
 * the Hopper path optionally ({@link Backward}) in the dK/dV pass, summed over key blocks in a fixed order through
 * semaphores); the delta preprocess is shared.
 * {@link #describe()} names the path.
 *
 * <p>The backward's scratch (delta (B, N, Lq) F32 = rowsum(dOut∘out); on the Hopper path also the fused backward's
 * dQ accumulator and semaphores: {@link DeviceFacts.AttentionWorkspace}, counted and reserved only when the fused
 * backward is asked for) lives in a buffer owned here: the memory plan calls {@link #reserveBackwardWorkspace} with
 * the largest shape so the step loop never allocates; a larger call grows it (one synchronizing reallocation).
 */
public final class CudaAttention implements AttentionOps.Kernels<CudaTensor>, AutoCloseable {
    /** The head dim the kernels are written for. */
    public static final int HEAD_DIM = 128;

    // Launch geometry; must match flash_attention.cu (kFwdWarps = kBwdWarps = 4, kTile = 64, *SmemBytes).
    private static final int ROWS_PER_BLOCK = 64;         // query rows (fwd, dq) or keys (dkdv) per CTA: 4 warps × 16
    private static final int THREADS = 128;
    private static final int ROW_BYTES = HEAD_DIM * 2;    // one bf16 row of a head
    private static final int FWD_SMEM = (ROWS_PER_BLOCK + 4 * 64) * ROW_BYTES;                    // 80 KiB
    private static final int DKDV_SMEM = (2 * ROWS_PER_BLOCK + 4 * 64) * ROW_BYTES + 4 * 64 * 4; // 97 KiB
    private static final int DQ_SMEM = (2 * ROWS_PER_BLOCK + 4 * 64) * ROW_BYTES;                // 96 KiB
    private static final int PREPROCESS_THREADS = 256;    // 16 threads per (row, head)
    // Hopper kernels; must match flash_attention_sm90.cu (kBr = 128, kThreads = 384, smemBytes(2), dqSmemBytes(2),
    // dkdvSmemBytes(2)): 1 KiB alignment slack, resident blocks, 2 stages of streamed tiles, 2 mbarriers per stage.
    private static final int SM90_ROWS_PER_BLOCK = 128;   // query rows (fwd, dq) or keys (dkdv): 2 consumers × 64
    private static final int SM90_THREADS = 384;          // producer + 2 consumer warpgroups
    private static final int SM90_FWD_SMEM = 1024 + 128 * ROW_BYTES + 2 * 2 * 128 * ROW_BYTES + 2 * 16;          // 161 KiB
    private static final int SM90_DQ_SMEM = 1024 + 2 * 128 * ROW_BYTES + 2 * 2 * 64 * ROW_BYTES + 2 * 16;         // 129 KiB
    private static final int SM90_DKDV_SMEM = 1024 + 2 * 128 * ROW_BYTES + 2 * (2 * 64 * ROW_BYTES + 2 * 64 * 4) + 2 * 16; // 130 KiB
    // fusedSmemBytes(2): K, V, 2 stages of (Q, dO, lse, delta), 2 dS blocks (bf16 64 × 128), 2 dQ tiles (fp32 64 × 128),
    // 8 mbarriers: 226 KiB, within the 227 KiB a Hopper block may opt into
    private static final int SM90_FUSED_SMEM = 1024 + 2 * 128 * ROW_BYTES + 2 * (2 * 64 * ROW_BYTES + 2 * 64 * 4)
            + 2 * 64 * ROW_BYTES + 2 * 64 * HEAD_DIM * Float.BYTES + 8 * 8;
    // The fused backward (one CTA per 128 keys and head, each walking every query tile) needs its grid to fill the card
    // several times over; below that (cross-attention's 512 keys: 160 CTAs) the two passes are faster (NOTES.md, sm90 v3)
    private static final int FUSED_MIN_BLOCKS_PER_SM = 4;
    private static final int QUERY_TILE = 64;             // the fused backward's dQ tile (kBwdTile)

    /** The environment variable that forces the portable kernels on a Hopper card ({@code portable}). */
    public static final String KERNELS_ENV = "WANLORA_KERNELS";

    /**
     * Which backward the Hopper path runs: {@code AUTO} the fused one (attention_bwd_fused_sm90_bf16, dQ summed over key
     * blocks in a fixed order) where its grid fills the card (≥ 4 CTAs per SM), else the dK/dV and dQ passes;
     * {@code PASSES} always the two passes; {@code FUSED} always the fused one (tests). Chosen by the system property
     * {@value #BACKWARD_PROPERTY} (auto, passes, fused); default {@link #DEFAULT_BACKWARD} until the fused kernel's
     * measurement on a Hopper card (kernels/dev/attention/NOTES.md, "sm90 v3") says otherwise.
     */
    public enum Backward { AUTO, PASSES, FUSED }

    /** The system property that picks the Hopper backward ({@link Backward}). */
    public static final String BACKWARD_PROPERTY = DeviceFacts.AttentionWorkspace.BACKWARD_PROPERTY;
    static final Backward DEFAULT_BACKWARD = Backward.PASSES;

    /** Which forward kernel runs. */
    public enum Path {
        /** attention_fwd_sm90_bf16 (sm_90a, wgmma); compute capability 9.0 only. */
        HOPPER,
        /** attention_fwd_bf16 (mma.sync; sm_80 and newer). */
        PORTABLE
    }

    private final CudaContext context;
    private final KernelLibrary kernels;
    private final Launcher launcher;
    private final CudaAttentionWithBias attentionWithBias;
    private DeviceBuffer delta;                           // (≥ B·N·Lq) F32 workspace of the backward
    private boolean sharedMemoryChecked;
    private Path path;
    private Backward backward;

    /** The Hopper path where its kernel is loaded (compute capability 9.0) unless {@code WANLORA_KERNELS=portable}. */
    CudaAttention(CudaContext context, KernelLibrary kernels, Launcher launcher) {
        this.context = context;
        this.kernels = kernels;
        this.launcher = launcher;
        this.attentionWithBias = new CudaAttentionWithBias(launcher);
        this.path = defaultPath(kernels.has(Kernel.ATTENTION_FWD_SM90_BF16), System.getenv(KERNELS_ENV));
        this.backward = backwardFrom(System.getProperty(BACKWARD_PROPERTY));
    }

    /**
     * The Hopper backward for a value of {@value #BACKWARD_PROPERTY} (null or empty: {@link #DEFAULT_BACKWARD}).
     *
     * @throws IllegalArgumentException for any other value, naming the property and the supported values
     */
    static Backward backwardFrom(String value) {
        if (value == null || value.isEmpty()) return DEFAULT_BACKWARD;
        return switch (value) {
            case "auto" -> Backward.AUTO;
            case "passes" -> Backward.PASSES;
            case "fused" -> Backward.FUSED;
            default -> throw new IllegalArgumentException("-D" + BACKWARD_PROPERTY + "=" + value + " is not known; supported:"
                    + " auto (fused where the grid fills the card), passes (dK/dV and dQ passes), fused");
        };
    }

    /** The Hopper backward in use. */
    public Backward backward() { return backward; }

    /** Forces the Hopper backward (tests run the parity suite on the fused one too). */
    void useBackward(Backward backward) { this.backward = backward; }

    /**
     * The path for a device with or without the Hopper kernel and the value of {@code WANLORA_KERNELS} (null when
     * unset): "portable" forces the portable kernels, "auto" (or unset) picks the fastest the device has.
     *
     * @throws IllegalArgumentException for any other value, naming the variable and the supported values
     */
    static Path defaultPath(boolean hopperLoaded, String env) {
        if (env != null && !env.isEmpty() && !env.equals("auto") && !env.equals("portable")) {
            throw new IllegalArgumentException(KERNELS_ENV + "=" + env + " is not known; supported: portable (the sm_80"
                    + " kernels on every card), auto (the default: the Hopper attention on compute capability 9.0)");
        }
        return hopperLoaded && !"portable".equals(env) ? Path.HOPPER : Path.PORTABLE;
    }

    /** The forward path in use. */
    public Path path() { return path; }

    /** Forces a path (tests run the parity suite on both on one Hopper card). */
    void usePath(Path path) {
        if (path == Path.HOPPER && !kernels.has(Kernel.ATTENTION_FWD_SM90_BF16)) {
            throw new IllegalStateException("the Hopper attention kernel needs compute capability 9.0; " + context + " is "
                    + context.computeCapability() / 10 + "." + context.computeCapability() % 10);
        }
        this.path = path;
    }

    /** One line for the start-up log: which attention kernels run and why. */
    public String describe() {
        String cc = context.computeCapability() / 10 + "." + context.computeCapability() % 10;
        if (path == Path.HOPPER) {
            return "attention: Hopper kernels (sm_90a wgmma: forward; backward " + switch (backward) {
                case AUTO -> "fused with a fixed-order dQ sum where the grid fills the card, else dK/dV and dQ passes";
                case PASSES -> "dK/dV and dQ passes";
                case FUSED -> "fused with a fixed-order dQ sum";
            } + "); " + KERNELS_ENV + "=portable forces the portable ones";
        }
        return "attention: portable kernels (mma.sync, sm_80+) on compute capability " + cc
                + ("portable".equals(System.getenv(KERNELS_ENV)) ? " (" + KERNELS_ENV + "=portable)" : "");
    }

    /** Wan's RoPE (rope.cu), forward or inverse rotation, on 8-element groups. */
    @Override
    public void rope(CudaTensor out, CudaTensor x, CudaTensor cos, CudaTensor sin, boolean inverse, AttentionDims d) {
        long n = out.numElements();
        if (n == 0) return;
        launcher.launch(Launcher.kernel(inverse ? "ropeBackward" : "rope", "rope_fwd", x.dtype(), out.dtype()),
                launcher.cover((n + 7) / 8), out, x, cos, sin, d.queries(), d.heads(), (int) d.headDim(), n, inverse ? 1 : 0);
    }

    @Override
    public void attentionWithBias(CudaTensor out, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor bias,
                                  CudaTensor keyMask, AttentionDims d) {
        attentionWithBias.forward(out, q, k, v, bias, keyMask, d);
    }

    /** Bytes of backward workspace for a shape on either path: {@link DeviceFacts.AttentionWorkspace}. */
    public static long backwardWorkspaceBytes(long batch, int heads, long queries) {
        return DeviceFacts.attentionWorkspaceBytes(batch, heads, queries);
    }

    /** Makes the backward workspace at least {@code bytes} large now (plan time), so later calls never allocate. */
    public void reserveBackwardWorkspace(long bytes) {
        if (delta != null && delta.sizeBytes() >= bytes) return;
        if (delta != null) {
            context.synchronize(); // the old buffer may still be read by queued kernels
            delta.close();
        }
        delta = DeviceBuffer.allocate(context, bytes, "attention backward delta (B, N, Lq) F32");
    }

    /** out = softmax(q·kᵀ/√128)·v per batch and head; lse = log Σ exp(scores) (=). */
    @Override
    public void attention(CudaTensor out, CudaTensor lse, CudaTensor q, CudaTensor k, CudaTensor v, AttentionDims d) {
        int numHeads = d.heads();
        requireSupported("attention", d, new String[] {"out", "q", "k", "v"}, out, q, k, v);
        if (d.batch() == 0 || d.queries() == 0) return;
        int lq = Math.toIntExact(d.queries()), lk = Math.toIntExact(d.keys());
        if (path == Path.HOPPER) {
            kernels.launch(Kernel.ATTENTION_FWD_SM90_BF16, LaunchConfig.of((lq + SM90_ROWS_PER_BLOCK - 1) / SM90_ROWS_PER_BLOCK,
                    d.batch() * numHeads, SM90_THREADS, SM90_FWD_SMEM), out, lse, q, k, v, numHeads, lq, lk);
            return;
        }
        kernels.launch(Kernel.ATTENTION_FWD_BF16, LaunchConfig.of(blocks(lq), d.batch() * numHeads, THREADS, FWD_SMEM),
                out, lse, q, k, v, numHeads, lq, lk);
    }

    /** Backward of {@link #attention}: dq, dk, dv overwritten; out and lse as the forward wrote them. */
    @Override
    public void attentionBackward(CudaTensor dq, CudaTensor dk, CudaTensor dv, CudaTensor dOut, CudaTensor q,
                                  CudaTensor k, CudaTensor v, CudaTensor out, CudaTensor lse, AttentionDims d) {
        int numHeads = d.heads();
        requireSupported("attentionBackward", d, new String[] {"dq", "dk", "dv", "dOut", "q", "k", "v", "out"},
                dq, dk, dv, dOut, q, k, v, out);
        if (d.batch() == 0) return;
        if (d.queries() == 0) { // no query attends to any key: every key gradient is zero
            context.makeCurrent();
            CudaException.check(cuMemsetD8Async(dk.pointer(), (byte) 0, dk.sizeBytes(), context.computeStream()), "cuMemsetD8Async", "dk");
            CudaException.check(cuMemsetD8Async(dv.pointer(), (byte) 0, dv.sizeBytes(), context.computeStream()), "cuMemsetD8Async", "dv");
            return;
        }
        int lq = Math.toIntExact(d.queries()), lk = Math.toIntExact(d.keys()), batch = Math.toIntExact(d.batch());
        long batchHeads = d.batch() * numHeads;
        DeviceFacts.AttentionWorkspace workspace = DeviceFacts.AttentionWorkspace.of(d.batch(), numHeads, d.queries());
        long keyBlocks = (lk + SM90_ROWS_PER_BLOCK - 1) / SM90_ROWS_PER_BLOCK;
        boolean fused = path == Path.HOPPER && (backward == Backward.FUSED || backward == Backward.AUTO
                && keyBlocks * batchHeads >= (long) FUSED_MIN_BLOCKS_PER_SM * context.multiprocessorCount());
        reserveBackwardWorkspace(fused ? workspace.totalBytes() : workspace.deltaBytes());
        Long deltaAddress = delta.address();
        kernels.launch(Kernel.ATTENTION_BWD_PREPROCESS_BF16,
                LaunchConfig.cover(Math.multiplyExact(batchHeads * lq, 16L), PREPROCESS_THREADS, 16 * context.multiprocessorCount()),
                deltaAddress, dOut, out, batch, numHeads, lq);
        if (fused) {
            fusedBackward(dq, dk, dv, dOut, q, k, v, lse, workspace, keyBlocks, batchHeads, numHeads, lq, lk);
            return;
        }
        if (path == Path.HOPPER) {
            long dkdvBlocks = (lk + SM90_ROWS_PER_BLOCK - 1) / SM90_ROWS_PER_BLOCK, dqBlocks = (lq + SM90_ROWS_PER_BLOCK - 1) / SM90_ROWS_PER_BLOCK;
            kernels.launch(Kernel.ATTENTION_BWD_DKDV_SM90_BF16, LaunchConfig.of(dkdvBlocks, batchHeads, SM90_THREADS, SM90_DKDV_SMEM),
                    dk, dv, dOut, q, k, v, lse, deltaAddress, numHeads, lq, lk);
            kernels.launch(Kernel.ATTENTION_BWD_DQ_SM90_BF16, LaunchConfig.of(dqBlocks, batchHeads, SM90_THREADS, SM90_DQ_SMEM),
                    dq, dOut, q, k, v, lse, deltaAddress, numHeads, lq, lk);
            return;
        }
        kernels.launch(Kernel.ATTENTION_BWD_DKDV_BF16, LaunchConfig.of(blocks(lk), batchHeads, THREADS, DKDV_SMEM),
                dk, dv, dOut, q, k, v, lse, deltaAddress, numHeads, lq, lk);
        kernels.launch(Kernel.ATTENTION_BWD_DQ_BF16, LaunchConfig.of(blocks(lq), batchHeads, THREADS, DQ_SMEM),
                dq, dOut, q, k, v, lse, deltaAddress, numHeads, lq, lk);
    }

    /**
     * attention_bwd_fused_sm90_bf16 then attention_bwd_dq_convert_sm90_bf16 per group of workspace.pairsPerLaunch()
     * (batch, head) pairs; the group's semaphores are zeroed first (the kernel's key blocks take turns on them).
     */
    private void fusedBackward(CudaTensor dq, CudaTensor dk, CudaTensor dv, CudaTensor dOut, CudaTensor q, CudaTensor k,
                               CudaTensor v, CudaTensor lse, DeviceFacts.AttentionWorkspace workspace, long keyBlocks,
                               long batchHeads, int numHeads, int lq, int lk) {
        long tiles = (lq + QUERY_TILE - 1) / QUERY_TILE;
        Long deltaAddress = delta.address();
        Long semaphores = delta.address() + workspace.semaphoreOffset(), accumulator = delta.address() + workspace.accumulatorOffset();
        context.makeCurrent();
        for (long first = 0; first < batchHeads; first += workspace.pairsPerLaunch()) {
            long pairs = Math.min(workspace.pairsPerLaunch(), batchHeads - first);
            CudaException.check(cuMemsetD8Async(delta.pointer(workspace.semaphoreOffset()), (byte) 0, pairs * tiles * Integer.BYTES,
                    context.computeStream()), "cuMemsetD8Async", "attention backward semaphores");
            kernels.launch(Kernel.ATTENTION_BWD_FUSED_SM90_BF16, LaunchConfig.of(keyBlocks, pairs, SM90_THREADS, SM90_FUSED_SMEM),
                    dk, dv, accumulator, semaphores, dOut, q, k, v, lse, deltaAddress, numHeads, lq, lk, (int) first);
            kernels.launch(Kernel.ATTENTION_BWD_DQ_CONVERT_SM90_BF16,
                    LaunchConfig.cover(pairs * tiles * (QUERY_TILE * HEAD_DIM / 4), PREPROCESS_THREADS, 8 * context.multiprocessorCount()),
                    dq, accumulator, numHeads, lq, (int) first, (int) pairs);
        }
    }

    private static long blocks(int rows) { return (rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK; }

    private void requireSupported(String op, AttentionDims d, String[] names, CudaTensor... tensors) {
        if (d.headDim() != HEAD_DIM) {
            throw new UnsupportedOperationException(op + " (cuda): no kernel for head dim " + d.headDim() + " (" + d.heads()
                    + " heads of width " + tensors[0].shape().dim(2) + "); supported: head dim " + HEAD_DIM + ", bf16 activations");
        }
        for (int i = 0; i < tensors.length; i++) {
            if (tensors[i].dtype() != DType.BF16) {
                throw new UnsupportedOperationException(op + " (cuda): no kernel for " + names[i] + "=" + tensors[i].dtype()
                        + "; supported: bf16 " + String.join(", ", names) + " with F32 lse, head dim " + HEAD_DIM);
            }
            if (tensors[i].address() % 16 != 0) {
                throw new IllegalArgumentException(op + ": " + names[i] + " is not 16-byte aligned; got " + tensors[i]
                        + " at address 0x" + Long.toHexString(tensors[i].address())
                        + ", expected a 16-byte aligned start (a view must begin at a multiple of 8 elements)");
            }
        }
        if (!sharedMemoryChecked) {
            int available = context.attribute(jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
            if (available < DKDV_SMEM) {
                throw new UnsupportedOperationException(op + " (cuda): the attention kernels need " + DKDV_SMEM
                        + " bytes of shared memory per block; " + context + " allows " + available
                        + "; supported: compute capability 8.0 and newer (99 KiB or more per block)");
            }
            sharedMemoryChecked = true;
        }
    }

    @Override
    public void close() {
        if (delta != null) delta.close();
    }
}
