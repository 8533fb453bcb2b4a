package dev.wanlora.engine.backend;

import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.StringJoiner;

/**
 * A {@link Backend} that forwards every op to another one and, while recording, times each op on that backend's
 * {@link Timeline} (device time between consecutive events on a GPU): the per-op profile of a training step. Not
 * recording, it only forwards (one branch per op). Tensors are the wrapped backend's: {@code t.backend()} is the
 * wrapped one, so ops a caller sends there directly are not seen; their time falls into the next
 * {@code "(outside)"} entry, which {@link #phase} and {@link #stopRecording} close.
 *
 * <p>An op's time is the interval from the end of the previous recorded op to its own end, so it includes any
 * idle gap before it (a GPU waiting for the host to launch): a host-bound stretch shows as ops slower than their
 * kernels.
 */
public final class ProfilingBackend implements Backend {

    /** One recorded op: the phase the caller had set, the op's name, its operands' shapes and dtypes, its time. */
    public record OpTime(String phase, String op, String operands, double millis) {}

    private final Backend inner;
    private final Timeline timeline;
    /** Per interval: the phase, the op and its operands as (name, value) pairs, formatted only when the recording stops. */
    private record Entry(String phase, String op, Object[] namesAndValues) {}

    private final List<Entry> recorded = new ArrayList<>();
    private boolean isRecording;
    private String phase = "";

    /** Wraps {@code inner}; the timeline is made here on inner's clock and closed with this backend. */
    public ProfilingBackend(Backend inner) {
        this.inner = inner;
        this.timeline = Backends.timeline(inner);
    }

    /** The wrapped backend. */
    public Backend inner() { return inner; }

    public boolean isRecording() { return isRecording; }

    /** Starts a new recording (forgetting the last one) in phase {@code phase}. */
    public void startRecording(String phase) {
        recorded.clear();
        timeline.reset();
        this.phase = phase;
        isRecording = true;
        timeline.mark();
    }

    /** Labels the ops that follow; while recording, closes the current stretch of unseen work as "(outside)". */
    public void phase(String phase) {
        if (isRecording) record("(outside)");
        this.phase = phase;
    }

    /** Ends the recording; waits for the device and returns every op in order with its time. */
    public List<OpTime> stopRecording() {
        if (!isRecording) throw new IllegalStateException("ProfilingBackend.stopRecording: not recording");
        record("(outside)");
        isRecording = false;
        List<OpTime> times = new ArrayList<>(recorded.size());
        for (int i = 0; i < recorded.size(); i++) {
            Entry e = recorded.get(i);
            times.add(new OpTime(e.phase(), e.op(), operands(e.namesAndValues()), timeline.millisBetween(i, i + 1)));
        }
        return times;
    }

    /** Records the op just queued; formatting waits until the end, so the host stays close to its unprofiled pace. */
    private void record(String op, Object... namesAndValues) {
        recorded.add(new Entry(phase, op, namesAndValues));
        timeline.mark();
    }

    /** "x(3744,5120)bf16 w(5120,5120)bf16": the name, shape and dtype of each non-null tensor; other values as given. */
    private static String operands(Object... namesAndValues) {
        StringJoiner j = new StringJoiner(" ");
        for (int i = 0; i < namesAndValues.length; i += 2) {
            Object v = namesAndValues[i + 1];
            if (v == null) continue;
            if (v instanceof Tensor t) {
                j.add(namesAndValues[i] + shape(t.shape()) + t.dtype().name().toLowerCase(java.util.Locale.ROOT));
            } else {
                j.add(namesAndValues[i] + "=" + v);
            }
        }
        return j.toString();
    }

    private static String shape(Shape s) {
        StringJoiner j = new StringJoiner(",", "(", ")");
        for (long d : s.dims()) j.add(Long.toString(d));
        return j.toString();
    }

    // ---------------------------------------------------------------- forwarded ops

    @Override
    public String name() { return inner.name(); }

    @Override
    public DeviceFacts device() { return inner.device(); }

