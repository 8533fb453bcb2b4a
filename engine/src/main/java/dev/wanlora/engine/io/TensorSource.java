package dev.wanlora.engine.io;

import dev.wanlora.engine.numeric.Bf16;
import dev.wanlora.engine.numeric.Fp16;
import dev.wanlora.engine.numeric.Fp8;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Set;

/**
 * The read side of a checkpoint, whatever its container: named tensors with a dtype, a shape and their bytes as a
 * zero-copy slice of a file map. {@link SafeTensors} and {@link PthFile} implement it, so a model's weight loader
 * takes either. Bytes are little-endian and row-major (contiguous); {@link #data} stays valid until {@link #close()}.
 */
public interface TensorSource extends AutoCloseable {

    /** The path that was opened. */
    Path path();

    /** Every tensor name, in file order. */
    Set<String> keys();

    boolean contains(String key);

    /** The tensor's element type; throws (naming the file and the key) if absent. */
    DType dtype(String key);

    /** The tensor's shape; throws (naming the file and the key) if absent. */
    Shape shape(String key);

    /** The tensor's bytes: a read-only slice of the file's map, no copy. */
    MemorySegment data(String key);

    /** The tensor's values widened to float (a copy); floating dtypes only. */
    float[] floats(String key);

    /** Unmaps the file(s). Idempotent; earlier {@link #data} segments are invalid afterwards. */
    @Override
    void close();

    /**
     * Widens {@code n} little-endian values of {@code dtype} to float: F32/F16/BF16/F8 exactly, F64 rounded to
     * nearest. Returns null for integer and bool dtypes (the caller names the file in its error).
     */
    static float[] widen(MemorySegment s, DType dtype, int n) {
        ValueLayout.OfShort i16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[n];
        switch (dtype) {
            case F32 -> MemorySegment.copy(s, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, out, 0, n);
            case F64 -> {
                ValueLayout.OfDouble f64 = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < n; i++) out[i] = (float) s.getAtIndex(f64, i);
            }
            case BF16 -> { for (int i = 0; i < n; i++) out[i] = Bf16.toFloat(s.getAtIndex(i16, i)); }
            case F16 -> { for (int i = 0; i < n; i++) out[i] = Fp16.toFloat(s.getAtIndex(i16, i)); }
            case F8_E4M3 -> { for (int i = 0; i < n; i++) out[i] = Fp8.e4m3ToFloat(s.get(ValueLayout.JAVA_BYTE, i)); }
            case F8_E5M2 -> { for (int i = 0; i < n; i++) out[i] = Fp8.e5m2ToFloat(s.get(ValueLayout.JAVA_BYTE, i)); }
            default -> { return null; }
        }
        return out;
    }
}
