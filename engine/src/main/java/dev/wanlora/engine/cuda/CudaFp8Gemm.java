package dev.wanlora.engine.cuda;

import dev.wanlora.engine.backend.OpChecks.GemmDims;
import dev.wanlora.engine.tensor.DType;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.*;

/**
 * The fp8 compute path ({@code --fp8_compute}) on the GPU: per-tensor E4M3 quantization by our kernels
 * ({@code quant/fp8_tensor.cu}) and the GEMM y = (sx·sw)·(xq·wqᵀ) + bias by cuBLASLt's fp8 matmul; the reference is
 * {@code cpu/CpuFp8Gemm}.
 *
 * <p><b>Why per-tensor scales.</b> cuBLASLt applies fp8 scales in three ways: one fp32 scalar per operand
 * ({@code CUBLASLT_MATMUL_DESC_A/B_SCALE_POINTER}, every cuBLASLt 12.x/13.x on compute capability 8.9 and 9.0),
 * one per row/column ({@code CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F}, added in cuBLAS 12.9, whose release notes
 * name Hopper and Blackwell for it), and 128-element blocks (also 12.9+). Our users' cards are RTX 4090s (sm_89) and their CUDA 12
 * installs predate 12.9, so the scalar mode is the one that runs everywhere fp8 tensor cores exist; musubi's 64-element
 * block scales match none of these, so the weights are re-quantized per tensor at load (models' Fp8ComputeWeights).
 *
 * <p><b>Layout.</b> As {@link CudaGemm}: row-major y (M, N) is column-major yᵀ (N, M) = W·xᵀ, so cuBLASLt's A is the
 * weight's storage transposed (OP_T, K × N, ld K) and its B the codes of x (OP_N, K × M, ld K): the "TN" form, the only
 * one cuBLASLt's fp8 kernels take. The scales are device pointers set on the descriptor per call (A: the weight's, B:
 * x's); D = C is BF16; the bias epilogue adds a BF16 vector after the scaling. Accumulation is cuBLASLt's default for
 * fp8 (no {@code FAST_ACCUM}: Hopper's fp8 MMA accumulates in reduced precision unless partial sums are promoted to
 * fp32, which the default does).
 *
 * <p>Plans (descriptor, layouts, algorithm) are made once per shape and alignment. The algorithm is chosen as
 * {@link CudaGemm} chooses its own: the heuristic's top {@value CudaGemm#CANDIDATES} timed once on the first call's
 * operands (beta = 0, so the timing runs write only y, which the call then overwrites), the fastest kept unless within
 * 2 % of the first, and stored in {@link GemmAlgorithmCache} under an "fp8" key so later runs on the machine reuse it;
 * {@code WANLORA_GEMM_TUNE=off} takes the heuristic's first. The workspace is {@link CudaGemm}'s (one compute stream).
 * The amax partials are one 4 KiB buffer, also shared; its address goes to the kernels as a {@code Long}, the size of
 * the {@code float*} parameter.
 */
final class CudaFp8Gemm implements AutoCloseable {
    static final int R_8F_E4M3 = 28;
    static final int DESC_A_SCALE_POINTER = 17, DESC_B_SCALE_POINTER = 18;
    /** At most this many blocks write amax partials (quantize_fp8_tensor reduces them in each block). */
    static final int AMAX_BLOCKS = 1024;
    /** fp8 tensor cores: Ada (8.9) and Hopper (9.0) and newer. */
    static final int MIN_COMPUTE_CAPABILITY = 89;

    record Key(long m, long n, long k, boolean hasBias, int alignX, int alignW, int alignY) {}

    /** {@code candidates}: the heuristic's results (96 bytes each); {@code isChosen[0]}: {@code algo} holds the choice. */
    record Plan(MemorySegment desc, MemorySegment layoutA, MemorySegment layoutB, MemorySegment layoutC, MemorySegment algo,
                MemorySegment candidates, int found, boolean[] isChosen) {}

    private final CudaContext context;
    private final Launcher launcher;
    private final CublasLt lt;
    private final DeviceBuffer workspace;
    private final DeviceBuffer partials;
    private final Map<Key, Plan> plans = new HashMap<>();
    private final MemorySegment alpha, beta, pointer;
    /** Where timed choices are kept (null: tuning off), and the machine part of their keys (GPU, driver, cuBLASLt). */
    private final GemmAlgorithmCache cache;
    private final String machineKey;
    /** {@link CudaGemm}'s (one compute stream, one choice at a time). */
    private final AlgorithmTimer timer;