    @Override
    public Tensor allocate(DType dtype, Shape shape) { return inner.allocate(dtype, shape); }

    @Override
    public Tensor fromFloats(DType dtype, Shape shape, float[] values) { return inner.fromFloats(dtype, shape, values); }

    @Override
    public Tensor fromBytes(DType dtype, Shape shape, MemorySegment bytes) { return inner.fromBytes(dtype, shape, bytes); }

    @Override
    public void write(Tensor dst, float[] values) {
        inner.write(dst, values);
        if (isRecording) record("write", "dst", dst);
    }

    @Override
    public void writeBytes(Tensor dst, dev.wanlora.engine.io.ByteSource bytes) {
        inner.writeBytes(dst, bytes);
        if (isRecording) record("writeBytes", "dst", dst);
    }

    @Override
    public float[] toFloats(Tensor t) {
        float[] v = inner.toFloats(t);
        if (isRecording) record("toFloats", "t", t);
        return v;
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        inner.copy(dst, src);
        if (isRecording) record("copy", "dst", dst, "src", src);
    }

    @Override
    public void fill(Tensor t, float value) {
        inner.fill(t, value);
        if (isRecording) record("fill", "t", t);
    }

    @Override
    public void synchronize() { inner.synchronize(); }

    @Override
    public void gemm(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta, Tensor bias) {
        inner.gemm(c, a, transA, b, transB, alpha, beta, bias);
        if (isRecording) {
            record("gemm", "c", c, transA ? "aᵀ" : "a", a, transB ? "bᵀ" : "b", b, "bias", bias,
                    "beta", beta == 0 ? null : beta);
        }
    }

    @Override
    public void dequantizeFp8(Tensor out, Tensor wq, Tensor scale) {
        inner.dequantizeFp8(out, wq, scale);
        if (isRecording) record("dequantizeFp8", "out", out, "scale", scale);
    }

    @Override
    public void quantizeFp8(Tensor codes, Tensor scale, Tensor w) {
        inner.quantizeFp8(codes, scale, w);
        if (isRecording) record("quantizeFp8", "w", w, "codes", codes, "scale", scale);
    }

    @Override
    public void layerNorm(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias, float eps) {
        inner.layerNorm(out, mean, rstd, x, weight, bias, eps);
        if (isRecording) record("layerNorm", "x", x, "out", out, "weight", weight);
    }

    @Override
    public void layerNormBackward(Tensor dx, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor x, Tensor weight,
                                  Tensor mean, Tensor rstd, boolean accumulate) {
        inner.layerNormBackward(dx, dWeight, dBias, dOut, x, weight, mean, rstd, accumulate);
        if (isRecording) record("layerNormBackward", "dx", dx, "x", x, "weight", weight);
    }

    @Override
    public void rmsNorm(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
        inner.rmsNorm(out, rstd, x, weight, eps);
        if (isRecording) record("rmsNorm", "x", x, "out", out);
    }

