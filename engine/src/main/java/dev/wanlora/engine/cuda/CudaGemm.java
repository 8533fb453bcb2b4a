package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.GemmOps;
import dev.wanlora.engine.backend.OpChecks.GemmDims;
import dev.wanlora.engine.backend.OpChecks.MatrixDims;
import dev.wanlora.engine.tensor.DType;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static java.lang.foreign.ValueLayout.*;

/**
 * {@code Backend.gemm} through cuBLASLt: c = alpha·op(a)·op(b) + beta·c (+ bias), fp32 accumulation (compute type
 * CUBLAS_COMPUTE_32F, so f32×f32 is true fp32, not TF32).
 *
 * <p><b>Layout.</b> Our tensors are row-major; cuBLASLt is column-major. A row-major (M, N) matrix is the
 * column-major (N, M) matrix cᵀ, so we ask cuBLASLt for cᵀ = op(b)ᵀ·op(a)ᵀ: its "A" operand is b's storage (a
 * column-major (cols_b, rows_b) matrix, transposed iff transB), its "B" operand is a's storage (transposed iff
 * transA), m = N, n = M, k = K. The bias epilogue adds a vector along cᵀ's rows, i.e. along c's columns (length N).
 *
 * <p><b>Plans.</b> Descriptors, layouts and the heuristic's algorithm are made once per {@link Key} (shapes,
 * transposes, dtypes, bias, pointer alignments) and cached; a call after warm-up only sets the bias pointer and
 * launches. The workspace is one 32 MiB device buffer (cuBLAS's recommendation for Hopper), shared by all plans
 * because every GEMM runs on the one compute stream.
 *
 * <p><b>Algorithm choice.</b> cuBLASLt's heuristic ranks its algorithms by a model, and its first is not always the
 * fastest (ffn.0's forward at 32760 rows ran at 81 % of the card's rate). So for each new key the top
 * {@value #CANDIDATES} candidates are timed once, on the first call's own operands, and the fastest is kept for the
 * rest of the run and stored in {@link GemmAlgorithmCache} (keyed by GPU, driver, cuBLASLt version and the key), so
 * a later run — a {@code --resume} — on the same machine uses the same algorithm without timing. The choice is fixed
 * per key for the whole run, so results stay deterministic step to step. {@code WANLORA_GEMM_TUNE=off} (or
 * {@code -Dwanlora.gemmTune=off}) takes the heuristic's first, as before. {@link #report()} says which ran.
 *
 * <p>cuBLASLt takes a, b both BF16 with c BF16 or F32; a, b both F16 with c F16 or F32; a, b, c F32; bias of c's
 * dtype or F32. When a and b differ (F32 and BF16, as in Wan's fp32 time embedding with bf16 weights) the product
 * runs in our {@code gemm_mixed} kernel instead: exact widening of the bf16 operand, fp32 accumulation, one warp
 * per output element — meant for few-row problems like that one.
 */
final class CudaGemm implements GemmOps.Kernels<CudaTensor>, AutoCloseable {
    static final long WORKSPACE_BYTES = 32L << 20;
    /** Heuristic candidates timed per key. */
    static final int CANDIDATES = 8;
    /** Largest accumulating (beta ≠ 0) output timed through a temporary buffer; larger ones keep the first candidate. */
    static final long TIMING_SCRATCH_LIMIT_BYTES = 16L << 20;
    /**
     * Another candidate replaces the heuristic's first only when ≥ 2 % faster: repeated timings of one algorithm in
     * one process differ by ~1 %, so a smaller gain is noise and would make the choice flip from machine to machine.
     */
    static final double KEEP_FIRST_MARGIN = 0.02;
    static final boolean IS_TUNING = !isOff(System.getProperty("wanlora.gemmTune", System.getenv("WANLORA_GEMM_TUNE")));

    /** How a key's algorithm was chosen. */
    enum Source { TIMED, CACHED, ONLY_ONE, NOT_TIMED, OPT_OUT }

