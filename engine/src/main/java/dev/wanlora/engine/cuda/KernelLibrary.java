package dev.wanlora.engine.cuda;

import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.Map;

import static jcuda.driver.JCudaDriver.*;

/**
 * The CUDA kernels, loaded once per context from the fatbin resources {@code dev/wanlora/kernels/<family>.fatbin}
 * (built from {@code kernels/src/main/cuda/<family>/} by nvcc at {@code mvn package}). Every {@link Kernel} entry is
 * resolved when the library loads, so a missing kernel fails at start-up; the sm_90a-only families
 * ({@link Kernel#requiresHopper()}) are loaded on compute capability 9.0 only ({@link #has} says whether they are).
 *
 * <p><b>Launching</b>: {@code kernels.launch(Kernel.RMS_NORM_FWD_BF16, LaunchConfig.of(rows, 256), out, rstd, x, weight, eps, rows, cols)}
 * runs the kernel on the context's compute stream. Arguments map to C parameters by their Java type:
 * {@link CudaTensor} → a device pointer to its element 0, {@code null} → a null pointer, {@code Long} → {@code long long},
 * {@code Integer} → {@code int}, {@code Float} → {@code float}, {@code Double} → {@code double}. The order and types
 * must match the kernel's C signature exactly (write {@code 5L} for a {@code long long} parameter). Dynamic shared
 * memory above 48 KiB is enabled per kernel on first use.
 */
public final class KernelLibrary implements AutoCloseable {
    private static final int DEFAULT_MAX_DYNAMIC_SHARED = 48 * 1024;

    private final CudaContext context;
    private final Map<String, CUmodule> modules = new HashMap<>();
    private final EnumMap<Kernel, NativeHandles.Function> functions = new EnumMap<>(Kernel.class);
    private final DriverLaunch driver;
    private final EnumMap<Kernel, Integer> sharedLimits = new EnumMap<>(Kernel.class);
    private boolean closed;

    private KernelLibrary(CudaContext context) {
        this.context = context;
        context.makeCurrent();
        for (Kernel k : Kernel.values()) {
            if (k.requiresHopper() && context.computeCapability() != 90) continue;
            CUmodule module = modules.computeIfAbsent(k.family(), this::loadFamily);
            NativeHandles.Function f = new NativeHandles.Function();
            int r = cuModuleGetFunction(f, module, k.symbol());
            if (r == CUresult.CUDA_ERROR_NOT_FOUND) {
                throw new IllegalStateException("kernel " + k.symbol() + " not found in " + k.family()
                        + ".fatbin; the kernels are out of date: rebuild with mvn package");
            }
            CudaException.check(r, "cuModuleGetFunction", k.symbol());
            functions.put(k, f);
        }
        driver = new DriverLaunch();
    }

    /** Loads every family and resolves every {@link Kernel}. */
    public static KernelLibrary load(CudaContext context) { return new KernelLibrary(context); }

    private CUmodule loadFamily(String family) {
        String resource = "/dev/wanlora/kernels/" + family + ".fatbin";
        byte[] image;
        try (InputStream in = KernelLibrary.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("kernels were not built: install the CUDA toolkit (nvcc) and rebuild with mvn package"
                        + " (missing resource " + resource.substring(1) + ")");
            }
            image = in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + resource, e);
        }
        CUmodule module = new CUmodule();
        int r = cuModuleLoadData(module, image);
        if (r == CUresult.CUDA_ERROR_NO_BINARY_FOR_GPU) {
            throw new IllegalStateException("kernels in " + family + ".fatbin have no code for " + context
                    + " (compute capability " + context.computeCapability() / 10 + "." + context.computeCapability() % 10
                    + "); wanlora supports compute capability 8.0 and newer");
        }
        CudaException.check(r, "cuModuleLoadData", family + ".fatbin on " + context);
        return module;
    }

    public CudaContext context() { return context; }

    /** Whether {@code kernel} was loaded (false only for an sm_90a-only kernel on another device). */
    public boolean has(Kernel kernel) { return functions.containsKey(kernel); }

    /** Launches {@code kernel} on the compute stream; see the class comment for the argument mapping. */
    public void launch(Kernel kernel, LaunchConfig config, Object... args) {
        context.makeCurrent();
        NativeHandles.Function f = functions.get(kernel);
        if (f == null) {
            throw new IllegalStateException("kernel " + kernel.symbol() + " is built for sm_90a only and " + context
                    + " is compute capability " + context.computeCapability() / 10 + "." + context.computeCapability() % 10);
        }
        if (config.sharedBytes() > DEFAULT_MAX_DYNAMIC_SHARED && sharedLimits.getOrDefault(kernel, 0) < config.sharedBytes()) {
            CudaException.check(cuFuncSetAttribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    config.sharedBytes()), "cuFuncSetAttribute", kernel.symbol() + " dynamic shared memory " + config.sharedBytes());
            sharedLimits.put(kernel, config.sharedBytes());
        }
        int r = driver.launch(f.address(), config, context.computeStreamAddress(), args);
        CudaException.check(r, "cuLaunchKernel", "kernel " + kernel.symbol() + " " + config);
        if (CudaContext.syncAfterEachLaunch()) {
            CudaException.check(cuStreamSynchronize(context.computeStream()), "cuStreamSynchronize",
                    "after kernel " + kernel.symbol() + " " + config + " (wan.cuda.syncAfterEachLaunch)");
        }
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        context.makeCurrent();
        for (CUmodule m : modules.values()) CudaException.check(cuModuleUnload(m), "cuModuleUnload");
        driver.close();
    }
}
