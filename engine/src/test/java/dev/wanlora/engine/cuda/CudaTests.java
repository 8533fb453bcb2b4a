package dev.wanlora.engine.cuda;

/**
 * The one CudaBackend the GPU tests of a JVM share (opening a context and loading the kernels costs ~0.5 s), and
 * the cached answer to "is there a GPU here".
 */
public final class CudaTests {
    private CudaTests() {}

    private static String reason;
    private static boolean probed;
    private static CudaBackend backend;

    /** Null when a CUDA device is usable, else why not (one line). */
    public static synchronized String unavailableReason() {
        if (!probed) {
            probed = true;
            reason = CudaContext.unavailableReason();
        }
        return reason;
    }

    /** The shared backend on device 0 ({@code -Dwanlora.cudaDevice=N} picks another); left open until the JVM exits. */
    public static synchronized CudaBackend backend() {
        if (backend == null) backend = CudaBackend.open(Integer.getInteger("wanlora.cudaDevice", 0));
        return backend;
    }
}