    /**
     * A key's algorithm: how it was chosen, its rank among the heuristic's candidates (-1: cached, not among this
     * run's candidates), the time of it and of the heuristic's first (µs; NaN unless timed now), cuBLASLt's numbers.
     */
    record Choice(Key key, Source source, int rank, int candidates, double micros, double firstMicros, String algorithm) {}

    /** Everything a cuBLASLt plan depends on. Alignments are the pointers' power-of-two alignment, capped at 256. */
    record Key(long m, long n, long k, boolean transA, boolean transB, DType a, DType b, DType c, DType bias,
               int alignA, int alignB, int alignC, int alignBias) {}

    /** A cached plan: descriptor, the three layouts (C and D share one), the chosen algorithm and its call count. */
    record Plan(MemorySegment desc, MemorySegment layoutA, MemorySegment layoutB, MemorySegment layoutC, MemorySegment algo,
                long[] calls) {}

    private final CudaContext context;
    private final Launcher launcher;
    private final CublasLt lt;
    private final DeviceBuffer workspace;
    private final Map<Key, Plan> plans = new HashMap<>();
    private final Map<Key, Choice> choices = new LinkedHashMap<>();
    private final MemorySegment alpha, beta, biasPointer;
    private final GemmAlgorithmCache cache;
    /** GPU, driver and cuBLASLt version: the machine part of every {@link GemmAlgorithmCache} key. */
    private final String machineKey;
    private final AlgorithmTimer timer;
    /** The fp8 compute path (--fp8_compute), sharing this class's cuBLASLt handle and workspace. */
    private final CudaFp8Gemm fp8;

    CudaGemm(CudaContext context, Launcher launcher) {
        this.context = context;
        this.launcher = launcher;
        context.makeCurrent();
        this.lt = CublasLt.load();
        this.workspace = DeviceBuffer.allocate(context, WORKSPACE_BYTES, "cuBLASLt workspace");
        this.alpha = lt.arena().allocate(JAVA_FLOAT);
        this.beta = lt.arena().allocate(JAVA_FLOAT);
        this.biasPointer = lt.arena().allocate(JAVA_LONG);
        this.cache = IS_TUNING ? GemmAlgorithmCache.at(GemmAlgorithmCache.defaultFile()) : null;
        int[] version = new int[1];
        CudaException.check(jcuda.driver.JCudaDriver.cuDriverGetVersion(version), "cuDriverGetVersion");
        this.machineKey = context.deviceName() + "|driver " + version[0] + "|cublasLt " + lt.version();
        this.timer = new AlgorithmTimer(context);
        this.fp8 = new CudaFp8Gemm(context, launcher, lt, workspace, cache, machineKey, timer);
    }

    private static boolean isOff(String v) {
        return v != null && (v.equalsIgnoreCase("off") || v.equals("0") || v.equalsIgnoreCase("false") || v.equalsIgnoreCase("no"));
    }

    /**
     * One line per key so far, largest work first: "m3744 n5120 k5120 NT BF16->BF16: timed #2 of 8, 410.2 µs (#0:
     * 432.9 µs), 80 calls, algo 66 tile 0 stages 0 splitK 1".
     */
    List<String> report() {
        List<Choice> all = new ArrayList<>(choices.values());
        all.sort((x, y) -> Double.compare(work(y.key()), work(x.key())));
        List<String> lines = new ArrayList<>();
        for (Choice c : all) {
            Key k = c.key();
            String how = switch (c.source()) {
                case TIMED -> String.format(Locale.ROOT, "timed #%d of %d, %.1f us (#0: %.1f us)", c.rank(), c.candidates(),
                        c.micros(), c.firstMicros());
                case CACHED -> "from the cache" + (c.rank() >= 0 ? ", heuristic's #" + c.rank() + " of " + c.candidates() : "");
                case ONLY_ONE -> "the heuristic's only candidate";
                case NOT_TIMED -> "heuristic's first (accumulating output over 16 MiB, not timed)";
                case OPT_OUT -> "heuristic's first (WANLORA_GEMM_TUNE=off)";
            };
            lines.add(String.format(Locale.ROOT, "m%d n%d k%d %s%s %s->%s%s: %s, %d calls, %s", k.m(), k.n(), k.k(),
                    k.transA() ? "T" : "N", k.transB() ? "T" : "N", k.a(), k.c(), k.bias() == null ? "" : " +bias", how,
                    plans.get(k).calls()[0], c.algorithm()));
        }
        return lines;
    }

