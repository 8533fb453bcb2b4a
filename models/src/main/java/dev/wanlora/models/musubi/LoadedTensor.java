package dev.wanlora.models.musubi;

import dev.wanlora.engine.tensor.Shape;

/**
 * A cache tensor read into host memory, widened to float, row-major.
 *
 * @param shape  its shape: latents [16, F, H, W], text [L, 4096]
 * @param values shape.numElements() floats; bf16 values widen exactly
 */
public record LoadedTensor(Shape shape, float[] values) {}
