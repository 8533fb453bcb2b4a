package dev.wanlora.models.wan.vae;

import dev.wanlora.engine.io.SafeTensors;
import dev.wanlora.engine.tensor.Shape;

import java.util.Set;

/**
 * Where VAE weights come from: a safetensors file today ({@link #of(SafeTensors)}), a PyTorch {@code .pth} state
 * dict through its reader tomorrow (the same keys). Values are handed out widened to float; {@link WanVaeWeights}
 * rounds them to the compute dtype.
 */
public interface TensorSource {
    /** The file, for messages. */
    String name();

    Set<String> keys();

    default boolean contains(String key) { return keys().contains(key); }

    Shape shape(String key);

    /** The tensor's values, row-major, widened exactly to float (F32, BF16, F16 sources). */
    float[] floats(String key);

    static TensorSource of(SafeTensors file) {
        return new TensorSource() {
            @Override public String name() { return file.path().toString(); }

            @Override public Set<String> keys() { return file.keys(); }

            @Override public Shape shape(String key) { return file.info(key).shape(); }

            @Override public float[] floats(String key) { return file.floats(key); }
        };
    }
}
