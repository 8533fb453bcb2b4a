package dev.wanlora.engine.cuda;

import dev.wanlora.engine.tensor.DType;

import java.lang.foreign.MemorySegment;
import java.util.HashMap;
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
 * <p>Supported: a, b both BF16 with c BF16 or F32; a, b both F16 with c F16 or F32; a, b, c F32. Bias of c's dtype
 * or F32.
 */
final class CudaGemm implements AutoCloseable {
    static final long WORKSPACE_BYTES = 32L << 20;

    /** Everything a cuBLASLt plan depends on. Alignments are the pointers' power-of-two alignment, capped at 256. */
    record Key(long m, long n, long k, boolean transA, boolean transB, DType a, DType b, DType c, DType bias,
               int alignA, int alignB, int alignC, int alignBias) {}

    /** A cached plan: descriptor, the three layouts (C and D share one) and the chosen algorithm. */
    record Plan(MemorySegment desc, MemorySegment layoutA, MemorySegment layoutB, MemorySegment layoutC, MemorySegment algo) {}

    private final CudaContext context;
    private final CublasLt lt;
    private final DeviceBuffer workspace;
    private final Map<Key, Plan> plans = new HashMap<>();
    private final MemorySegment alpha, beta, biasPointer;

    CudaGemm(CudaContext context) {
        this.context = context;
        context.makeCurrent();
        this.lt = CublasLt.load();
        this.workspace = DeviceBuffer.allocate(context, WORKSPACE_BYTES, "cuBLASLt workspace");
        this.alpha = lt.arena().allocate(JAVA_FLOAT);
        this.beta = lt.arena().allocate(JAVA_FLOAT);
        this.biasPointer = lt.arena().allocate(JAVA_LONG);
    }

    /** "cuBLASLt 130100 (/usr/local/cuda/targets/x86_64-linux/lib/libcublasLt.so.13)". */
    String describe() { return "cuBLASLt " + lt.version() + " (" + lt.location() + ")"; }

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
        if (!supported(a.dtype(), b.dtype(), c.dtype()) || (bias != null && bias.dtype() != c.dtype() && bias.dtype() != DType.F32)) {
            throw new UnsupportedOperationException("gemm (cuda): no cuBLASLt path for a=" + a.dtype() + ", b=" + b.dtype()
                    + ", c=" + c.dtype() + (bias == null ? "" : ", bias=" + bias.dtype())
                    + "; supported: (BF16,BF16)->BF16|F32, (F16,F16)->F16|F32, (F32,F32)->F32, bias of c's dtype or F32");
        }
        if (m == 0 || n == 0) return;
        if (k == 0) throw new IllegalArgumentException("gemm: inner dimension K is 0; got a=" + a.shape() + ", b=" + b.shape());
        Key key = new Key(m, n, k, transA, transB, a.dtype(), b.dtype(), c.dtype(), bias == null ? null : bias.dtype(),
                alignment(a.address()), alignment(b.address()), alignment(c.address()), bias == null ? 0 : alignment(bias.address()));
        Plan plan = plans.computeIfAbsent(key, this::plan);
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

    private static boolean supported(DType a, DType b, DType c) {
        if (a != b) return false;
        return switch (a) {
            case BF16, F16 -> c == a || c == DType.F32;
            case F32 -> c == DType.F32;
            default -> false;
        };
    }

    private static int alignment(long address) {
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

    private Plan plan(Key key) {
        var arena = lt.arena();
        MemorySegment desc = lt.matmulDescCreate(CublasLt.COMPUTE_32F, CublasLt.R_32F);
        MemorySegment iv = arena.allocate(JAVA_INT);
        iv.set(JAVA_INT, 0, key.transB() ? CublasLt.OP_T : CublasLt.OP_N);
        lt.matmulDescSet(desc, CublasLt.DESC_TRANSA, iv);
        iv = arena.allocate(JAVA_INT);
        iv.set(JAVA_INT, 0, key.transA() ? CublasLt.OP_T : CublasLt.OP_N);
        lt.matmulDescSet(desc, CublasLt.DESC_TRANSB, iv);
        if (key.bias() != null) {
            iv = arena.allocate(JAVA_INT);
            iv.set(JAVA_INT, 0, CublasLt.EPILOGUE_BIAS);
            lt.matmulDescSet(desc, CublasLt.DESC_EPILOGUE, iv);
            iv = arena.allocate(JAVA_INT);
            iv.set(JAVA_INT, 0, cudaType(key.bias()));
            lt.matmulDescSet(desc, CublasLt.DESC_BIAS_DATA_TYPE, iv);
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
        setAlignment(pref, CublasLt.PREF_MIN_ALIGNMENT_A, key.alignB());
        setAlignment(pref, CublasLt.PREF_MIN_ALIGNMENT_B, key.alignA());
        setAlignment(pref, CublasLt.PREF_MIN_ALIGNMENT_C, key.alignC());
        setAlignment(pref, CublasLt.PREF_MIN_ALIGNMENT_D, key.alignC());
        MemorySegment results = arena.allocate(CublasLt.HEURISTIC_RESULT_BYTES, 8);
        int found = lt.algoGetHeuristic(desc, layoutA, layoutB, layoutC, layoutC, pref, 1, results);
        if (found == 0) {
            throw new UnsupportedOperationException("gemm (cuda): cuBLASLt has no algorithm for " + key
                    + " on " + context + "; supported: (BF16,BF16)->BF16|F32, (F16,F16)->F16|F32, (F32,F32)->F32 with 16-byte aligned rows");
        }
        return new Plan(desc, layoutA, layoutB, layoutC, results.asSlice(0, CublasLt.ALGO_BYTES));
    }

    private void setAlignment(MemorySegment pref, int attribute, int bytes) {
        MemorySegment v = lt.arena().allocate(JAVA_INT);
        v.set(JAVA_INT, 0, bytes);
        lt.preferenceSet(pref, attribute, v);
    }

    @Override
    public void close() {
        workspace.close();
        lt.close();
    }
}