    @Override
    public void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dOut, Tensor x, Tensor weight, Tensor rstd) {
        inner.rmsNormBackward(dx, dWeight, dOut, x, weight, rstd);
        if (isRecording) record("rmsNormBackward", "dx", dx, "x", x);
    }

    @Override
    public void modulate(Tensor out, Tensor x, Tensor mod, int shiftIndex, int scaleIndex) {
        inner.modulate(out, x, mod, shiftIndex, scaleIndex);
        if (isRecording) record("modulate", "out", out, "x", x);
    }

    @Override
    public void modulateBackward(Tensor dx, Tensor dOut, Tensor mod, int scaleIndex) {
        inner.modulateBackward(dx, dOut, mod, scaleIndex);
        if (isRecording) record("modulateBackward", "dx", dx, "dOut", dOut);
    }

    @Override
    public void gatedResidual(Tensor x, Tensor y, Tensor mod, int gateIndex) {
        inner.gatedResidual(x, y, mod, gateIndex);
        if (isRecording) record("gatedResidual", "x", x, "y", y);
    }

    @Override
    public void gatedResidualBackward(Tensor dy, Tensor dx, Tensor mod, int gateIndex) {
        inner.gatedResidualBackward(dy, dx, mod, gateIndex);
        if (isRecording) record("gatedResidualBackward", "dy", dy, "dx", dx);
    }

    @Override
    public void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int numHeads) {
        inner.rope(out, x, cos, sin, numHeads);
        if (isRecording) record("rope", "x", x);
    }

    @Override
    public void ropeBackward(Tensor dx, Tensor dOut, Tensor cos, Tensor sin, int numHeads) {
        inner.ropeBackward(dx, dOut, cos, sin, numHeads);
        if (isRecording) record("ropeBackward", "dOut", dOut);
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int numHeads) {
        inner.attention(out, lse, q, k, v, numHeads);
        if (isRecording) record("attention", "q", q, "k", k, "heads", numHeads);
    }

    @Override
    public void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out,
                                  Tensor lse, int numHeads) {
        inner.attentionBackward(dq, dk, dv, dOut, q, k, v, out, lse, numHeads);
        if (isRecording) record("attentionBackward", "q", q, "k", k, "heads", numHeads);
    }

    @Override
    public void embedding(Tensor out, Tensor table, Tensor ids) {
        inner.embedding(out, table, ids);
        if (isRecording) record("embedding", "out", out);
    }

    @Override
    public void relativePositionBias(Tensor out, Tensor table, Tensor buckets) {
        inner.relativePositionBias(out, table, buckets);
        if (isRecording) record("relativePositionBias", "out", out);
    }

    @Override
    public void attentionWithBias(Tensor out, Tensor q, Tensor k, Tensor v, Tensor bias, Tensor keyMask, int numHeads) {
        inner.attentionWithBias(out, q, k, v, bias, keyMask, numHeads);
        if (isRecording) record("attentionWithBias", "q", q, "k", k);
    }

    @Override
    public void gatedGelu(Tensor out, Tensor gate, Tensor x) {
        inner.gatedGelu(out, gate, x);
        if (isRecording) record("gatedGelu", "x", x);
    }

    @Override
    public void geluTanh(Tensor out, Tensor x) {
        inner.geluTanh(out, x);
        if (isRecording) record("geluTanh", "x", x);
    }

    @Override
    public void geluTanhBackward(Tensor dx, Tensor dOut, Tensor x) {
        inner.geluTanhBackward(dx, dOut, x);
        if (isRecording) record("geluTanhBackward", "x", x);
    }

    @Override
    public void silu(Tensor out, Tensor x) {
        inner.silu(out, x);
        if (isRecording) record("silu", "x", x);
    }

    @Override
    public void add(Tensor out, Tensor a, Tensor b) {
        inner.add(out, a, b);
        if (isRecording) record("add", "out", out, "a", a, "b", b);
    }

    @Override
    public void addRowVector(Tensor out, Tensor x, Tensor v) {
        inner.addRowVector(out, x, v);
        if (isRecording) record("addRowVector", "out", out, "x", x);
    }

    @Override
    public void scale(Tensor out, Tensor x, float alpha) {
        inner.scale(out, x, alpha);
        if (isRecording) record("scale", "x", x);
    }

    @Override
    public void conv3d(Tensor out, Tensor cache, Tensor x, Tensor weight, Tensor bias, ConvGeometry geometry) {
        inner.conv3d(out, cache, x, weight, bias, geometry);
        if (isRecording) record("conv3d", "cache", cache, "x", x, "weight", weight);
    }

    @Override
    public void upsampleNearest2x(Tensor out, Tensor x) {
        inner.upsampleNearest2x(out, x);
        if (isRecording) record("upsampleNearest2x", "x", x);
    }

    @Override
    public void softmax(Tensor out, Tensor x, float scale) {
        inner.softmax(out, x, scale);
        if (isRecording) record("softmax", "x", x);
    }

    @Override
    public void patchify(Tensor out, Tensor latents, int channels, int frames, int height, int width) {
        inner.patchify(out, latents, channels, frames, height, width);
        if (isRecording) record("patchify", "latents", latents);
    }

    @Override
    public void unpatchify(Tensor out, Tensor tokens, int channels, int frames, int height, int width) {
        inner.unpatchify(out, tokens, channels, frames, height, width);
        if (isRecording) record("unpatchify", "tokens", tokens);
    }

    @Override
    public void unpatchifyBackward(Tensor dTokens, Tensor dOut, int channels, int frames, int height, int width) {
        inner.unpatchifyBackward(dTokens, dOut, channels, frames, height, width);
        if (isRecording) record("unpatchifyBackward", "dTokens", dTokens);
    }

    @Override
    public void sinusoidalEmbedding(Tensor out, Tensor timesteps) {
        inner.sinusoidalEmbedding(out, timesteps);
        if (isRecording) record("sinusoidalEmbedding", "out", out);
    }

    @Override
    public void gaussianNoise(Tensor out, long seed, long offset) {
        inner.gaussianNoise(out, seed, offset);
        if (isRecording) record("gaussianNoise", "out", out);
    }

    @Override
    public void flowMatchingInput(Tensor xt, Tensor target, Tensor x0, Tensor noise, Tensor t) {
        inner.flowMatchingInput(xt, target, x0, noise, t);
        if (isRecording) record("flowMatchingInput", "xt", xt);
    }

    @Override
    public void mseLoss(Tensor loss, Tensor dPred, Tensor pred, Tensor target, float gradScale) {
        inner.mseLoss(loss, dPred, pred, target, gradScale);
        if (isRecording) record("mseLoss", "pred", pred);
    }

    @Override
    public void sumOfSquares(Tensor normSquared, Tensor g) {
        inner.sumOfSquares(normSquared, g);
        if (isRecording) record("sumOfSquares", "g", g);
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, AdamWStep hyper) {
        inner.adamw(param, grad, m, v, gradScale, hyper);
        if (isRecording) record("adamw", "param", param);
    }

    @Override
    public void adamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes, Tensor vAbsMax,
                          Tensor gradScale, AdamWStep hyper) {
        inner.adamw8bit(param, grad, mCodes, mAbsMax, vCodes, vAbsMax, gradScale, hyper);
        if (isRecording) record("adamw8bit", "param", param);
    }

    @Override
    public void prodigyAccumulate(Tensor param, Tensor grad, Tensor p0, Tensor m, Tensor v, Tensor s, Tensor gradScale,
                                  Tensor state, ProdigyStep hyper) {
        inner.prodigyAccumulate(param, grad, p0, m, v, s, gradScale, state, hyper);
        if (isRecording) record("prodigyAccumulate", "param", param);
    }

    @Override
    public void prodigyAdapt(Tensor state, ProdigyStep hyper) {
        inner.prodigyAdapt(state, hyper);
        if (isRecording) record("prodigyAdapt", "state", state);
    }

    @Override
    public void prodigyUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, Tensor state,
                              ProdigyStep hyper) {
        inner.prodigyUpdate(param, grad, m, v, gradScale, state, hyper);
        if (isRecording) record("prodigyUpdate", "param", param);
    }

    @Override
    public void adafactor(Tensor param, Tensor grad, Tensor m, Tensor row, Tensor col, Tensor v, Tensor gradScale,
                          AdafactorStep hyper) {
        inner.adafactor(param, grad, m, row, col, v, gradScale, hyper);
        if (isRecording) record("adafactor", "param", param);
    }

    @Override
    public void clipCoefficient(Tensor clip, Tensor normSquared, float maxNorm) {
        inner.clipCoefficient(clip, normSquared, maxNorm);
        if (isRecording) record("clipCoefficient");
    }

    /** Closes the timeline, not the wrapped backend (its owner closes it). */
    @Override
    public void close() { timeline.close(); }
}
