package dev.wanlora.engine.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.List;

import static java.lang.foreign.ValueLayout.*;

/**
 * {@code cuLaunchKernel} bound through FFM, for the kernel launches of {@link KernelLibrary}. JCuda's binding
 * marshals every argument as its own pinned Java array through JNI; on a 14B training step that cost ~15 µs of host
 * time per launch of a small kernel (device-timed profile: a (32, 1536) f32→bf16 convert took 17.9 µs, its kernel
 * ~2 µs), which is all the GPU waited for in the step's stretches of many small ops (the LoRA's per-module bf16
 * copies, clip and optimizer updates). Here every argument is written into one preallocated native buffer and the
 * driver is called directly (the driver copies the values at the call, so the buffer is reused at once).
 *
 * <p>Launches come from one thread at a time (as every op on a {@link CudaContext}), so the one buffer needs no lock.
 */
final class DriverLaunch implements AutoCloseable {
    /** More than any kernel takes (the flash-attention backward has the most, ~25). */
    static final int MAX_ARGS = 64;

    private static final List<String> LIBRARY_NAMES = List.of("libcuda.so.1", "libcuda.so", "nvcuda.dll");

    private final Arena arena = Arena.ofShared();
    private final MethodHandle launch;
    private final MemorySegment values; // MAX_ARGS × 8 bytes: argument i's value at byte 8·i
    private final MemorySegment params; // MAX_ARGS pointers: params[i] → values + 8·i (the kernelParams array)

    DriverLaunch() {
        SymbolLookup lib = null;
        for (String name : LIBRARY_NAMES) {
            try {
                lib = SymbolLookup.libraryLookup(name, arena);
                break;
            } catch (IllegalArgumentException notFound) {
                lib = null;
            }
        }
        if (lib == null) {
            arena.close();
            throw new IllegalStateException("cuda: the driver library (" + String.join(", ", LIBRARY_NAMES)
                    + ") is not on the loader path, though JCuda loaded it; add the NVIDIA driver's folder to LD_LIBRARY_PATH");
        }
        MemorySegment symbol = lib.find("cuLaunchKernel").orElseThrow(() -> new IllegalStateException(
                "cuda: cuLaunchKernel missing from the driver library; expected a CUDA 12 or newer driver"));
        launch = Linker.nativeLinker().downcallHandle(symbol, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        values = arena.allocate(8L * MAX_ARGS, 8);
        params = arena.allocate(ADDRESS, MAX_ARGS);
        for (int i = 0; i < MAX_ARGS; i++) params.setAtIndex(ADDRESS, i, values.asSlice(8L * i, 8));
    }

    /**
     * Launches {@code function} (a CUfunction handle) on {@code stream} (a CUstream handle) with {@code args} mapped
     * as {@link KernelLibrary} documents; returns the CUresult.
     */
    int launch(long function, LaunchConfig c, long stream, Object[] args) {
        if (args.length > MAX_ARGS) {
            throw new IllegalArgumentException("launch: " + args.length + " arguments; at most " + MAX_ARGS + " supported");
        }
        for (int i = 0; i < args.length; i++) {
            long at = 8L * i;
            switch (args[i]) {
                case null -> values.set(JAVA_LONG, at, 0L);
                case CudaTensor t -> values.set(JAVA_LONG, at, t.address());
                case Long v -> values.set(JAVA_LONG, at, v);
                case Integer v -> values.set(JAVA_INT, at, v);
                case Float v -> values.set(JAVA_FLOAT, at, v);
                case Double v -> values.set(JAVA_DOUBLE, at, v);
                default -> throw new IllegalArgumentException("launch: argument " + i + " has unsupported type "
                        + args[i].getClass().getSimpleName() + "; expected CudaTensor, Long, Integer, Float or Double");
            }
        }
        try {
            return (int) launch.invokeExact(MemorySegment.ofAddress(function), c.gridX(), c.gridY(), c.gridZ(), c.blockX(),
                    c.blockY(), c.blockZ(), c.sharedBytes(), MemorySegment.ofAddress(stream), params, MemorySegment.NULL);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuLaunchKernel: " + t, t);
        }
    }

    @Override
    public void close() { arena.close(); }
}
