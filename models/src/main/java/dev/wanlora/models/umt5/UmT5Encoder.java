package dev.wanlora.models.umt5;

import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.umt5.UmT5Weights.Layer;
import dev.wanlora.models.umt5.UmT5Weights.Linear;

import java.util.ArrayList;
import java.util.List;
import java.util.function.BiConsumer;

/**
 * The umT5 encoder forward (spec §10.3; musubi {@code wan/modules/t5.py} {@code T5Encoder}): token embedding, then per
 * block RMSNorm → self-attention with the block's relative-position bias and the key padding mask (no 1/√D) →
 * residual, RMSNorm → gated-GELU FFN → residual; a final RMSNorm. Dropout is inactive (eval). Every op runs in the
 * weights' compute dtype with fp32 reductions, which is musubi's bf16 autocast path on BF16 and plain float32 math on
 * F32.
 *
 * <p>Buffers are allocated per call: the encoder runs a few times at start-up (one call per distinct prompt), never
 * inside the training step loop. Padded query rows are computed (they attend to the real keys) and dropped by
 * {@link #trimmed}. Streamed layers ({@link UmT5Weights.Streaming}) run between acquire and release, the next one
 * prefetched while the current one computes.
 */
public final class UmT5Encoder {

    private final Backend backend;
    private final UmT5Weights weights;
    private final UmT5Config config;

    public UmT5Encoder(Backend backend, UmT5Weights weights) {
        this.backend = backend;
        this.weights = weights;
        this.config = weights.config();
    }

    public UmT5Config config() { return config; }

    /**
     * Encodes {@code batch} sequences of {@code length} ids. ids (B·L) integer token ids, mask (B·L) 1 for real tokens
     * and 0 for padding (both row-major (B, L)). Returns (B, L, C) in the compute dtype after the final norm, padded
     * rows included; the caller closes it. {@code observer} (may be null) sees "embed" and "layer.i" hidden states
     * (B·L, C), valid only during the call.
     */
    public Tensor encode(float[] ids, float[] mask, int batch, int length, BiConsumer<String, Tensor> observer) {
        if (ids.length != (long) batch * length || mask.length != ids.length) {
            throw new IllegalArgumentException("umT5 encode: ids and mask must hold batch·length = " + (long) batch * length
                    + " values; got " + ids.length + " ids and " + mask.length + " mask values");
        }
        DType dt = weights.dtype();
        int rows = batch * length, c = config.dim(), ca = config.dimAttn(), heads = config.numHeads();
        List<Tensor> scratch = new ArrayList<>();
        try {
            Tensor idT = keep(scratch, backend.fromFloats(DType.F32, Shape.of(rows), ids));                 // (B·L) F32 ids
            Tensor maskT = keep(scratch, backend.fromFloats(DType.F32, Shape.of(batch, length), mask));     // (B, L) F32
            // (2L − 1) F32 bucket of each relative position −(L − 1) … L − 1
            Tensor buckets = keep(scratch, backend.fromFloats(DType.F32, Shape.of(2L * length - 1), config.bucketTable(length, length)));
            Tensor x2 = keep(scratch, backend.allocate(dt, Shape.of(rows, c)));    // (B·L, C) residual stream
            Tensor y = keep(scratch, backend.allocate(dt, Shape.of(rows, c)));     // (B·L, C) normed
            Tensor rstd = keep(scratch, backend.allocate(DType.F32, Shape.of(rows)));  // (B·L) F32, unused after
            Tensor q = keep(scratch, backend.allocate(dt, Shape.of(batch, length, ca)));    // (B, L, N·D)
            Tensor k = keep(scratch, backend.allocate(dt, Shape.of(batch, length, ca)));
            Tensor v = keep(scratch, backend.allocate(dt, Shape.of(batch, length, ca)));
            Tensor attn = keep(scratch, backend.allocate(dt, Shape.of(batch, length, ca))); // (B, L, N·D) heads concatenated
            Tensor bias = keep(scratch, backend.allocate(dt, Shape.of(heads, length, length))); // (N, L, L) this block's bias
            Tensor proj = keep(scratch, backend.allocate(dt, Shape.of(rows, c)));  // attention / FFN output
            Tensor gate = keep(scratch, backend.allocate(dt, Shape.of(rows, config.dimFfn())));   // (B·L, F) gate(y)
            Tensor hidden = keep(scratch, backend.allocate(dt, Shape.of(rows, config.dimFfn()))); // (B·L, F) fc1(y)·gelu
            // (largest O·I) dequantized fp8 weight of the Linear about to run (--fp8_t5 only)
            Tensor dequant = needsDequantBuffer() ? keep(scratch, backend.allocate(dt, Shape.of(largestLinear()))) : null;
            backend.embedding(x2, weights.tokenEmbedding(), idT);
            if (observer != null) observer.accept("embed", x2);
            for (int i = 0; i < config.numLayers(); i++) {
                Layer l = weights.acquireLayer(i);
                weights.prefetchLayer(i + 1); // a streamed next layer copies while this one computes
                backend.rmsNorm(y, rstd, x2, l.norm1(), UmT5Config.NORM_EPS);
                linear(q.reshape(Shape.of(rows, ca)), y, l.q(), dequant);
                linear(k.reshape(Shape.of(rows, ca)), y, l.k(), dequant);
                linear(v.reshape(Shape.of(rows, ca)), y, l.v(), dequant);
                backend.relativePositionBias(bias, l.positionBias(), buckets);
                backend.attentionWithBias(attn, q, k, v, bias, maskT, heads);
                linear(proj, attn.reshape(Shape.of(rows, ca)), l.o(), dequant);
                backend.add(x2, x2, proj);
                backend.rmsNorm(y, rstd, x2, l.norm2(), UmT5Config.NORM_EPS);
                linear(gate, y, l.gate(), dequant);
                linear(hidden, y, l.fc1(), dequant);
                backend.gatedGelu(hidden, gate, hidden);
                linear(proj, hidden, l.fc2(), dequant);
                backend.add(x2, x2, proj);
                weights.releaseLayer(i);
                if (observer != null) observer.accept("layer." + i, x2);
            }
            Tensor out = backend.allocate(dt, Shape.of(batch, length, c));
            backend.rmsNorm(out.reshape(Shape.of(rows, c)), rstd, x2, weights.finalNorm(), UmT5Config.NORM_EPS);
            return out;
        } finally {
            scratch.forEach(Tensor::close);
        }
    }

    /** Sequence b's first {@code seqLen} rows of an {@link #encode} output: (seqLen, C), a view (musubi's trim). */
    public static Tensor trimmed(Tensor encoded, int b, int seqLen) {
        long length = encoded.shape().dim(1), c = encoded.shape().dim(2);
        return encoded.view(b * length * c, Shape.of(seqLen, c));
    }

    /** y = x·Wᵀ; an fp8 weight is dequantized into {@code dequant} first. */
    private void linear(Tensor y, Tensor x, Linear lin, Tensor dequant) {
        Tensor w = lin.weight();
        if (lin.isQuantized()) {
            Shape s = lin.quantized().shape();
            w = dequant.view(0, s);
            backend.dequantizeFp8(w, lin.quantized(), lin.scale());
        }
        backend.gemm(y, x, false, w, true, 1, 0, null);
    }

    private boolean needsDequantBuffer() { return weights.isFp8(); }

    private long largestLinear() {
        return Math.max((long) config.dimAttn() * config.dim(), (long) config.dimFfn() * config.dim());
    }

    private static Tensor keep(List<Tensor> list, Tensor t) {
        list.add(t);
        return t;
    }
}