    /** "GEMM algorithms: 8 heuristic candidates timed per shape, cached in FILE" or the opt-out. */
    String tuningSummary() {
        return IS_TUNING ? "GEMM algorithms: cuBLASLt's top " + CANDIDATES + " heuristics timed once per shape, the fastest kept"
                + " (cache " + cache.file() + "; WANLORA_GEMM_TUNE=off keeps the heuristic's first)"
                : "GEMM algorithms: the heuristic's first (WANLORA_GEMM_TUNE=off)";
    }

    private static double work(Key k) { return (double) k.m() * k.n() * k.k(); }

    /** "cuBLASLt 130100 (/usr/local/cuda/targets/x86_64-linux/lib/libcublasLt.so.13)". */
    String describe() { return "cuBLASLt " + lt.version() + " (" + lt.location() + ")"; }

    @Override
    public void gemm(CudaTensor c, CudaTensor a, boolean transA, CudaTensor b, boolean transB, float alpha, float beta,
                     CudaTensor bias, GemmDims dims) {
        gemm(c, a, transA, b, transB, alpha, beta, bias);
    }

    @Override
    public void dequantizeFp8(CudaTensor out, CudaTensor wq, CudaTensor scale, MatrixDims dims) {
        long n = out.numElements();
        if (n > 0) {
            launcher.launch(Launcher.kernel("dequantizeFp8", "dequantize_fp8_fwd", scale.dtype(), out.dtype()), launcher.cover((n + 7) / 8), out,
                    wq, scale, n);
        }
    }

    /** One thread per 8 elements (see quantize_fp8.cu); the checks have made sure I % 64 == 0. */
    @Override
    public void quantizeFp8(CudaTensor codes, CudaTensor scale, CudaTensor w, MatrixDims dims) {
        long n = w.numElements();
        if (w.address() % 16 != 0 || codes.address() % 8 != 0) {
            throw new UnsupportedOperationException("quantizeFp8 (cuda): w must be 16-byte and codes 8-byte aligned; got "
                    + w + ", " + codes + "; supported: tensors at the start of an allocation or at 64-element offsets");
        }
        if (n > 0) launcher.launch(Launcher.kernel("quantizeFp8", "quantize_fp8_fwd", w.dtype()), launcher.cover((n + 7) / 8), codes, scale, w, n);
    }

    @Override
    public void quantizeFp8Tensor(CudaTensor codes, CudaTensor scale, CudaTensor x, MatrixDims dims) {
        fp8.quantizeTensor(codes, scale, x);
    }

    @Override
    public void dequantizeFp8Tensor(CudaTensor out, CudaTensor codes, CudaTensor scale, MatrixDims dims) {
        fp8.dequantizeTensor(out, codes, scale);
    }

    @Override
    public void gemmFp8(CudaTensor y, CudaTensor xCodes, CudaTensor xScale, CudaTensor wCodes, CudaTensor wScale,
                        CudaTensor bias, GemmDims dims) {
        fp8.gemm(y, xCodes, xScale, wCodes, wScale, bias, dims);
    }

