package dev.wanlora.engine.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Stream;

import static java.lang.foreign.ValueLayout.*;

/**
 * The handful of cuBLASLt functions wanlora calls, bound through Java's FFM API (DESIGN.md §3; JCublas links
 * libcublas.so.12 and cannot load where only CUDA 13 is installed). One binding serves CUDA 12 and 13: the
 * library is found by soname ({@code libcublasLt.so.13}, then {@code .so.12}; {@code cublasLt64_13.dll},
 * {@code cublasLt64_12.dll} on Windows) in this order:
 * <ol>
 * <li>an explicit folder: {@code -Dwanlora.cudaLibDir=DIR} (the CLI's {@code --cuda_lib_dir} sets it), else
 * {@code $WANLORA_CUDA_LIB_DIR};</li>
 * <li>the system loader's path ({@code LD_LIBRARY_PATH}, ldconfig; {@code PATH} on Windows);</li>
 * <li>{@code $CUDA_HOME}, {@code $CUDA_PATH}: {@code lib64}, {@code lib}, {@code targets/x86_64-linux/lib}, {@code bin}, {@code bin/x64};</li>
 * <li>{@code /usr/local/cuda*}: {@code lib64}, {@code targets/x86_64-linux/lib};</li>
 * <li>a pip-installed CUDA (PyTorch's wheels): {@code site-packages/nvidia/*}{@code /lib} under the active
 * virtualenv/conda prefix, {@code ~/.local/lib/python3*}, {@code /usr/lib/python3*}, {@code /usr/local/lib/python3*},
 * {@code /opt/conda} and {@code /opt/*}{@code /.venv}.</li>
 * </ol>
 * Enum values are those of the CUDA 12/13 headers (they did not change between the two).
 */
final class CublasLt implements AutoCloseable {
    static final int COMPUTE_32F = 68;
    static final int R_32F = 0, R_16F = 2, R_16BF = 14;
    static final int DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_EPILOGUE = 7, DESC_BIAS_POINTER = 8, DESC_BIAS_DATA_TYPE = 26;
    static final int EPILOGUE_DEFAULT = 1, EPILOGUE_BIAS = 4;
    static final int PREF_MAX_WORKSPACE_BYTES = 1;
    static final int PREF_MIN_ALIGNMENT_A = 5, PREF_MIN_ALIGNMENT_B = 6, PREF_MIN_ALIGNMENT_C = 7, PREF_MIN_ALIGNMENT_D = 8;
    static final int OP_N = 0, OP_T = 1;
    /** cublasLtMatmulAlgoConfigAttributes_t: ID int32, TILE_ID, SPLITK_NUM and STAGES_ID uint32. */
    static final int ALGO_CONFIG_ID = 0, ALGO_CONFIG_TILE_ID = 1, ALGO_CONFIG_SPLITK_NUM = 2, ALGO_CONFIG_STAGES_ID = 6;
    /** sizeof(cublasLtMatmulHeuristicResult_t): algo 64, workspaceSize 8, state 4, wavesCount 4, reserved 16. */
    static final long HEURISTIC_RESULT_BYTES = 96, ALGO_BYTES = 64;

    private static final List<String> LINUX_NAMES = List.of("libcublasLt.so.13", "libcublasLt.so.12");
    private static final List<String> WINDOWS_NAMES = List.of("cublasLt64_13.dll", "cublasLt64_12.dll");

    private final Arena arena = Arena.ofShared();
    private final String location;
    private final MethodHandle getVersion, create, destroy, descCreate, descSet, layoutCreate, prefCreate, prefSet,
            heuristic, matmul, algoCheck, algoConfigGet;
    private final MemorySegment handle;
    private final MemorySegment out = arena.allocate(ADDRESS);
    private boolean closed;

