package dev.wanlora.engine.tensor;

/**
 * A dense, contiguous, row-major tensor owned by one backend ({@code engine.backend.Backend}), which alone runs ops on
 * it. Models only see this interface; where the bytes live (a float[] on the CPU, device memory on CUDA) is the
 * backend's business. The tensor does not hand out its backend: callers pass the backend along explicitly (STYLE.md
 * §10), and this package stays below {@code engine.backend}.
 *
 * <p>Views share storage with their parent and never own it: closing a view does nothing, closing the owner
 * frees the storage (idempotent). Using a closed tensor throws {@link IllegalStateException}.
 */
public interface Tensor extends AutoCloseable {

    Shape shape();

    DType dtype();

    /** The owning backend's {@code Backend.name()}, for messages ("cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"). */
    String backendName();

    default long numElements() { return shape().numElements(); }

    default long sizeBytes() { return Math.multiplyExact(numElements(), dtype().sizeBytes()); }

    /**
     * A contiguous sub-range of this tensor's elements, starting {@code offsetElements} elements in, seen with
     * {@code shape}. Shares storage; the range must lie inside this tensor.
     */
    Tensor view(long offsetElements, Shape shape);

    /** The same storage seen with another shape of equal element count. */
    default Tensor reshape(Shape shape) {
        if (shape.numElements() != numElements()) {
            throw new IllegalArgumentException("reshape: element count differs; got " + shape() + ", expected a shape of "
                    + numElements() + " elements, not " + shape);
        }
        return view(0, shape);
    }

    /** Row {@code i} of the leading dimension, with the remaining dims: x[i]. */
    default Tensor slice(long i) {
        long[] d = shape().dims();
        if (d.length == 0 || i < 0 || i >= d[0]) {
            throw new IndexOutOfBoundsException("slice: index " + i + " outside " + shape());
        }
        long[] rest = java.util.Arrays.copyOfRange(d, 1, d.length);
        Shape s = new Shape(rest);
        return view(Math.multiplyExact(i, s.numElements()), s);
    }

    @Override
    void close();
}
