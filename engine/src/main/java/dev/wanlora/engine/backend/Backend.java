package dev.wanlora.engine.backend;

import dev.wanlora.engine.io.ByteSource;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * The one seam between models and hardware (STYLE.md §0.2). Every op the Wan DiT needs, forward and backward.
 *
 * <p><b>Conventions.</b> Outputs come first and are pre-allocated by the caller. Tensors of rank &gt; 2 are seen as
 * (rows, cols) matrices with cols = last dim unless an op says otherwise. Activation gradients are
 * <b>overwritten</b> ({@code =}) unless the op takes an {@code accumulate} flag; parameter gradients are
 * <b>accumulated</b> ({@code +=}) (llm.c's rule). All reductions accumulate in fp32 or wider. Any output may be
 * stored as F32 or BF16: the result is computed in fp32 and rounded (round-to-nearest-even) on store, which is
 * what musubi's bf16 path does at every such point. Inputs may be F32 or BF16 unless an op says otherwise.
 * "Per-sample" vectors such as {@code mod} are (B, n, C) F32: modulation stays in fp32 as in Wan.
 *
 * <p>The CPU backend accepts any F32/BF16 mix; the CUDA backend lists its supported combinations in its
 * {@link UnsupportedOperationException} messages and never falls back to the CPU.
 *
 * <p><b>The ops live in families</b>, one interface each, which this interface extends: {@link GemmOps},
 * {@link NormOps}, {@link ModulationOps}, {@link AttentionOps}, {@link ElementwiseOps}, {@link LayoutOps},
 * {@link VideoOps}, {@link FlowOps}, {@link OptimizerOps}. A family's file holds, per op, the contract (a default
 * method forwarding to the family's {@code Checked} class), the checks ({@code Checked}: shapes, dtypes, ownership,
 * aliasing; once for every backend) and the hook ({@code Kernels}). Each backend implements a family's
 * {@code Kernels} in one class: the CPU reference ({@code cpu/Cpu<Family>}) and the CUDA launcher
 * ({@code cuda/Cuda<Family>}), installed once by {@code CpuBackend} / {@code CudaBackend}, which hold no ops. Here
 * stay the memory ops and the values the families share.
 *
 * <p><b>Adding an op to a family</b> (STYLE.md §3; {@code addRowVector} is a small example to copy) touches six files
 * plus its tests:
 * <ol>
 *   <li><b>Contract and checks</b>, {@code backend/<Family>Ops.java}: the default method with its Javadoc (the
 *       formula, the shapes, the dtypes, {@code =} or {@code +=}, which outputs may alias which inputs; name the
 *       parameters for what they hold: the profile prints them), the {@code Checked} method (the {@link OpChecks}
 *       building blocks, {@code own} for each tensor, the aliasing rules; nothing downstream checks again) and the
 *       {@code Kernels} method it calls with the backend's tensors and the derived dimensions.</li>
 *   <li><b>CPU reference</b>: the {@code Kernels} method in {@code cpu/Cpu<Family>}.</li>
 *   <li><b>Kernel</b>: {@code kernels/src/main/cuda/<family>/<op>.cu}, symbols {@code <op>_<pass>_<dtype>}.</li>
 *   <li><b>Kernel entry</b>: one {@code cuda/Kernel} constant per symbol (a test loads them all).</li>
 *   <li><b>Launcher</b>: the {@code Kernels} method in {@code cuda/Cuda<Family>}, which rejects only the dtype
 *       combinations its kernels lack.</li>
 *   <li><b>Tests</b>: hand values (and, for a fused op, bit identity with the unfused chain) on the CPU
 *       ({@code cpu/Cpu<Family>Test}) and CUDA-vs-CPU parity ({@code cuda/Cuda<Family>ParityTest},
 *       {@code @Tag("cuda")}).</li>
 * </ol>
 * A new family adds its interface to the {@code extends} list here and one argument to
 * {@code CheckedBackend.install}. {@code CheckedBackendTest} fails when an op bypasses its family's checks.
 * The profiler needs nothing: {@link ProfilingBackend} records every method here that takes a tensor.
 */