    private CublasLt(SymbolLookup lib, String location) {
        this.location = location;
        Linker linker = Linker.nativeLinker();
        getVersion = bind(linker, lib, "cublasLtGetVersion", FunctionDescriptor.of(JAVA_LONG));
        create = bind(linker, lib, "cublasLtCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        destroy = bind(linker, lib, "cublasLtDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        descCreate = bind(linker, lib, "cublasLtMatmulDescCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        descSet = bind(linker, lib, "cublasLtMatmulDescSetAttribute", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
        layoutCreate = bind(linker, lib, "cublasLtMatrixLayoutCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
        prefCreate = bind(linker, lib, "cublasLtMatmulPreferenceCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        prefSet = bind(linker, lib, "cublasLtMatmulPreferenceSetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
        heuristic = bind(linker, lib, "cublasLtMatmulAlgoGetHeuristic", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
        matmul = bind(linker, lib, "cublasLtMatmul", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
        algoCheck = bind(linker, lib, "cublasLtMatmulAlgoCheck", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        algoConfigGet = bind(linker, lib, "cublasLtMatmulAlgoConfigGetAttribute", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS));
        try {
            check((int) create.invokeExact(out), "cublasLtCreate");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cublasLtCreate", t);
        }
        handle = out.get(ADDRESS, 0);
    }

    /** Finds and binds cuBLASLt (see the class comment for where it looks) and creates a handle in the current context. */
    static CublasLt load() {
        Arena libArena = Arena.global(); // a loaded library stays loaded for the life of the process
        List<String> names = isWindows() ? WINDOWS_NAMES : LINUX_NAMES;
        List<Path> dirs = new ArrayList<>();
        String explicit = System.getProperty("wanlora.cudaLibDir", System.getenv("WANLORA_CUDA_LIB_DIR"));
        if (explicit != null && !explicit.isBlank()) {
            Path dir = Path.of(explicit);
            for (String n : names) {
                if (Files.isRegularFile(dir.resolve(n))) return new CublasLt(SymbolLookup.libraryLookup(dir.resolve(n), libArena), dir.resolve(n).toString());
            }
            throw new IllegalStateException("cuBLASLt not found in the CUDA library folder " + dir + " (from --cuda_lib_dir / "
                    + "WANLORA_CUDA_LIB_DIR / -Dwanlora.cudaLibDir); expected one of " + names + " there");
        }
        for (String n : names) {
            try {
                return new CublasLt(SymbolLookup.libraryLookup(n, libArena), n + " (system loader path)");
            } catch (IllegalArgumentException notOnLoaderPath) {
                // not on the loader path: search the usual install folders below
            }
        }
        dirs.addAll(candidateDirs());
        for (String n : names) {
            for (Path d : dirs) {
                Path f = d.resolve(n);
                if (Files.isRegularFile(f)) return new CublasLt(SymbolLookup.libraryLookup(f, libArena), f.toString());
            }
        }
        throw new IllegalStateException("cuBLASLt (" + String.join(" or ", names) + ") not found on the loader path or in "
                + dirs.stream().map(Path::toString).distinct().toList()
                + "; install the CUDA toolkit 12 or 13 (or the nvidia-cublas pip wheel) or pass --cuda_lib_dir DIR (the folder holding "
                + names.getFirst() + ")");
    }

    private static boolean isWindows() { return System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("windows"); }

    private static List<Path> candidateDirs() {
        Set<Path> dirs = new LinkedHashSet<>();
        for (String env : new String[] {"CUDA_HOME", "CUDA_PATH"}) {
            String v = System.getenv(env);
            if (v == null || v.isBlank()) continue;
            Path h = Path.of(v);
            for (String sub : new String[] {"lib64", "lib", "targets/x86_64-linux/lib", "bin", "bin/x64"}) dirs.add(h.resolve(sub));
        }
        for (Path cuda : list(Path.of("/usr/local"), "cuda*")) {
            dirs.add(cuda.resolve("lib64"));
            dirs.add(cuda.resolve("targets/x86_64-linux/lib"));
        }
        List<Path> sitePackages = new ArrayList<>();
        for (String env : new String[] {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
            String v = System.getenv(env);
            if (v != null && !v.isBlank()) {
                for (Path py : list(Path.of(v, "lib"), "python3*")) sitePackages.add(py.resolve("site-packages"));
                sitePackages.add(Path.of(v, "Lib", "site-packages"));
            }
        }
        Path home = Path.of(System.getProperty("user.home", "/"));
        for (Path py : list(home.resolve(".local/lib"), "python3*")) sitePackages.add(py.resolve("site-packages"));
        for (String base : new String[] {"/usr/lib", "/usr/local/lib", "/opt/conda/lib"}) {
            for (Path py : list(Path.of(base), "python3*")) {
                sitePackages.add(py.resolve("dist-packages"));
                sitePackages.add(py.resolve("site-packages"));
            }
        }
        for (Path opt : list(Path.of("/opt"), "*")) {
            for (Path py : list(opt.resolve(".venv/lib"), "python3*")) sitePackages.add(py.resolve("site-packages"));
        }
        for (Path sp : sitePackages) {
            for (Path pkg : list(sp.resolve("nvidia"), "*")) {
                dirs.add(pkg.resolve("lib"));
                dirs.add(pkg.resolve("bin"));
            }
        }
        return new ArrayList<>(dirs);
    }

    /** Entries of {@code dir} matching {@code glob}, sorted descending (newest CUDA/Python first); empty if dir is absent. */
    private static List<Path> list(Path dir, String glob) {
        if (!Files.isDirectory(dir)) return List.of();
        try (Stream<Path> s = Files.list(dir)) {
            var matcher = dir.getFileSystem().getPathMatcher("glob:" + glob);
            return s.filter(p -> matcher.matches(p.getFileName())).sorted((a, b) -> b.compareTo(a)).toList();
        } catch (java.io.IOException e) {
            return List.of();
        }
    }

    private static MethodHandle bind(Linker linker, SymbolLookup lib, String name, FunctionDescriptor fd) {
        MemorySegment symbol = lib.find(name).orElseThrow(() -> new IllegalStateException(
                "cuBLASLt: symbol " + name + " missing from the loaded library; install CUDA 12 or 13's cuBLASLt"));
        return linker.downcallHandle(symbol, fd);
    }

    /** Where the library was found (for the startup report). */
    String location() { return location; }

    /** cublasLtGetVersion(), e.g. 130100. */
    long version() {
        try {
            return (long) getVersion.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtGetVersion");
        }
    }

    /** An arena that lives as long as this binding (descriptors, layouts, algorithms). */
    Arena arena() { return arena; }

    MemorySegment matmulDescCreate(int computeType, int scaleType) {
        try {
            check((int) descCreate.invokeExact(out, computeType, scaleType), "cublasLtMatmulDescCreate");
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulDescCreate");
        }
        return out.get(ADDRESS, 0);
    }

    void matmulDescSet(MemorySegment desc, int attribute, MemorySegment value) {
        try {
            check((int) descSet.invokeExact(desc, attribute, value, value.byteSize()), "cublasLtMatmulDescSetAttribute(" + attribute + ")");
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulDescSetAttribute");
        }
    }

    /** {@link #matmulDescSet} of one int attribute (transposes, epilogue, data types). */
    void matmulDescSetInt(MemorySegment desc, int attribute, int value) {
        MemorySegment v = arena.allocate(JAVA_INT);
        v.set(JAVA_INT, 0, value);
        matmulDescSet(desc, attribute, v);
    }

    MemorySegment matrixLayoutCreate(int dataType, long rows, long cols, long ld) {
        try {
            check((int) layoutCreate.invokeExact(out, dataType, rows, cols, ld), "cublasLtMatrixLayoutCreate");
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatrixLayoutCreate");
        }
        return out.get(ADDRESS, 0);
    }

    MemorySegment preferenceCreate() {
        try {
            check((int) prefCreate.invokeExact(out), "cublasLtMatmulPreferenceCreate");
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulPreferenceCreate");
        }
        return out.get(ADDRESS, 0);
    }

    void preferenceSet(MemorySegment pref, int attribute, MemorySegment value) {
        try {
            check((int) prefSet.invokeExact(pref, attribute, value, value.byteSize()), "cublasLtMatmulPreferenceSetAttribute(" + attribute + ")");
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulPreferenceSetAttribute");
        }
    }

    /** {@link #preferenceSet} of one int attribute (the operands' minimum alignments). */
    void preferenceSetInt(MemorySegment pref, int attribute, int value) {
        MemorySegment v = arena.allocate(JAVA_INT);
        v.set(JAVA_INT, 0, value);
        preferenceSet(pref, attribute, v);
    }

    /** Candidate {@code i}'s algorithm (its first {@link #ALGO_BYTES}) in {@link #algoGetHeuristic}'s results. */
    static MemorySegment heuristicAlgo(MemorySegment results, int i) {
        return results.asSlice(i * HEURISTIC_RESULT_BYTES, ALGO_BYTES);
    }

    /**
     * Whether cuBLASLt accepts {@code algo} for this problem (D laid out as C) within {@code maxWorkspaceBytes}: a stale
     * or foreign {@link GemmAlgorithmCache} entry is not.
     */
    boolean isUsable(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c, byte[] algo,
                     long maxWorkspaceBytes) {
        try (Arena local = Arena.ofConfined()) {
            MemorySegment candidate = local.allocate(ALGO_BYTES, 8).copyFrom(MemorySegment.ofArray(algo));
            MemorySegment result = local.allocate(HEURISTIC_RESULT_BYTES, 8);
            return algoCheck(desc, a, b, c, c, candidate, result) == 0 && result.get(JAVA_LONG, ALGO_BYTES) <= maxWorkspaceBytes;
        }
    }

    /** Fills {@code results} (n × 96 bytes) with up to n algorithms; returns how many were found. */
    int algoGetHeuristic(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c, MemorySegment d,
                         MemorySegment pref, int n, MemorySegment results) {
        MemorySegment count = arena.allocate(JAVA_INT);
        try {
            check((int) heuristic.invokeExact(handle, desc, a, b, c, d, pref, n, results, count), "cublasLtMatmulAlgoGetHeuristic");
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulAlgoGetHeuristic");
        }
        return count.get(JAVA_INT, 0);
    }

    /**
     * cublasLtMatmulAlgoCheck: whether {@code algo} (64 bytes, e.g. read back from {@link GemmAlgorithmCache}) runs
     * this problem; fills {@code result} (96 bytes: its workspaceSize at offset 64). Returns the status, 0 when it does.
     */
    int algoCheck(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c, MemorySegment d, MemorySegment algo,
                  MemorySegment result) {
        try {
            return (int) algoCheck.invokeExact(handle, desc, a, b, c, d, algo, result);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulAlgoCheck");
        }
    }

    /** A 4-byte attribute of an algorithm (ALGO_CONFIG_*), for reports. */
    int algoConfig(MemorySegment algo, int attribute) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment value = a.allocate(JAVA_INT), written = a.allocate(JAVA_LONG);
            check((int) algoConfigGet.invokeExact(algo, attribute, value, 4L, written), "cublasLtMatmulAlgoConfigGetAttribute(" + attribute + ")");
            return value.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulAlgoConfigGetAttribute");
        }
    }

    /** cublasLtMatmul on {@code stream}; device pointers are raw addresses, alpha/beta host segments of the scale type. */
    int matmul(MemorySegment desc, MemorySegment alpha, long a, MemorySegment aLayout, long b, MemorySegment bLayout,
               MemorySegment beta, long c, MemorySegment cLayout, long d, MemorySegment dLayout, MemorySegment algo,
               long workspace, long workspaceBytes, long stream) {
        try {
            return (int) matmul.invokeExact(handle, desc, alpha, MemorySegment.ofAddress(a), aLayout, MemorySegment.ofAddress(b),
                    bLayout, beta, MemorySegment.ofAddress(c), cLayout, MemorySegment.ofAddress(d), dLayout, algo,
                    MemorySegment.ofAddress(workspace), workspaceBytes, MemorySegment.ofAddress(stream));
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmul");
        }
    }

    static void check(int status, String call) {
        if (status != 0) throw new CudaException(call, status, statusName(status), null);
    }

    static String statusName(int status) {
        return switch (status) {
            case 0 -> "CUBLAS_STATUS_SUCCESS";
            case 1 -> "CUBLAS_STATUS_NOT_INITIALIZED";
            case 3 -> "CUBLAS_STATUS_ALLOC_FAILED";
            case 7 -> "CUBLAS_STATUS_INVALID_VALUE";
            case 8 -> "CUBLAS_STATUS_ARCH_MISMATCH";
            case 11 -> "CUBLAS_STATUS_MAPPING_ERROR";
            case 13 -> "CUBLAS_STATUS_EXECUTION_FAILED";
            case 14 -> "CUBLAS_STATUS_INTERNAL_ERROR";
            case 15 -> "CUBLAS_STATUS_NOT_SUPPORTED";
            case 16 -> "CUBLAS_STATUS_LICENSE_ERROR";
            default -> "CUBLAS_STATUS_" + status;
        };
    }

    private static RuntimeException rethrow(Throwable t, String call) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(call + ": " + t, t);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        try {
            check((int) destroy.invokeExact(handle), "cublasLtDestroy");
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtDestroy");
        }
        arena.close();
    }
}
