package dev.wanlora.engine.tensor;

import java.util.Arrays;

/**
 * A tensor shape: row-major dims, all non-negative. Element counts use {@link Math#multiplyExact} because
 * activation sizes of real Wan shapes pass 2^31 (STYLE.md §9).
 */
public record Shape(long... dims) {

    public Shape {
        dims = dims.clone();
        for (long d : dims) {
            if (d < 0) throw new IllegalArgumentException("Shape: negative dimension; got " + Arrays.toString(dims));
        }
    }

    public static Shape of(long... dims) { return new Shape(dims); }

    public int rank() { return dims.length; }

    public long dim(int i) { return dims[i < 0 ? dims.length + i : i]; }

    /** Product of all dims (1 for a scalar). Throws ArithmeticException on overflow. */
    public long numElements() {
        long n = 1;
        for (long d : dims) n = Math.multiplyExact(n, d);
        return n;
    }

    /** Size of the last dim (the row length); 1 for a scalar. */
    public long cols() { return dims.length == 0 ? 1 : dims[dims.length - 1]; }

    /** Product of all dims but the last: the number of rows when the tensor is seen as a (rows, cols) matrix. */
    public long rows() {
        long n = 1;
        for (int i = 0; i < dims.length - 1; i++) n = Math.multiplyExact(n, dims[i]);
        return n;
    }

    @Override
    public long[] dims() { return dims.clone(); }

    @Override
    public boolean equals(Object o) { return o instanceof Shape s && Arrays.equals(dims, s.dims); }

    @Override
    public int hashCode() { return Arrays.hashCode(dims); }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < dims.length; i++) {
            if (i > 0) sb.append(',');
            sb.append(dims[i]);
        }
        return sb.append(')').toString();
    }
}