    void gemm(CudaTensor c, CudaTensor a, boolean transA, CudaTensor b, boolean transB, float alphaValue, float betaValue,
              CudaTensor bias) {
        long aRows = a.shape().rows(), aCols = a.shape().cols(), bRows = b.shape().rows(), bCols = b.shape().cols();
        long m = transA ? aCols : aRows, k = transA ? aRows : aCols;
        long kb = transB ? bCols : bRows, n = transB ? bRows : bCols;
        if (k != kb || c.shape().rows() != m || c.shape().cols() != n || (bias != null && bias.numElements() != n)) {
            throw new IllegalArgumentException("gemm: shapes do not chain; got op(a)=(" + m + "," + k + ") from a=" + a.shape()
                    + (transA ? "ᵀ" : "") + ", op(b)=(" + kb + "," + n + ") from b=" + b.shape() + (transB ? "ᵀ" : "") + ", c="
                    + c.shape() + (bias == null ? "" : ", bias=" + bias.shape()) + ", expected op(a) (M,K), op(b) (K,N), c (M,N), bias (N)");
        }
        if (a.dtype() != b.dtype() && isActivation(a.dtype()) && isActivation(b.dtype()) && isActivation(c.dtype())
                && (bias == null || isActivation(bias.dtype()))) {
            mixed(c, a, transA, b, transB, alphaValue, betaValue, bias, m, n, k);
            return;
        }
        if (!supported(a.dtype(), b.dtype(), c.dtype()) || (bias != null && bias.dtype() != c.dtype() && bias.dtype() != DType.F32)) {
            throw new UnsupportedOperationException("gemm (cuda): no cuBLASLt path for a=" + a.dtype() + ", b=" + b.dtype()
                    + ", c=" + c.dtype() + (bias == null ? "" : ", bias=" + bias.dtype())
                    + "; supported: (BF16,BF16)->BF16|F32, (F16,F16)->F16|F32, (F32,F32)->F32, bias of c's dtype or F32;"
                    + " (F32,BF16) and (BF16,F32) -> F32|BF16 with any F32/BF16 bias");
        }
        if (m == 0 || n == 0) return;
        if (k == 0) throw new IllegalArgumentException("gemm: inner dimension K is 0; got a=" + a.shape() + ", b=" + b.shape());
        Key key = new Key(m, n, k, transA, transB, a.dtype(), b.dtype(), c.dtype(), bias == null ? null : bias.dtype(),
                alignment(a.address()), alignment(b.address()), alignment(c.address()), bias == null ? 0 : alignment(bias.address()));
        Plan plan = plans.get(key);
        if (plan == null) {
            plan = plan(key, new Operands(a.address(), b.address(), c.address(), bias == null ? 0 : bias.address(),
                    alphaValue, betaValue, c.sizeBytes()));
            plans.put(key, plan);
        }
        plan.calls()[0]++;
        if (bias != null) {
            biasPointer.set(JAVA_LONG, 0, bias.address());
            lt.matmulDescSet(plan.desc(), CublasLt.DESC_BIAS_POINTER, biasPointer);
        }
        alpha.set(JAVA_FLOAT, 0, alphaValue);
        beta.set(JAVA_FLOAT, 0, betaValue);
        context.makeCurrent();
        // cuBLASLt's A is b's storage, its B is a's storage (see the class comment).
        int status = lt.matmul(plan.desc(), alpha, b.address(), plan.layoutA(), a.address(), plan.layoutB(), beta,
                c.address(), plan.layoutC(), c.address(), plan.layoutC(), plan.algo(), workspace.address(), WORKSPACE_BYTES,
                context.computeStreamAddress());
        if (status != 0) {
            throw new CudaException("cublasLtMatmul", status, CublasLt.statusName(status), "gemm " + key);
        }
        if (CudaContext.syncAfterEachLaunch()) context.synchronize();
    }

    private static boolean isActivation(DType t) { return t == DType.F32 || t == DType.BF16; }

