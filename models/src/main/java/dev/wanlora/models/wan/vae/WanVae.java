package dev.wanlora.models.wan.vae;

import dev.wanlora.engine.backend.Backend.ConvGeometry;
import dev.wanlora.engine.backend.Backend;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;
import dev.wanlora.models.wan.vae.WanVaeWeights.Attention;
import dev.wanlora.models.wan.vae.WanVaeWeights.Conv;
import dev.wanlora.models.wan.vae.WanVaeWeights.Layer;
import dev.wanlora.models.wan.vae.WanVaeWeights.ResBlock;
import dev.wanlora.models.wan.vae.WanVaeWeights.Resample;
import dev.wanlora.models.wan.vae.WanVaeWeights.ResampleMode;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The Wan 2.1 VAE's decoder and encoder with musubi's chunked causal processing (spec §12; musubi-tuner
 * {@code src/musubi_tuner/wan/modules/vae.py} at commit 30c658c, {@code WanVAE_.decode} / {@code encode}).
 *
 * <p><b>Layout.</b> Activations are channels-last frames (F, H, W, C) of one video (batch 1): a frame is one contiguous
 * block, so a causal convolution's 2-frame cache is a (2, H, W, C) tensor handed to {@link Backend#conv3d} beside
 * the chunk, and the VAE's RMS_norm over channels is {@link Backend#rmsNorm} over rows of C.
 *
 * <p><b>Chunks and caches.</b> The decoder runs one latent frame at a time, the encoder on pixel frames [0], [1‑4],
 * [5‑8], …. Every 3³ CausalConv3d keeps the last 2 frames of its input stream (zeros before the first chunk), which
 * makes the chunked result equal a continuous causal convolution. upsample3d skips its {@code time_conv} for latent
 * frame 0 (musubi's 'Rep' cache) and runs it on [0, 0, f₁, f₂, …] afterwards; downsample3d passes the first chunk's
 * frame through and later prefixes each chunk with the previous last frame (stride 2, no padding).
 *
 * <p><b>Memory</b> is flat in the number of frames: the caches and a pool of per-chunk buffers are sized by one chunk
 * (1 latent frame → 4 pixel frames); decoded frames leave through a {@link FrameSink} as they are made.
 * {@link #decodeWorkingBytes} states the budget; for the release model at 832×480 in bf16 it is 4.39 GiB
 * (see that method), whatever the frame count.
 */
public final class WanVae implements AutoCloseable {

    /** Receives an intermediate, one chunk at a time: (F, H, W, C) channels-last, valid during the call. */
    public interface Probe {
        void accept(String name, Tensor chunk);
    }

    /** Receives each decoded pixel frame as (H, W, 3) channels-last floats clamped to [−1, 1]. */
    public interface FrameSink {
        void accept(int frame, float[] rgb);
    }

    private static final Probe NO_PROBE = (name, chunk) -> {};

    private final Backend backend;
    private final WanVaeWeights weights;
    private final DType dtype;
    private final Pool pool;
    /** Each causal convolution's frame cache: (2, H, W, Cin) for 3³ and upsample3d, (1, H, W, C) for downsample3d. */
    private final Map<Conv, Tensor> caches = new IdentityHashMap<>();
    /** The temporal resamplers that have seen their first chunk. */
    private final Set<Resample> started = new HashSet<>();

    public WanVae(Backend backend, WanVaeWeights weights) {
        this.backend = backend;
        this.weights = weights;
        this.dtype = weights.dtype();
        this.pool = new Pool(backend);
    }

    // ---------------------------------------------------------------- decode

    /**
     * Decodes a normalised latent (the DiT's output) to pixels: z = z_norm / (1/std) + mean (float32, as musubi), then
     * {@code conv2}, then the decoder one latent frame at a time. latent is (16, T, h, w) row-major; the sink gets
     * 1 + 4(T − 1) frames of (8h, 8w, 3), clamped to [−1, 1].
     */
    public void decode(float[] latent, int frames, int height, int width, FrameSink sink, Probe probe) {
        WanVaeWeights.Decoder dec = requireDecoder();
        int z = weights.config().zDim();
        if (frames < 1 || height < 1 || width < 1 || latent.length != (long) z * frames * height * width) {
            throw new IllegalArgumentException("decode: latent of " + latent.length + " values for T=" + frames + ", h="
                    + height + ", w=" + width + "; expected (" + z + ", T, h, w) with T, h, w >= 1");
        }
        resetState();
        int plane = height * width;
        float[] denorm = new float[latent.length];              // (T, h, w, z) channels-last
        for (int c = 0; c < z; c++) {
            float mean = WanVaeConfig.LATENT_MEAN[c], invStd = 1f / WanVaeConfig.LATENT_STD[c];
            for (int t = 0; t < frames; t++) {
                for (int p = 0; p < plane; p++) {
                    denorm[((t * plane) + p) * z + c] = latent[(c * frames + t) * plane + p] / invStd + mean;
                }
            }
        }
        Shape latentShape = Shape.of(frames, height, width, z);
        try (Tensor zDenorm = backend.fromFloats(dtype, latentShape, denorm);
             Tensor zIn = backend.allocate(dtype, latentShape)) {
            probe.accept("z_denorm", zDenorm);
            linear(zIn, zDenorm, weights.conv2());
            probe.accept("conv2", zIn);
            long frameElements = (long) plane * z;
            int frameSize = 64 * plane * 3, pixelFrame = 0;
            float[] previous = null; // the last chunk's pixels, handed to the sink while the device decodes the next
            for (int t = 0; t < frames; t++) {
                Tensor chunk = zIn.view(t * frameElements, Shape.of(1, height, width, z));
                Tensor video = decodeChunk(dec, chunk, probe);
                if (previous != null) pixelFrame = emit(previous, frameSize, pixelFrame, sink);
                previous = backend.toFloats(video);
                pool.release(video);
                if (t == 0) pool.clear(); // latent frame 0's buffers (1 frame at every stage) are never used again
            }
            emit(previous, frameSize, pixelFrame, sink);
        }
    }

    /**
     * Clamps a chunk's (F, 8h, 8w, 3) pixels to [−1, 1] and hands them to the sink frame by frame; returns the next
     * frame number. {@link #decode} calls it after queueing the next chunk, so this host work overlaps device work.
     */
    private static int emit(float[] rgb, int frameSize, int firstFrame, FrameSink sink) {
        int frame = firstFrame;
        for (int f = 0; f < rgb.length / frameSize; f++) {
            float[] pixels = new float[frameSize];
            for (int i = 0; i < frameSize; i++) pixels[i] = Math.clamp(rgb[f * frameSize + i], -1f, 1f);
            sink.accept(frame++, pixels);
        }
        return frame;
    }

    /** {@link #decode} into one array (3, 1 + 4(T − 1), 8h, 8w), as musubi's {@code WanVAE.decode} returns it. */
    public float[] decode(float[] latent, int frames, int height, int width) {
        int outFrames = WanVaeConfig.pixelFrames(frames), plane = 64 * height * width;
        float[] video = new float[3 * outFrames * plane];
        decode(latent, frames, height, width, (f, rgb) -> {
            for (int p = 0; p < plane; p++) {
                for (int c = 0; c < 3; c++) video[(c * outFrames + f) * plane + p] = rgb[p * 3 + c];
            }
        }, NO_PROBE);
        return video;
    }

    /** One latent frame through Decoder3d: (1, h, w, z) → (1 or 4, 8h, 8w, 3). */
    private Tensor decodeChunk(WanVaeWeights.Decoder dec, Tensor chunk, Probe probe) {
        Tensor x = causalConv(dec.conv1(), chunk);
        probe.accept("decoder.conv1", x);
        x = step(x, resBlock(dec.middle0(), x));
        x = step(x, attention(dec.attention(), x));
        x = step(x, resBlock(dec.middle2(), x));
        probe.accept("decoder.middle", x);
        List<Layer> ups = dec.upsamples();
        int stage = 0;
        for (Layer layer : ups) {
            x = step(x, layer(layer, x));
            if (layer instanceof Resample || layer == ups.getLast()) probe.accept("decoder.stage" + stage++, x);
        }
        Tensor n = normSilu(x, dec.headGamma());
        pool.release(x);
        Tensor out = causalConv(dec.head(), n);
        pool.release(n);
        return out;
    }

    // ---------------------------------------------------------------- encode

    /**
     * Encodes pixels in [−1, 1] to the normalised latent musubi caches: the encoder on chunks of frames [0], [1‑4], …,
     * {@code conv1}, μ = its first 16 channels, z_norm = (μ − mean)·(1/std). video is (3, T, H, W) row-major with H, W
     * multiples of 8; frames beyond 1 + 4·⌊(T − 1)/4⌋ are dropped (as musubi). Returns (16, 1 + ⌊(T − 1)/4⌋, H/8, W/8).
     */
    public float[] encode(float[] video, int frames, int height, int width, Probe probe) {
        WanVaeWeights.Encoder enc = requireEncoder();
        if (frames < 1 || height % 8 != 0 || width % 8 != 0 || height < 8 || width < 8
                || video.length != 3L * frames * height * width) {
            throw new IllegalArgumentException("encode: video of " + video.length + " values for T=" + frames + ", H="
                    + height + ", W=" + width + "; expected (3, T, H, W) with T >= 1 and H, W positive multiples of 8");
        }
        resetState();
        int z = weights.config().zDim(), chunks = 1 + (frames - 1) / 4;
        int h = height / 8, w = width / 8, plane = height * width, latentPlane = h * w;
        float[] latent = new float[z * chunks * latentPlane];
        try (Tensor mu = backend.allocate(dtype, Shape.of(1, h, w, 2 * z))) {
            for (int k = 0; k < chunks; k++) {
                int first = k == 0 ? 0 : 1 + 4 * (k - 1), count = k == 0 ? 1 : 4;
                float[] pixels = new float[count * plane * 3];
                for (int f = 0; f < count; f++) {
                    for (int p = 0; p < plane; p++) {
                        for (int c = 0; c < 3; c++) pixels[(f * plane + p) * 3 + c] = video[(c * frames + first + f) * plane + p];
                    }
                }
                Tensor chunk = pool.take(dtype, Shape.of(count, height, width, 3));
                backend.write(chunk, pixels);
                Tensor out = encodeChunk(enc, chunk);
                pool.release(chunk);
                probe.accept("encoder.out", out);
                linear(mu, out, weights.conv1());
                pool.release(out);
                probe.accept("conv1", mu);
                float[] m = backend.toFloats(mu);
                for (int c = 0; c < z; c++) {
                    float mean = WanVaeConfig.LATENT_MEAN[c], invStd = 1f / WanVaeConfig.LATENT_STD[c];
                    for (int p = 0; p < latentPlane; p++) {
                        latent[(c * chunks + k) * latentPlane + p] = (m[p * 2 * z + c] - mean) * invStd;
                    }
                }
            }
        }
        return latent;
    }

    /** Pixel frames of one chunk through Encoder3d: (1 or 4, H, W, 3) → (1, H/8, W/8, 2z). */
    private Tensor encodeChunk(WanVaeWeights.Encoder enc, Tensor chunk) {
        Tensor x = causalConv(enc.conv1(), chunk);
        for (Layer layer : enc.downsamples()) x = step(x, layer(layer, x));
        x = step(x, resBlock(enc.middle0(), x));
        x = step(x, attention(enc.attention(), x));
        x = step(x, resBlock(enc.middle2(), x));
        Tensor n = normSilu(x, enc.headGamma());
        pool.release(x);
        Tensor out = causalConv(enc.head(), n);
        pool.release(n);
        return out;
    }

    // ---------------------------------------------------------------- layers (inputs stay owned by the caller)

    private Tensor layer(Layer layer, Tensor x) {
        return switch (layer) {
            case ResBlock b -> resBlock(b, x);
            case Resample r -> switch (r.mode()) {
                case UPSAMPLE2D, UPSAMPLE3D -> upsample(r, x);
                case DOWNSAMPLE2D, DOWNSAMPLE3D -> downsample(r, x);
            };
        };
    }

    /** ResidualBlock: conv2(SiLU(RMS(conv1(SiLU(RMS(x)))))) + shortcut(x). */
    private Tensor resBlock(ResBlock b, Tensor x) {
        Tensor n1 = normSilu(x, b.gamma1());
        Tensor h = causalConv(b.conv1(), n1);
        pool.release(n1);
        Tensor n2 = normSilu(h, b.gamma2());
        pool.release(h);
        Tensor out = causalConv(b.conv2(), n2);
        pool.release(n2);
        if (b.shortcut() == null) {
            backend.add(out, out, x);
        } else {
            Tensor s = pool.take(dtype, out.shape());
            linear(s, x, b.shortcut());
            backend.add(out, out, s);
            pool.release(s);
        }
        return out;
    }

    /**
     * AttentionBlock, per frame: n = RMS(x); q, k, v = to_qkv(n); out = x + proj(softmax(q·kᵀ/√C)·v), one head of C.
     * Scores are F32, probabilities in the activation dtype (bf16 on the device, like torch's bf16 attention).
     */
    private Tensor attention(Attention a, Tensor x) {
        long frames = x.shape().dim(0), tokens = x.shape().dim(1) * x.shape().dim(2), c = x.shape().dim(3);
        Tensor n = pool.take(dtype, x.shape());
        rmsNorm(n, x, a.gamma());
        Shape rows = Shape.of(frames * tokens, c);
        Tensor q = pool.take(dtype, rows), k = pool.take(dtype, rows), v = pool.take(dtype, rows);
        linear(q, n, a.q());
        linear(k, n, a.k());
        linear(v, n, a.v());
        pool.release(n);
        Tensor o = pool.take(dtype, rows);
        Tensor scores = pool.take(DType.F32, Shape.of(tokens, tokens)), probs = pool.take(dtype, Shape.of(tokens, tokens));
        Shape frameRows = Shape.of(tokens, c);
        float scale = (float) (1 / Math.sqrt(c));
        for (long f = 0; f < frames; f++) {
            long off = f * tokens * c;
            backend.gemm(scores, q.view(off, frameRows), false, k.view(off, frameRows), true, scale, 0, null);
            backend.softmax(probs, scores, 1);
            backend.gemm(o.view(off, frameRows), probs, false, v.view(off, frameRows), false, 1, 0, null);
        }
        pool.release(scores);
        pool.release(probs);
        pool.release(q);
        pool.release(k);
        pool.release(v);
        Tensor out = pool.take(dtype, x.shape());
        backend.gemm(out.reshape(rows), o, false, a.proj().weight(), true, 1, 0, a.proj().bias());
        pool.release(o);
        backend.add(out, out, x);
        return out;
    }

    /**
     * upsample3d / upsample2d. upsample3d's time_conv (C → 2C, kernel (3,1,1)) turns each frame into two: output
     * channels [0, C) become frame 2t, [C, 2C) frame 2t + 1; it is skipped for the first chunk. Then per frame:
     * nearest 2×, Conv2d 3×3 C → C/2.
     */
    private Tensor upsample(Resample r, Tensor x) {
        long f = x.shape().dim(0), h = x.shape().dim(1), w = x.shape().dim(2), c = x.shape().dim(3);
        Tensor frames = x;
        if (r.mode() == ResampleMode.UPSAMPLE3D) {
            if (started.add(r)) {
                cache(r.timeConv(), Shape.of(2, h, w, c)); // zeros: musubi's 'Rep'
            } else {
                Shape one = Shape.of(1, h, w, c);
                long frameElements = one.numElements();
                Tensor cache = cache(r.timeConv(), Shape.of(2, h, w, c));
                Tensor tw = r.timeConv().weight(), tb = r.timeConv().bias();
                long half = tw.numElements() / 2;
                Tensor[] halfWeights = {tw.view(0, Shape.of(c, 3, 1, 1, c)), tw.view(half, Shape.of(c, 3, 1, 1, c))};
                Tensor[] halfBiases = {tb.view(0, Shape.of(c)), tb.view(c, Shape.of(c))};
                frames = pool.take(dtype, Shape.of(2 * f, h, w, c));
                for (long t = 0; t < f; t++) {
                    Tensor xt = x.view(t * frameElements, one);
                    for (int s = 0; s < 2; s++) {
                        backend.conv3d(frames.view((2 * t + s) * frameElements, one), cache, xt, halfWeights[s],
                                halfBiases[s], ConvGeometry.same(0));
                    }
                    pushFrames(cache, xt);
                }
            }
        }
        Tensor up = pool.take(dtype, Shape.of(frames.shape().dim(0), 2 * h, 2 * w, c));
        backend.upsampleNearest2x(up, frames);
        if (frames != x) pool.release(frames);
        Tensor out = pool.take(dtype, Shape.of(up.shape().dim(0), 2 * h, 2 * w, r.resample().outChannels()));
        backend.conv3d(out, null, up, r.resample().weight(), r.resample().bias(), ConvGeometry.same(1));
        pool.release(up);
        return out;
    }

    /**
     * downsample2d / downsample3d: per frame ZeroPad2d((0,1,0,1)) and Conv2d 3×3 stride 2; downsample3d then runs
     * time_conv (kernel (3,1,1), stride 2, no padding) on [previous chunk's last frame, chunk], except for the first
     * chunk, whose frame passes through.
     */
    private Tensor downsample(Resample r, Tensor x) {
        long f = x.shape().dim(0), h = x.shape().dim(1) / 2, w = x.shape().dim(2) / 2, c = r.resample().outChannels();
        Tensor spatial = pool.take(dtype, Shape.of(f, h, w, c));
        backend.conv3d(spatial, null, x, r.resample().weight(), r.resample().bias(), new ConvGeometry(1, 2, 0, 1));
        if (r.mode() == ResampleMode.DOWNSAMPLE2D) return spatial;
        Shape one = Shape.of(1, h, w, c);
        Tensor cache = cache(r.timeConv(), one);
        Tensor last = spatial.view((f - 1) * one.numElements(), one);
        if (started.add(r)) {
            backend.copy(cache, last);
            return spatial;
        }
        Tensor out = pool.take(dtype, Shape.of((f - 2) / 2 + 1, h, w, c));
        backend.conv3d(out, cache, spatial, r.timeConv().weight(), r.timeConv().bias(), new ConvGeometry(2, 1, 0, 0));
        backend.copy(cache, last);
        pool.release(spatial);
        return out;
    }

    /** A 3³ CausalConv3d (padding 1) on the chunk with its 2-frame cache, which then takes the stream's last 2 frames. */
    private Tensor causalConv(Conv conv, Tensor x) {
        long h = x.shape().dim(1), w = x.shape().dim(2);
        Tensor cache = cache(conv, Shape.of(2, h, w, x.shape().dim(3)));
        Tensor out = pool.take(dtype, Shape.of(x.shape().dim(0), h, w, conv.outChannels()));
        backend.conv3d(out, cache, x, conv.weight(), conv.bias(), ConvGeometry.same(1));
        pushFrames(cache, x);
        return out;
    }

    /** cache (2, H, W, C) = the last 2 frames of concat(cache, x). */
    private void pushFrames(Tensor cache, Tensor x) {
        long frames = x.shape().dim(0);
        Shape one = Shape.of(1, cache.shape().dim(1), cache.shape().dim(2), cache.shape().dim(3));
        long n = one.numElements();
        if (frames >= 2) {
            backend.copy(cache, x.view((frames - 2) * n, cache.shape()));
        } else {
            backend.copy(cache.view(0, one), cache.view(n, one));
            backend.copy(cache.view(n, one), x);
        }
    }

    /** A 1×1 convolution as a GEMM over the (F·H·W, Cin) rows. */
    private void linear(Tensor out, Tensor x, Conv conv) {
        long rows = x.numElements() / x.shape().dim(-1);
        backend.gemm(out.reshape(Shape.of(rows, conv.outChannels())), x.reshape(Shape.of(rows, x.shape().dim(-1))), false,
                conv.weight(), true, 1, 0, conv.bias());
    }

    /** SiLU(RMS_norm(x)) into a new pool buffer, as one {@link Backend#rmsNormSilu} (the eps of {@link #rmsNorm}). */
    private Tensor normSilu(Tensor x, Tensor gamma) {
        Tensor out = pool.take(dtype, x.shape());
        long c = x.shape().dim(-1), rows = x.numElements() / c;
        Tensor rstd = pool.take(DType.F32, Shape.of(rows));
        backend.rmsNormSilu(out.reshape(Shape.of(rows, c)), rstd, x.reshape(Shape.of(rows, c)), gamma, (float) (1e-24 / c));
        pool.release(rstd);
        return out;
    }

    /**
     * Musubi's RMS_norm over channels, F.normalize(x, dim=1)·√C·γ = x / max(‖x‖₂, 1e-12)·√C·γ, as
     * {@link Backend#rmsNorm} x·rsqrt(mean(x²) + eps)·γ with eps = 1e-24/C: the same value wherever ‖x‖² ≫ 1e-24, and
     * 0 (not NaN) for an all-zero position, as F.normalize gives.
     */
    private void rmsNorm(Tensor out, Tensor x, Tensor gamma) {
        long c = x.shape().dim(-1), rows = x.numElements() / c;
        Tensor rstd = pool.take(DType.F32, Shape.of(rows));
        backend.rmsNorm(out.reshape(Shape.of(rows, c)), rstd, x.reshape(Shape.of(rows, c)), gamma, (float) (1e-24 / c));
        pool.release(rstd);
    }

    /** Returns next after releasing x (a chunk step that replaces its input). */
    private Tensor step(Tensor x, Tensor next) {
        pool.release(x);
        return next;
    }

    /** conv's frame cache, created as zeros on first use. */
    private Tensor cache(Conv conv, Shape shape) {
        Tensor c = caches.get(conv);
        if (c != null && c.shape().equals(shape)) return c;
        if (c != null) c.close();
        c = backend.allocate(dtype, shape);
        caches.put(conv, c);
        return c;
    }

    /** Starts a new video: every cache back to zeros, every temporal resampler back to its first-chunk rule. */
    private void resetState() {
        for (Tensor c : caches.values()) backend.fill(c, 0);
        started.clear();
    }

    private WanVaeWeights.Decoder requireDecoder() {
        if (weights.decoder() == null) throw new IllegalStateException("decode: the VAE was loaded without its decoder");
        return weights.decoder();
    }

    private WanVaeWeights.Encoder requireEncoder() {
        if (weights.encoder() == null) throw new IllegalStateException("encode: the VAE was loaded without its encoder");
        return weights.encoder();
    }

    /**
     * The device memory {@link #decode} holds besides the weights, for a latent of h×w (pixels 8h×8w) and any number
     * of frames: frame caches plus the per-chunk buffer pool, both sized by one chunk; nothing grows with the frame
     * count except the latent itself (2·T·h·w·16 elements: the de-normalised input and {@code conv2}'s output, 7.6 MiB
     * for 21 latent frames at 60×104 in bf16). With b bytes per element, d the base dim and p = h·w:
     * <ul>
     * <li>caches, 2 frames of each causal conv's input: p·16 (conv1) + 10·p·4d (middle and upsamples 0‑2, ten 3³ convs)
     *     + p·4d (upsample 3's time_conv) + 4p·(2d + 4d) (upsample 4) + 4·4p·4d (5‑6) + 4p·4d (7's time_conv)
     *     + 6·16p·2d (8‑10) + 7·64p·d (12‑14 and the head), all × 2b;</li>
     * <li>pool, the buffers alive at once by shape (a resblock holds input, norm and hidden; the attention q, k, v, its
     *     output and the p×p scores in F32 and probabilities in b) for a latent frame after the first (1, 2, 4, 4
     *     frames at the four resolutions; frame 0's smaller buffers are freed once it is done):
     *     (3·p·4d + 4·p·4d + 2·4p·(3·4d + 2·2d) + 4·16p·(4d + 3·2d) + 4·64p·(2d + 3d + 3))·b + p²·(4 + b), plus the
     *     upsamplers' time_conv outputs (2·p·4d + 4·4p·4d)·b, plus the F32 row statistics of the norms, one vector per
     *     row count (p, 8p, 64p, 256p): 4·329p bytes.</li>
     * </ul>
     * For the release model (d = 96) at 832×480 (p = 60·104) in bf16 this is 4.39 GiB (decodeWorkingBytes of
     * WanVaeMemoryTest), for 81 frames as for 5; the weights add 0.14 GiB (decoder and conv2 in bf16).
     */
    public static long decodeWorkingBytes(WanVaeConfig config, int height, int width, DType dtype) {
        long b = dtype.sizeBytes(), d = config.dim(), p = (long) height * width, z = config.zDim();
        long caches = p * z + 10 * p * 4 * d + p * 4 * d + 4 * p * (2 * d + 4 * d) + 4 * 4 * p * 4 * d + 4 * p * 4 * d
                + 6 * 16 * p * 2 * d + 7 * 64 * p * d;
        long pool = (3 * p * 4 * d + 4 * p * 4 * d + 2 * 4 * p * (3 * 4 * d + 2 * 2 * d) + 4 * 16 * p * (4 * d + 3 * 2 * d)
                + 4 * 64 * p * (2 * d + 3 * d + 3)) * b + p * p * (4 + b);
        long timeConvOutputs = (2 * p * 4 * d + 4 * 4 * p * 4 * d) * b;
        long rowStatistics = 4 * p * (1 + 8 + 64 + 256);
        return 2 * caches * b + pool + timeConvOutputs + rowStatistics;
    }

    /** Bytes held now by the frame caches and the buffer pool (weights not included). */
    public long workingBytes() {
        return caches.values().stream().mapToLong(Tensor::sizeBytes).sum() + pool.sizeBytes();
    }

    @Override
    public void close() {
        caches.values().forEach(Tensor::close);
        caches.clear();
        pool.close();
    }

    /**
     * Per-chunk buffers, reused by shape: {@link #take} hands out a free buffer of that dtype and shape or allocates
     * one, {@link #release} returns it. After the first two chunks (latent frame 0, then a steady-state frame) every
     * shape exists and decoding allocates nothing more. Tensors that are not the pool's (views of the latent) are
     * ignored by release.
     */
    private static final class Pool implements AutoCloseable {
        private record Key(DType dtype, Shape shape) {}

        private final Backend backend;
        private final Map<Key, List<Tensor>> free = new HashMap<>();
        private final Set<Tensor> owned = Collections.newSetFromMap(new IdentityHashMap<>());

        Pool(Backend backend) { this.backend = backend; }

        Tensor take(DType dtype, Shape shape) {
            List<Tensor> list = free.get(new Key(dtype, shape));
            if (list != null && !list.isEmpty()) return list.removeLast();
            Tensor t = backend.allocate(dtype, shape);
            owned.add(t);
            return t;
        }

        void release(Tensor t) {
            if (!owned.contains(t)) return;
            free.computeIfAbsent(new Key(t.dtype(), t.shape()), k -> new ArrayList<>()).add(t);
        }

        long sizeBytes() { return owned.stream().mapToLong(Tensor::sizeBytes).sum(); }

        /** Frees every buffer; later takes allocate afresh. */
        void clear() {
            owned.forEach(Tensor::close);
            owned.clear();
            free.clear();
        }

        @Override
        public void close() { clear(); }
    }
}
