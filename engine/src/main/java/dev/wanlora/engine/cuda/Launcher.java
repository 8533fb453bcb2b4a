package dev.wanlora.engine.cuda;

import dev.wanlora.engine.tensor.DType;

import java.util.Locale;

/**
 * What every op launcher shares: the kernel library, grid sizing, the dtype → symbol-suffix rule and the backend's
 * scratch buffer. Package-private plumbing of {@link CudaBackend}; the op families ({@link CudaNorm},
 * {@link CudaElementwise}, {@link CudaFlow}, {@link CudaOptim}) hold one.
 *
 * <p><b>Symbols by dtype.</b> A kernel instantiated for several dtype combinations is named
 * {@code <op>_<pass>_<in>} when input and output dtypes agree and {@code <op>_<pass>_<in>_<out>} otherwise
 * (e.g. {@code rms_norm_fwd_bf16}, {@code rms_norm_fwd_bf16_f32}). A combination without a kernel is an
 * {@link UnsupportedOperationException} listing the symbols that exist.
 */
final class Launcher {
    /** Threads per block of the elementwise kernels. */
    static final int THREADS = 256;

    private final CudaContext context;
    private final KernelLibrary kernels;
    private final int maxBlocks;
    private DeviceBuffer scratch;

    Launcher(CudaContext context, KernelLibrary kernels) {
        this.context = context;
        this.kernels = kernels;
        // Grid-stride kernels need no more than a few waves of blocks to saturate the memory system.
        this.maxBlocks = context.multiprocessorCount() * 16;
    }

    CudaContext context() { return context; }

    int multiprocessorCount() { return context.multiprocessorCount(); }

    /** "f32", "bf16", "f16", "f8e4m3", "f8e5m2": the dtype's name in kernel symbols. */
    static String tag(DType t) {
        return switch (t) {
            case F32 -> "f32";
            case BF16 -> "bf16";
            case F16 -> "f16";
            case F8_E4M3 -> "f8e4m3";
            case F8_E5M2 -> "f8e5m2";
            default -> t.name().toLowerCase(Locale.ROOT);
        };
    }

    /** The kernel {@code base_<in>} or {@code base_<in>_<out>}; see the class comment. */
    static Kernel kernel(String op, String base, DType in, DType out) {
        String symbol = base + "_" + tag(in) + (in == out ? "" : "_" + tag(out));
        Kernel k = Kernel.bySymbol(symbol);
        if (k == null) {
            throw new UnsupportedOperationException(op + " (cuda): no kernel for input " + in + " and output " + out
                    + "; supported kernels: " + Kernel.symbolsStartingWith(base + "_"));
        }
        return k;
    }

    /** A grid-stride launch over {@code n} items of work (elements, or groups of 8 for vectorized kernels). */
    LaunchConfig cover(long n) { return LaunchConfig.cover(n, THREADS, maxBlocks); }

    /** Launches on the compute stream; see {@link KernelLibrary#launch}. */
    void launch(Kernel kernel, LaunchConfig config, Object... args) { kernels.launch(kernel, config, args); }

    /** 0 for an F32 parameter vector, 1 for BF16 (the kernels' ParamType); 0 for null (unused). */
    static int paramType(CudaTensor t) { return t != null && t.dtype() == DType.BF16 ? 1 : 0; }

    /** True when every non-null tensor's address is 16-byte aligned (the kernels' 8-element vector path). */
    static boolean aligned16(CudaTensor... ts) {
        for (CudaTensor t : ts) if (t != null && (t.address() & 15) != 0) return false;
        return true;
    }

    /**
     * The backend's scratch buffer, at least {@code bytes} long (reduction partials). Ops use it only within one call
     * on the compute stream, so consecutive ops may share it. It grows at warm-up (the first call of the largest
     * shape) and never in a steady-state step.
     */
    long scratch(long bytes) {
        if (scratch == null || scratch.sizeBytes() < bytes) {
            if (scratch != null) {
                context.synchronize(); // a queued kernel may still read the old buffer
                scratch.close();
            }
            scratch = DeviceBuffer.allocate(context, Math.max(bytes, 1L << 20), "reduction scratch");
        }
        return scratch.address();
    }

    void close() {
        if (scratch != null) scratch.close();
    }
}