    /** c = alpha·op(a)·op(b) + beta·c (+ bias) for a, b of different dtypes (gemm_mixed.cu). */
    private void mixed(CudaTensor c, CudaTensor a, boolean transA, CudaTensor b, boolean transB, float alpha, float beta,
                       CudaTensor bias, long m, long n, long k) {
        if (m == 0 || n == 0) return;
        Kernel kernel = Launcher.kernel("gemm", "gemm_mixed_fwd", a.dtype(), b.dtype(), c.dtype());
        launcher.launch(kernel, launcher.cover(Math.multiplyExact(m * n, 32L)), c, a, b, bias, Launcher.paramType(bias),
                m, n, k, transA ? 1 : 0, transB ? 1 : 0, alpha, beta);
    }

    private static boolean supported(DType a, DType b, DType c) {
        if (a != b) return false;
        return switch (a) {
            case BF16, F16 -> c == a || c == DType.F32;
            case F32 -> c == DType.F32;
            default -> false;
        };
    }

    /** The largest power of two (at most 256) dividing {@code address}: cuBLASLt's minimum-alignment preference. */
    static int alignment(long address) {
        return (int) Math.min(256, address == 0 ? 256 : Long.lowestOneBit(address));
    }

    private static int cudaType(DType t) {
        return switch (t) {
            case F32 -> CublasLt.R_32F;
            case BF16 -> CublasLt.R_16BF;
            case F16 -> CublasLt.R_16F;
            default -> throw new IllegalStateException("no cuBLASLt type for " + t);
        };
    }

