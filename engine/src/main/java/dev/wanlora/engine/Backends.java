package dev.wanlora.engine;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.cpu.CpuBackend;
import dev.wanlora.engine.cuda.CudaBackend;
import dev.wanlora.engine.cuda.CudaContext;
import dev.wanlora.engine.cuda.CudaException;

/**
 * Opens a {@link Backend} by its command-line name ({@code --backend}): "cpu" (the reference), "cuda" (GPU 0) or
 * "cuda:N". Backends are passed on explicitly from here (STYLE.md §10); this is the only place a name becomes one.
 *
 * <p>It sits in the engine's root package, above {@code backend}, {@code cpu} and {@code cuda}: it is the one class
 * that names the implementations, and {@code engine.backend} (the contract they implement) must not depend on them.
 */
public final class Backends {
    private Backends() {}

    /**
     * @throws IllegalArgumentException for an unknown name, listing the supported ones
     * @throws UnsupportedOperationException when the CUDA backend cannot start here (no driver or GPU), with the cause
     */
    public static Backend create(String name) {
        if (name.equals("cpu")) return new CpuBackend();
        if (name.equals("cuda") || name.matches("cuda:\\d+")) {
            int device = name.equals("cuda") ? 0 : Integer.parseInt(name.substring(5));
            try {
                return CudaBackend.open(device);
            } catch (RuntimeException | LinkageError e) {
                // JCuda's loader message spans many lines (a nested stack trace); its first line names the problem.
                String reason = String.valueOf(e.getMessage()).lines().findFirst().orElse(e.getClass().getSimpleName());
                throw new UnsupportedOperationException("--backend " + name + ": cuda backend not available here ("
                        + reason + "); use --backend cpu, or run on a machine with an NVIDIA GPU and driver", e);
            }
        }
        throw new IllegalArgumentException("--backend " + name + " is not known; supported: cpu, cuda, cuda:N");
    }

    /**
     * One line for the start-up output naming the attention kernels a GPU backend runs (the Hopper or the portable
     * path, {@code WANLORA_KERNELS}); null for the CPU.
     */
    public static String attentionPath(Backend backend) {
        return backend instanceof CudaBackend cuda ? cuda.attentionPath() : null;
    }

    /** Why {@code --backend cuda} cannot start here (no driver, no GPU), or null when it can. */
    public static String gpuUnavailableReason() {
        return CudaContext.unavailableReason();
    }

    /** Whether {@code e} is the device running out of memory (CUDA_ERROR_OUT_OF_MEMORY from an allocation or a call). */
    public static boolean isOutOfDeviceMemory(Throwable e) {
        return e instanceof CudaException cuda && cuda.status() == CUDA_ERROR_OUT_OF_MEMORY;
    }

    /** CUresult CUDA_ERROR_OUT_OF_MEMORY. */
    private static final int CUDA_ERROR_OUT_OF_MEMORY = 2;
}