public interface Backend extends GemmOps, NormOps, ModulationOps, AttentionOps, ElementwiseOps, LayoutOps, VideoOps,
        FlowOps, OptimizerOps, AutoCloseable {

    /** "cpu" or "cuda:0 (NVIDIA H100 80GB HBM3)". */
    String name();

    /** What the device is and holds ({@link DeviceFacts}): asked instead of testing the backend's type. */
    DeviceFacts device();

    // ---------------------------------------------------------------- memory

    /** A new tensor of zeros. */
    Tensor allocate(DType dtype, Shape shape);

    /** A new tensor holding {@code values} (row-major), rounded to {@code dtype}. */
    Tensor fromFloats(DType dtype, Shape shape, float[] values);

    /**
     * A new tensor from raw little-endian bytes already in {@code dtype} (a safetensors slice). Floating dtypes,
     * and U8 for the codes of 8-bit optimizer state ({@code AdamW8bit.loadState}); F16/F8 sources are converted
     * exactly into the backend's storage for that dtype.
     */
    Tensor fromBytes(DType dtype, Shape shape, MemorySegment bytes);

    /**
     * dst = values (row-major), rounded to dst's dtype (F32, BF16, F16, F8_E4M3, F8_E5M2; U8 takes integer codes
     * 0..255), without allocating: the upload of a batch into buffers that every step reuses. {@code values} is read
     * before the call returns, so the caller may reuse the array at once. On a device the copy is queued on the
     * compute stream (ordered after every op queued before it, before every op queued after it) and the host does
     * not wait for it.
     */
    void write(Tensor dst, float[] values);

    /**
     * dst's bytes = {@code bytes} (raw little-endian data already in dst's dtype: a checkpoint tensor's slice), without
     * allocating on the device: the loader's upload path. {@code bytes} has been read completely when the call returns;
     * on a device the data then moves through a pinned staging ring on the compute stream (ordered like
     * {@link #write}) and the host does not wait for it, so reading the next tensor overlaps this one's copy and the
     * conversions queued after it. CUDA reads the source in large pieces on several threads (a cold disk reaches its
     * sequential speed only with several reads in flight). dst must be contiguous.
     */
    void writeBytes(Tensor dst, ByteSource bytes);

    /** The tensor's values widened to float (exact for every supported dtype). Synchronizes. */
    float[] toFloats(Tensor t);

    /** dst = src, converting dtype (rounding to nearest even when narrowing). Shapes must have equal element counts. */
    void copy(Tensor dst, Tensor src);

    /** t = value everywhere. */
    void fill(Tensor t, float value);

    /**
     * How this backend chose its GEMM algorithms, for the bench's report: the first line says how (tuned, cached, the
     * library's first heuristic), each further line one GEMM shape and its algorithm, the shapes with the most work
     * first. Empty where there is no choice (the CPU).
     */
    default java.util.List<String> gemmReport() { return java.util.List.of(); }

    /** Waits until every queued op has finished (a no-op on the CPU). */
    void synchronize();

    /**
     * A new {@link Timeline} on this backend's clock: CUDA events on the compute stream, the host clock on the CPU
     * (whose ops finish before they return). A wrapping backend times on the backend it wraps. The caller closes it.
     */
    Timeline openTimeline();

    // ---------------------------------------------------------------- values the op families share

    /**
     * Strides and spatial zero padding of {@link #conv3d}: frames are read with {@code timeStride}, rows and columns
     * with {@code spaceStride}; {@code padBefore} zero rows/columns sit before the first and {@code padAfter} after the
     * last (a 3×3 "same" convolution is (1, 1); Wan's downsampler's {@code ZeroPad2d((0,1,0,1))} is (0, 1)). There is
     * no time padding: a causal convolution's leading frames come from {@code cache}.
     */
    record ConvGeometry(int timeStride, int spaceStride, int padBefore, int padAfter) {
        /** Stride 1, the given symmetric spatial padding. */
        public static ConvGeometry same(int pad) { return new ConvGeometry(1, 1, pad, pad); }
    }

    /** Elements per quantization block of {@link #adamw8bit}'s moments (bitsandbytes ≥ 0.46 BLOCKSIZE_2STATE). */
    int ADAMW8BIT_BLOCK_SIZE = 256;

    /** Hyper-parameters of one AdamW step. step is 1-based (bias correction uses it). */
    record AdamWStep(float learningRate, float beta1, float beta2, float eps, float weightDecay, long step) {}

    /** Length of Prodigy's scalar state tensor. */
    int PRODIGY_STATE_SIZE = 8;

    /**
     * Hyper-parameters of one Prodigy step: learningRate is the scheduled lr (Prodigy's multiplier of d, usually 1),
     * the rest prodigyopt.Prodigy's arguments of the same names (growthRate may be infinite).
     */
    record ProdigyStep(float learningRate, float beta1, float beta2, float beta3, float eps, float weightDecay,
                       boolean decouple, boolean useBiasCorrection, boolean safeguardWarmup, float d0, float dCoef,
                       float growthRate) {}

    /**
     * Hyper-parameters of one Adafactor step; step is 1-based (the per-parameter step count), beta1 is used only
     * when the op gets an m tensor.
     */
    record AdafactorStep(float learningRate, long step, float eps1, float eps2, float clipThreshold, float decayRate,
                         float beta1, float weightDecay, boolean scaleParameter, boolean relativeStep,
                         boolean warmupInit) {

        /** The step size before the parameter scale: relativeStep ? min(warmupInit ? 1e-6·t : 1e-2, 1/√t) : lr. */
        public double relativeStepSize() {
            if (!relativeStep) return learningRate;
            double t = step;
            return Math.min(warmupInit ? 1e-6 * t : 1e-2, 1.0 / Math.sqrt(t));
        }
    }

    @Override
    void close();
}
