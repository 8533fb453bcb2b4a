package dev.wanlora.engine.cpu;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.util.Locale;

/**
 * A CPU tensor: a range of a {@code float[]} shared by an owner and its views.
 *
 * <p><b>Invariant:</b> every stored value is exactly representable in the tensor's dtype. A BF16, F16 or F8 tensor
 * holds its values already rounded to that dtype (so reading needs no conversion), and a U8 tensor holds its codes
 * 0..255 as floats. Writers go through {@link #store} or {@link #round}, which round to nearest even.
 *
 * <p>Views share the owner's storage: closing a view does nothing; closing the owner releases the array for every
 * view, after which any access throws {@link IllegalStateException}. Storage is a Java array, so a tensor holds at
 * most {@link #MAX_ELEMENTS} elements.
 */
public final class CpuTensor implements Tensor {

    /** The largest float[] the JVM allocates (Integer.MAX_VALUE − 8 on HotSpot). */
    public static final long MAX_ELEMENTS = Integer.MAX_VALUE - 8;

    /** The owner's array; null once the owner is closed. */
    private static final class Storage {
        volatile float[] data;

        Storage(float[] data) { this.data = data; }
    }

    private final CpuBackend backend;
    private final DType dtype;
    private final Shape shape;
    private final Storage storage;
    private final int offset;
    private final int size;
    private final boolean isOwner;

    private CpuTensor(CpuBackend backend, DType dtype, Shape shape, Storage storage, int offset, boolean isOwner) {
        this.backend = backend;
        this.dtype = dtype;
        this.shape = shape;
        this.storage = storage;
        this.offset = offset;
        this.size = (int) shape.numElements();
        this.isOwner = isOwner;
    }

    /** A new zero tensor. Throws for dtypes the CPU cannot hold exactly in a float and for arrays beyond 2^31. */
    static CpuTensor allocate(CpuBackend backend, DType dtype, Shape shape) {
        requireStorable(dtype);
        long n = shape.numElements();
        if (n > MAX_ELEMENTS) {
            throw new IllegalArgumentException("allocate (cpu): tensor too large for the CPU backend's float[] storage; got "
                    + shape + " = " + n + " elements, expected at most " + MAX_ELEMENTS
                    + " elements. hint: the CPU reference is for small shapes; use the CUDA backend");
        }
        return new CpuTensor(backend, dtype, shape, new Storage(new float[(int) n]), 0, true);
    }

    private static void requireStorable(DType dtype) {
        switch (dtype) {
            case F32, BF16, F16, F8_E4M3, F8_E5M2, U8 -> { }
            default -> throw new UnsupportedOperationException("cpu: no storage for dtype "
                    + dtype.name().toLowerCase(Locale.ROOT) + "; supported: f32, bf16, f16, f8_e4m3, f8_e5m2, u8");
        }
    }

    /** v rounded to nearest even in dtype (U8: must already be an integer code 0..255). */
    static float round(DType dtype, float v) {
        return switch (dtype) {
            case F32 -> v;
            case BF16 -> Bf16.round(v);
            case F16 -> Fp16.round(v);
            case F8_E4M3 -> Fp8.e4m3ToFloat(Fp8.e4m3FromFloat(v));
            case F8_E5M2 -> Fp8.e5m2ToFloat(Fp8.e5m2FromFloat(v));
            case U8 -> {
                if (!(v >= 0 && v <= 255 && v == Math.rint(v))) {
                    throw new IllegalArgumentException("cpu: a u8 tensor holds integer codes; got " + v
                            + ", expected an integer in 0..255");
                }
                yield v;
            }
            default -> throw new IllegalStateException("unreachable: " + dtype);
        };
    }

    /** The backing array (shared with views). Element i of this tensor is {@code data()[offset() + i]}. */
    float[] data() {
        float[] d = storage.data;
        if (d == null) {
            throw new IllegalStateException("cpu: tensor " + shape + " " + dtype.name().toLowerCase(Locale.ROOT)
                    + " used after its owner was closed");
        }
        return d;
    }

    /** Index in {@link #data()} of this tensor's element 0. */
    int offset() { return offset; }

    /** Number of elements as an int (≤ {@link #MAX_ELEMENTS}). */
    int size() { return size; }

    /** Element i widened to float. */
    float get(int i) { return data()[offset + i]; }

    /** Element i = v, computed in double or float by the op and rounded to this tensor's dtype on store. */
    void store(int i, double v) { data()[offset + i] = round(dtype, (float) v); }

    /** True when both tensors address the same elements of the same storage (same offset, same size). */
    boolean isSameRange(CpuTensor o) {
        return storage == o.storage && offset == o.offset && size == o.size;
    }

    /** True when both tensors share at least one element of storage. */
    boolean overlaps(CpuTensor o) {
        return storage == o.storage && size > 0 && o.size > 0 && offset < o.offset + o.size && o.offset < offset + size;
    }

    @Override public Shape shape() { return shape; }

    @Override public DType dtype() { return dtype; }

    @Override public String backendName() { return backend.name(); }

    @Override
    public CpuTensor view(long offsetElements, Shape viewShape) {
        data(); // closed tensors throw
        long n = viewShape.numElements();
        if (offsetElements < 0 || offsetElements > size || n > size - offsetElements) {
            throw new IndexOutOfBoundsException("view: range outside the tensor; got offset " + offsetElements + " and "
                    + viewShape + " (" + n + " elements), expected offset + elements <= " + size + " of " + shape);
        }
        return new CpuTensor(backend, dtype, viewShape, storage, offset + (int) offsetElements, false);
    }

    /** Closing the owner releases the storage of the owner and every view (idempotent); closing a view does nothing. */
    @Override
    public void close() {
        if (isOwner) storage.data = null;
    }

    @Override
    public String toString() {
        return "CpuTensor" + shape + " " + dtype.name().toLowerCase(Locale.ROOT) + (isOwner ? "" : " view@" + offset);
    }
}