    CudaFp8Gemm(CudaContext context, Launcher launcher, CublasLt lt, DeviceBuffer workspace, GemmAlgorithmCache cache,
                String machineKey, AlgorithmTimer timer) {
        this.context = context;
        this.launcher = launcher;
        this.lt = lt;
        this.workspace = workspace;
        this.cache = cache;
        this.machineKey = machineKey;
        this.timer = timer;
        this.partials = DeviceBuffer.allocate(context, AMAX_BLOCKS * 4L, "fp8 amax partials");
        this.alpha = lt.arena().allocate(JAVA_FLOAT);
        this.beta = lt.arena().allocate(JAVA_FLOAT);
        this.pointer = lt.arena().allocate(JAVA_LONG);
        alpha.set(JAVA_FLOAT, 0, 1f);
        beta.set(JAVA_FLOAT, 0, 0f);
    }

    /** Two launches: per-block amax partials, then the scale and the codes (see fp8_tensor.cu). */
    void quantizeTensor(CudaTensor codes, CudaTensor scale, CudaTensor x) {
        long n = x.numElements();
        if (n == 0) {
            launcher.launch(Launcher.kernel("quantizeFp8Tensor", "quantize_fp8_tensor_fwd", x.dtype()), LaunchConfig.of(1, 256),
                    codes, scale, partials.address(), 0, x, 0L);
            return;
        }
        LaunchConfig amax = LaunchConfig.cover((n + 7) / 8, Launcher.THREADS, AMAX_BLOCKS);
        launcher.launch(Launcher.kernel("quantizeFp8Tensor", "amax_partial_fwd", x.dtype()), amax, partials.address(), x, n);
        launcher.launch(Launcher.kernel("quantizeFp8Tensor", "quantize_fp8_tensor_fwd", x.dtype()), launcher.cover((n + 7) / 8),
                codes, scale, partials.address(), amax.gridX(), x, n);
    }

    void dequantizeTensor(CudaTensor out, CudaTensor codes, CudaTensor scale) {
        long n = out.numElements();
        if (n > 0) {
            launcher.launch(Launcher.kernel("dequantizeFp8Tensor", "dequantize_fp8_tensor_fwd", out.dtype()),
                    launcher.cover((n + 7) / 8), out, codes, scale, n);
        }
    }

    void gemm(CudaTensor y, CudaTensor xCodes, CudaTensor xScale, CudaTensor wCodes, CudaTensor wScale, CudaTensor bias,
              GemmDims dims) {
        if (context.computeCapability() < MIN_COMPUTE_CAPABILITY) {
            throw new UnsupportedOperationException("gemmFp8 (cuda): " + context.deviceName() + " (compute capability "
                    + context.computeCapability() / 10 + "." + context.computeCapability() % 10 + ") has no fp8 tensor cores;"
                    + " supported: compute capability 8.9 or newer (RTX 40xx, L4/L40, H100/H200)");
        }
        if (y.dtype() != DType.BF16) {
            throw new UnsupportedOperationException("gemmFp8 (cuda): no cuBLASLt path for y=" + y.dtype()
                    + "; supported: BF16 y and bias");
        }
        if (dims.m() == 0) return;
        Key key = new Key(dims.m(), dims.n(), dims.k(), bias != null, CudaGemm.alignment(xCodes.address()),
                CudaGemm.alignment(wCodes.address()), CudaGemm.alignment(y.address()));
        Plan plan = plans.get(key);
        if (plan == null) {
            plan = plan(key);
            plans.put(key, plan);
        }
        setPointer(plan.desc(), DESC_A_SCALE_POINTER, wScale.address());
        setPointer(plan.desc(), DESC_B_SCALE_POINTER, xScale.address());
        if (bias != null) setPointer(plan.desc(), CublasLt.DESC_BIAS_POINTER, bias.address());
        if (!plan.isChosen()[0]) {
            choose(key, plan, wCodes.address(), xCodes.address(), y.address());
            plan.isChosen()[0] = true;
        }
        int status = run(plan, plan.algo(), wCodes.address(), xCodes.address(), y.address());
        if (status != 0) throw new CudaException("cublasLtMatmul", status, CublasLt.statusName(status), "gemmFp8 " + key);
        if (CudaContext.syncAfterEachLaunch()) context.synchronize();
    }

    private void setPointer(MemorySegment desc, int attribute, long address) {
        pointer.set(JAVA_LONG, 0, address);
        lt.matmulDescSet(desc, attribute, pointer);
    }