    private Plan plan(Key key, Operands operands) {
        var arena = lt.arena();
        MemorySegment desc = lt.matmulDescCreate(CublasLt.COMPUTE_32F, CublasLt.R_32F);
        lt.matmulDescSetInt(desc, CublasLt.DESC_TRANSA, key.transB() ? CublasLt.OP_T : CublasLt.OP_N);
        lt.matmulDescSetInt(desc, CublasLt.DESC_TRANSB, key.transA() ? CublasLt.OP_T : CublasLt.OP_N);
        if (key.bias() != null) {
            lt.matmulDescSetInt(desc, CublasLt.DESC_EPILOGUE, CublasLt.EPILOGUE_BIAS);
            lt.matmulDescSetInt(desc, CublasLt.DESC_BIAS_DATA_TYPE, cudaType(key.bias()));
            biasPointer.set(JAVA_LONG, 0, operands.bias());
            lt.matmulDescSet(desc, CublasLt.DESC_BIAS_POINTER, biasPointer); // the timing runs below need it
        }
        // Column-major storage shapes: b's storage is (cols_b, rows_b), a's is (cols_a, rows_a), c's is (N, M).
        long bStoredRows = key.transB() ? key.k() : key.n(), bStoredCols = key.transB() ? key.n() : key.k();
        long aStoredRows = key.transA() ? key.m() : key.k(), aStoredCols = key.transA() ? key.k() : key.m();
        MemorySegment layoutA = lt.matrixLayoutCreate(cudaType(key.b()), bStoredRows, bStoredCols, bStoredRows);
        MemorySegment layoutB = lt.matrixLayoutCreate(cudaType(key.a()), aStoredRows, aStoredCols, aStoredRows);
        MemorySegment layoutC = lt.matrixLayoutCreate(cudaType(key.c()), key.n(), key.m(), key.n());
        MemorySegment pref = lt.preferenceCreate();
        MemorySegment lv = arena.allocate(JAVA_LONG);
        lv.set(JAVA_LONG, 0, WORKSPACE_BYTES);
        lt.preferenceSet(pref, CublasLt.PREF_MAX_WORKSPACE_BYTES, lv);
        lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_A, key.alignB());
        lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_B, key.alignA());
        lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_C, key.alignC());
        lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_D, key.alignC());
        int requested = IS_TUNING ? CANDIDATES : 1;
        MemorySegment results = arena.allocate(CublasLt.HEURISTIC_RESULT_BYTES * requested, 8);
        int found = lt.algoGetHeuristic(desc, layoutA, layoutB, layoutC, layoutC, pref, requested, results);
        if (found == 0) {
            throw new UnsupportedOperationException("gemm (cuda): cuBLASLt has no algorithm for " + key
                    + " on " + context + "; supported: (BF16,BF16)->BF16|F32, (F16,F16)->F16|F32, (F32,F32)->F32 with 16-byte aligned rows");
        }
        Plan plan = new Plan(desc, layoutA, layoutB, layoutC, arena.allocate(CublasLt.ALGO_BYTES, 8), new long[1]);
        Choice choice = choose(key, plan, results, found, operands);
        choices.put(key, choice);
        return plan;
    }

    /** The operands of the call that first met a plan's key: tuning times the candidates on them. */
    private record Operands(long a, long b, long c, long bias, float alpha, float beta, long cBytes) {}

    /**
     * Fills {@code plan.algo()} with the algorithm this run uses for {@code key}: the cached one if the cache holds
     * one cuBLASLt accepts, else the fastest of the heuristic's candidates timed on the call's own operands (kept
     * only when ≥ 2 % faster than the heuristic's first, so timing noise does not pick), then cached.
     *
     * <p>Timing writes D: with beta = 0 into c itself (c is disjoint from a, b and bias — CudaBackend checks — and the
     * real call that follows overwrites it); with beta ≠ 0 c must survive, so D is a temporary buffer when c is at
     * most {@value #TIMING_SCRATCH_LIMIT_BYTES} bytes (the LoRA gradients), and the first candidate runs untimed
     * otherwise. This happens once per key, in the first step; the steps after it allocate nothing.
     */
    private Choice choose(Key key, Plan plan, MemorySegment results, int found, Operands o) {
        MemorySegment algo = plan.algo();
        if (!IS_TUNING) {
            algo.copyFrom(CublasLt.heuristicAlgo(results, 0));
            return new Choice(key, Source.OPT_OUT, 0, found, Double.NaN, Double.NaN, describeAlgo(algo));
        }
        String cacheKey = cacheKey(key);
        GemmAlgorithmCache.Entry cached = cache.get(cacheKey);
        if (cached != null && lt.isUsable(plan.desc(), plan.layoutA(), plan.layoutB(), plan.layoutC(), cached.algo(),
                WORKSPACE_BYTES)) {
            algo.copyFrom(MemorySegment.ofArray(cached.algo()));
            return new Choice(key, Source.CACHED, rankOf(results, found, cached.algo()), found, Double.NaN, Double.NaN,
                    describeAlgo(algo) + " (" + cached.note() + ")");
        }
        if (found == 1) {
            algo.copyFrom(CublasLt.heuristicAlgo(results, 0));
            cache.put(cacheKey, algo.toArray(JAVA_BYTE), "heuristic's only candidate");
            return new Choice(key, Source.ONLY_ONE, 0, 1, Double.NaN, Double.NaN, describeAlgo(algo));
        }
        DeviceBuffer scratch = null;
        long d = o.c();
        if (o.beta() != 0) {
            if (o.cBytes() > TIMING_SCRATCH_LIMIT_BYTES) {
                algo.copyFrom(CublasLt.heuristicAlgo(results, 0));
                cache.put(cacheKey, algo.toArray(JAVA_BYTE), "heuristic's first; accumulating output too large to time");
                return new Choice(key, Source.NOT_TIMED, 0, found, Double.NaN, Double.NaN, describeAlgo(algo));
            }
            scratch = DeviceBuffer.allocate(context, o.cBytes(), "GEMM timing output");
            d = scratch.address();
        }
        double[] micros = new double[found];
        long output = d;
        try {
            for (int i = 0; i < found; i++) {
                long workspaceBytes = results.get(JAVA_LONG, i * CublasLt.HEURISTIC_RESULT_BYTES + CublasLt.ALGO_BYTES);
                MemorySegment candidate = CublasLt.heuristicAlgo(results, i);
                micros[i] = workspaceBytes > WORKSPACE_BYTES ? Double.NaN : timer.micros(() -> run(plan, candidate, o, output));
            }
        } finally {
            if (scratch != null) scratch.close();
        }
        int chosen = pick(micros);
        algo.copyFrom(CublasLt.heuristicAlgo(results, chosen));
        String note = String.format(Locale.ROOT, "timed: #%d of %d, %.1f us (#0: %.1f us)", chosen, found, micros[chosen], micros[0]);
        cache.put(cacheKey, algo.toArray(JAVA_BYTE), note);
        return new Choice(key, Source.TIMED, chosen, found, micros[chosen], micros[0], describeAlgo(algo));
    }

    /**
     * The candidate to keep from their timings (NaN: refused): the fastest, unless the heuristic's first ran and the
     * fastest is less than {@link #KEEP_FIRST_MARGIN} faster than it; the first when none ran (the call then reports
     * cuBLASLt's own error).
     */
    static int pick(double[] micros) {
        int best = 0;
        for (int i = 1; i < micros.length; i++) {
            if (!Double.isNaN(micros[i]) && (Double.isNaN(micros[best]) || micros[i] < micros[best])) best = i;
        }
        return !Double.isNaN(micros[0]) && micros[best] > (1 - KEEP_FIRST_MARGIN) * micros[0] ? 0 : best;
    }

    /** The cached algorithm's rank among this run's heuristic candidates, -1 when it is not among them. */
    private static int rankOf(MemorySegment results, int found, byte[] algo) {
        for (int i = 0; i < found; i++) {
            if (java.util.Arrays.equals(CublasLt.heuristicAlgo(results, i).toArray(JAVA_BYTE), algo)) return i;
        }
        return -1;
    }

    private int run(Plan plan, MemorySegment algo, Operands o, long d) {
        alpha.set(JAVA_FLOAT, 0, o.alpha());
        beta.set(JAVA_FLOAT, 0, o.beta());
        context.makeCurrent();
        return lt.matmul(plan.desc(), alpha, o.b(), plan.layoutA(), o.a(), plan.layoutB(), beta, o.c(), plan.layoutC(), d,
                plan.layoutC(), algo, workspace.address(), WORKSPACE_BYTES, context.computeStreamAddress());
    }

    /** "algo 66 tile 0 stages 0 splitK 1": cuBLASLt's own configuration numbers (cublasLt.h enums). */
    private String describeAlgo(MemorySegment algo) {
        try {
            return "algo " + lt.algoConfig(algo, CublasLt.ALGO_CONFIG_ID) + " tile " + lt.algoConfig(algo, CublasLt.ALGO_CONFIG_TILE_ID)
                    + " stages " + lt.algoConfig(algo, CublasLt.ALGO_CONFIG_STAGES_ID)
                    + " splitK " + lt.algoConfig(algo, CublasLt.ALGO_CONFIG_SPLITK_NUM);
        } catch (CudaException e) {
            return "algo (configuration not readable: " + e.getMessage() + ")"; // a report only; the algorithm itself is fine
        }
    }

    /** The cache key: GPU, driver, cuBLASLt version and everything a plan depends on. */
    private String cacheKey(Key k) {
        return machineKey + "|m" + k.m() + " n" + k.n()
                + " k" + k.k() + " " + (k.transA() ? "T" : "N") + (k.transB() ? "T" : "N") + " " + k.a() + "x" + k.b() + "->"
                + k.c() + " bias " + k.bias() + " align " + k.alignA() + "/" + k.alignB() + "/" + k.alignC() + "/" + k.alignBias();
    }

    @Override
    public void close() {
        timer.close();
        fp8.close();
        workspace.close();
        lt.close();
    }
}
