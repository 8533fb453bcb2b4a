package dev.wanlora.engine.backend;

import dev.wanlora.engine.io.ByteSource;
import dev.wanlora.engine.tensor.Tensor;

/**
 * What both backends share around their ops: every op is a default method of its family's interface ({@link NormOps},
 * {@link GemmOps}, …) that forwards to the family's {@code Checked} object made here, which runs the op's checks
 * (shapes, dtypes, indices: the same calls rejected with the same messages on every backend), takes each tensor as
 * the backend's own type ({@link #own}: a tensor of another backend is rejected), checks aliasing with the backend's
 * {@link AliasChecks} (where an output may be an input is in the contracts), and only then calls the backend's
 * family {@code Kernels} (its CPU reference or CUDA launcher class) with its own tensors and the dimensions the checks
 * derived. A kernel class therefore never repeats a check; it adds only what is specific to it (a CUDA kernel's
 * supported dtype combinations). The memory ops, which differ per backend, are checked here directly.
 *
 * <p>A backend subclass passes its family classes to {@link #install} once, at the end of its constructor, and
 * overrides no op (CheckedBackendTest keeps it so). The kernel classes are package-private in the backend's package,
 * so nothing else reaches them without the checks. The cost on the hot path is two more calls, which the JIT inlines.
 *
 * @param <T> the backend's tensor type (CpuTensor, CudaTensor)
 */
public abstract class CheckedBackend<T extends Tensor> implements Backend {
    private final AliasChecks<T> alias;
    private GemmOps.Checked<T> gemmOps;
    private NormOps.Checked<T> normOps;
    private ModulationOps.Checked<T> modulationOps;
    private AttentionOps.Checked<T> attentionOps;
    private ElementwiseOps.Checked<T> elementwiseOps;
    private LayoutOps.Checked<T> layoutOps;
    private VideoOps.Checked<T> videoOps;
    private FlowOps.Checked<T> flowOps;
    private OptimizerOps.Checked<T> optimizerOps;

    /** {@code alias}: how the backend's tensors address storage and how messages name them. */
    protected CheckedBackend(AliasChecks<T> alias) { this.alias = alias; }

    /** The backend's op families; called once, at the end of the subclass's constructor. */
    protected final void install(GemmOps.Kernels<T> gemm, NormOps.Kernels<T> norm, ModulationOps.Kernels<T> modulation,
                                 AttentionOps.Kernels<T> attention, ElementwiseOps.Kernels<T> elementwise,
                                 LayoutOps.Kernels<T> layout, VideoOps.Kernels<T> video, FlowOps.Kernels<T> flow,
                                 OptimizerOps.Kernels<T> optimizer) {
        if (gemmOps != null) throw new IllegalStateException("install: the op families are installed already");
        gemmOps = new GemmOps.Checked<>(this, gemm);
        normOps = new NormOps.Checked<>(this, norm);
        modulationOps = new ModulationOps.Checked<>(this, modulation);
        attentionOps = new AttentionOps.Checked<>(this, attention);
        elementwiseOps = new ElementwiseOps.Checked<>(this, elementwise);
        layoutOps = new LayoutOps.Checked<>(this, layout);
        videoOps = new VideoOps.Checked<>(this, video);
        flowOps = new FlowOps.Checked<>(this, flow);
        optimizerOps = new OptimizerOps.Checked<>(this, optimizer);
    }

    /**
     * t as this backend's tensor, or an {@link IllegalArgumentException} naming the op and the argument when it
     * belongs to another backend; null stays null (optional arguments are checked by the family's checks).
     */
    protected abstract T own(String op, String name, Tensor t);

    /** The aliasing rules with this backend's addressing (for the families' checks). */
    final AliasChecks<T> alias() { return alias; }

    @Override public final GemmOps.Checked<T> gemmOps() { return gemmOps; }
    @Override public final NormOps.Checked<T> normOps() { return normOps; }
    @Override public final ModulationOps.Checked<T> modulationOps() { return modulationOps; }
    @Override public final AttentionOps.Checked<T> attentionOps() { return attentionOps; }
    @Override public final ElementwiseOps.Checked<T> elementwiseOps() { return elementwiseOps; }
    @Override public final LayoutOps.Checked<T> layoutOps() { return layoutOps; }
    @Override public final VideoOps.Checked<T> videoOps() { return videoOps; }
    @Override public final FlowOps.Checked<T> flowOps() { return flowOps; }
    @Override public final OptimizerOps.Checked<T> optimizerOps() { return optimizerOps; }

    // ---------------------------------------------------------------- memory

    @Override
    public final void write(Tensor dst, float[] values) {
        T t = own("write", "dst", dst);
        if (values.length != t.numElements()) {
            throw new IllegalArgumentException("write: value count does not match the tensor; got " + values.length
                    + " values for " + t.shape() + ", expected " + t.numElements());
        }
        runWrite(t, values);
    }

    @Override
    public final void writeBytes(Tensor dst, ByteSource bytes) {
        T t = own("writeBytes", "dst", dst);
        long expected = Math.multiplyExact(t.numElements(), t.dtype().sizeBytes());
        if (bytes.byteSize() != expected) {
            throw new IllegalArgumentException("writeBytes: byte count does not match the tensor; got " + bytes.byteSize()
                    + " bytes from " + bytes.describe() + " for " + t.shape() + " " + t.dtype() + ", expected " + expected);
        }
        runWriteBytes(t, bytes);
    }

    @Override
    public final float[] toFloats(Tensor t) { return runToFloats(own("toFloats", "t", t)); }

    @Override
    public final void copy(Tensor dst, Tensor src) {
        OpChecks.copy(dst, src);
        T d = own("copy", "dst", dst), s = own("copy", "src", src);
        alias.sameOrDisjoint("copy", "dst", d, "src", s);
        runCopy(d, s);
    }

    @Override
    public final void fill(Tensor t, float value) { runFill(own("fill", "t", t), value); }

    protected abstract void runWrite(T dst, float[] values);
    protected abstract void runWriteBytes(T dst, ByteSource bytes);
    protected abstract float[] runToFloats(T t);
    protected abstract void runCopy(T dst, T src);
    protected abstract void runFill(T t, float value);
}