    private Plan plan(Key key) {
        var arena = lt.arena();
        MemorySegment desc = lt.matmulDescCreate(CublasLt.COMPUTE_32F, CublasLt.R_32F);
        lt.matmulDescSetInt(desc, CublasLt.DESC_TRANSA, CublasLt.OP_T);
        lt.matmulDescSetInt(desc, CublasLt.DESC_TRANSB, CublasLt.OP_N);
        if (key.hasBias()) {
            lt.matmulDescSetInt(desc, CublasLt.DESC_EPILOGUE, CublasLt.EPILOGUE_BIAS);
            lt.matmulDescSetInt(desc, CublasLt.DESC_BIAS_DATA_TYPE, CublasLt.R_16BF);
        }
        MemorySegment layoutA = lt.matrixLayoutCreate(R_8F_E4M3, key.k(), key.n(), key.k());
        MemorySegment layoutB = lt.matrixLayoutCreate(R_8F_E4M3, key.k(), key.m(), key.k());
        MemorySegment layoutC = lt.matrixLayoutCreate(CublasLt.R_16BF, key.n(), key.m(), key.n());
        MemorySegment pref = lt.preferenceCreate();
        MemorySegment lv = arena.allocate(JAVA_LONG);
        lv.set(JAVA_LONG, 0, CudaGemm.WORKSPACE_BYTES);
        lt.preferenceSet(pref, CublasLt.PREF_MAX_WORKSPACE_BYTES, lv);
        lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_A, key.alignW());
        lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_B, key.alignX());
        lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_C, key.alignY());
        lt.preferenceSetInt(pref, CublasLt.PREF_MIN_ALIGNMENT_D, key.alignY());
        int requested = cache == null ? 1 : CudaGemm.CANDIDATES;
        MemorySegment results = arena.allocate(CublasLt.HEURISTIC_RESULT_BYTES * requested, 8);
        int found = lt.algoGetHeuristic(desc, layoutA, layoutB, layoutC, layoutC, pref, requested, results);
        if (found == 0) {
            throw new UnsupportedOperationException("gemmFp8 (cuda): cuBLASLt " + lt.version() + " has no fp8 algorithm for "
                    + key + " on " + context.deviceName() + "; supported: E4M3 x E4M3 -> BF16 with K, N multiples of 16 and"
                    + " 16-byte aligned operands on compute capability 8.9+");
        }
        return new Plan(desc, layoutA, layoutB, layoutC, arena.allocate(CublasLt.ALGO_BYTES, 8), results, found,
                new boolean[1]);
    }

    /**
     * Fills {@code plan.algo()}: the cached choice if cuBLASLt accepts it, else the heuristic's first when tuning is
     * off or it has one candidate, else the fastest of the candidates timed on these operands ({@link CudaGemm#pick}).
     */
    private void choose(Key key, Plan plan, long w, long x, long y) {
        MemorySegment algo = plan.algo();
        if (cache == null || plan.found() == 1) {
            algo.copyFrom(candidate(plan, 0));
            return;
        }
        String cacheKey = machineKey + "|fp8 m" + key.m() + " n" + key.n() + " k" + key.k() + " TN E4M3xE4M3->BF16 bias "
                + key.hasBias() + " align " + key.alignX() + "/" + key.alignW() + "/" + key.alignY();
        GemmAlgorithmCache.Entry cached = cache.get(cacheKey);
        if (cached != null && lt.isUsable(plan.desc(), plan.layoutA(), plan.layoutB(), plan.layoutC(), cached.algo(),
                CudaGemm.WORKSPACE_BYTES)) {
            algo.copyFrom(MemorySegment.ofArray(cached.algo()));
            return;
        }
        double[] micros = new double[plan.found()];
        for (int i = 0; i < micros.length; i++) {
            long workspaceBytes = plan.candidates().get(JAVA_LONG, i * CublasLt.HEURISTIC_RESULT_BYTES + CublasLt.ALGO_BYTES);
            MemorySegment candidate = candidate(plan, i);
            micros[i] = workspaceBytes > CudaGemm.WORKSPACE_BYTES ? Double.NaN : timer.micros(() -> run(plan, candidate, w, x, y));
        }
        int chosen = CudaGemm.pick(micros);
        algo.copyFrom(candidate(plan, chosen));
        cache.put(cacheKey, algo.toArray(JAVA_BYTE), String.format(java.util.Locale.ROOT, "timed: #%d of %d, %.1f us (#0: %.1f us)",
                chosen, micros.length, micros[chosen], micros[0]));
    }

    private static MemorySegment candidate(Plan plan, int i) {
        return CublasLt.heuristicAlgo(plan.candidates(), i);
    }

    /** y = (sx·sw)·x·wᵀ (+ bias) with {@code algo}, the scale and bias pointers already on the descriptor. */
    private int run(Plan plan, MemorySegment algo, long w, long x, long y) {
        context.makeCurrent();
        return lt.matmul(plan.desc(), alpha, w, plan.layoutA(), x, plan.layoutB(), beta, y, plan.layoutC(), y, plan.layoutC(),
                algo, workspace.address(), CudaGemm.WORKSPACE_BYTES, context.computeStreamAddress());
    }

    @Override
    public void close() {
        partials.close();
    }
}
