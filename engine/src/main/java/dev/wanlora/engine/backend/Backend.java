package dev.wanlora.engine.backend;

import dev.wanlora.engine.io.ByteSource;
import dev.wanlora.engine.tensor.DType;
import dev.wanlora.engine.tensor.Shape;
import dev.wanlora.engine.tensor.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * The one seam between models and hardware (STYLE.md §0.2). Every op the Wan DiT needs, forward and backward.
 *
 * <p><b>Conventions.</b> Outputs come first and are pre-allocated by the caller. Tensors of rank &gt; 2 are seen as
 * (rows, cols) matrices with cols = last dim unless an op says otherwise. Activation gradients are
 * <b>overwritten</b> ({@code =}) unless the op takes an {@code accumulate} flag; parameter gradients are
 * <b>accumulated</b> ({@code +=}) (llm.c's rule). All reductions accumulate in fp32 or wider. Any output may be
 * stored as F32 or BF16: the result is computed in fp32 and rounded (round-to-nearest-even) on store, which is
 * what musubi's bf16 path does at every such point. Inputs may be F32 or BF16 unless an op says otherwise.
 * "Per-sample" vectors such as {@code mod} are (B, n, C) F32: modulation stays in fp32 as in Wan.
 *
 * <p>The CPU backend accepts any F32/BF16 mix; the CUDA backend lists its supported combinations in its
 * {@link UnsupportedOperationException} messages and never falls back to the CPU.
 *
 * <p><b>Adding an op</b> (STYLE.md §3; {@code addRowVector} is a small example to copy):
 * <ol>
 *   <li><b>Contract</b>: the method here. Its Javadoc gives the formula, the shapes, the dtypes, {@code =} or
 *       {@code +=}, and which outputs may alias which inputs. Name the parameters for what they hold: the profile
 *       prints them.</li>
 *   <li><b>Checks</b>, once for every backend: the op's {@code final} method in {@link CheckedBackend} runs the
 *       {@link OpChecks} (add a method there when the op derives dimensions), takes each tensor with {@code own},
 *       applies the contract's aliasing rules, then calls a new {@code protected abstract run<Op>} hook with the
 *       backend's own tensors and the dimensions. Nothing downstream checks arguments again.</li>
 *   <li><b>CPU reference</b>: {@code CpuBackend.run<Op>} calls the scalar reference in its family class
 *       ({@code cpu/CpuNorm}, {@code cpu/CpuElementwise}, …).</li>
 *   <li><b>Kernel</b>: {@code kernels/src/main/cuda/<family>/<op>.cu}, symbols {@code <op>_<pass>_<dtype>}.</li>
 *   <li><b>Kernel entry</b>: one {@code cuda/Kernel} constant per symbol (a test loads them all).</li>
 *   <li><b>Launcher</b>: {@code CudaBackend.run<Op>} calls the launcher in its family class ({@code cuda/CudaNorm},
 *       …), which rejects only the dtype combinations its kernels lack.</li>
 *   <li><b>Tests</b>: hand values on the CPU ({@code cpu/Cpu<Family>Test}) and CUDA-vs-CPU parity
 *       ({@code cuda/Cuda<Family>ParityTest}, {@code @Tag("cuda")}).</li>
 * </ol>
 * The profiler needs nothing: {@link ProfilingBackend} records every method here that takes a tensor.
 */
public interface Backend extends AutoCloseable {

    /** "cpu" or "cuda:0 (NVIDIA H100 80GB HBM3)". */
    String name();

    /** What the device is and holds ({@link DeviceFacts}): asked instead of testing the backend's type. */
    DeviceFacts device();

    // ---------------------------------------------------------------- memory

    /** A new tensor of zeros. */
    Tensor allocate(DType dtype, Shape shape);

    /** A new tensor holding {@code values} (row-major), rounded to {@code dtype}. */
    Tensor fromFloats(DType dtype, Shape shape, float[] values);

    /**
     * A new tensor from raw little-endian bytes already in {@code dtype} (a safetensors slice). Floating dtypes,
     * and U8 for the codes of 8-bit optimizer state ({@code AdamW8bit.loadState}); F16/F8 sources are converted
     * exactly into the backend's storage for that dtype.
     */
    Tensor fromBytes(DType dtype, Shape shape, MemorySegment bytes);

    /**
     * dst = values (row-major), rounded to dst's dtype (F32, BF16, F16, F8_E4M3, F8_E5M2; U8 takes integer codes
     * 0..255), without allocating: the upload of a batch into buffers that every step reuses. {@code values} is read
     * before the call returns, so the caller may reuse the array at once. On a device the copy is queued on the
     * compute stream (ordered after every op queued before it, before every op queued after it) and the host does
     * not wait for it.
     */
    void write(Tensor dst, float[] values);

    /**
     * dst's bytes = {@code bytes} (raw little-endian data already in dst's dtype: a checkpoint tensor's slice), without
     * allocating on the device: the loader's upload path. {@code bytes} has been read completely when the call returns;
     * on a device the data then moves through a pinned staging ring on the compute stream (ordered like
     * {@link #write}) and the host does not wait for it, so reading the next tensor overlaps this one's copy and the
     * conversions queued after it. CUDA reads the source in large pieces on several threads (a cold disk reaches its
     * sequential speed only with several reads in flight). dst must be contiguous.
     */
    void writeBytes(Tensor dst, ByteSource bytes);

    /** The tensor's values widened to float (exact for every supported dtype). Synchronizes. */
    float[] toFloats(Tensor t);

    /** dst = src, converting dtype (rounding to nearest even when narrowing). Shapes must have equal element counts. */
    void copy(Tensor dst, Tensor src);

    /** t = value everywhere. */
    void fill(Tensor t, float value);

    /**
     * How this backend chose its GEMM algorithms, for the bench's report: the first line says how (tuned, cached, the
     * library's first heuristic), each further line one GEMM shape and its algorithm, the shapes with the most work
     * first. Empty where there is no choice (the CPU).
     */
    default java.util.List<String> gemmReport() { return java.util.List.of(); }

    /** Waits until every queued op has finished (a no-op on the CPU). */
    void synchronize();

    /**
     * A new {@link Timeline} on this backend's clock: CUDA events on the compute stream, the host clock on the CPU
     * (whose ops finish before they return). A wrapping backend times on the backend it wraps. The caller closes it.
     */
    Timeline openTimeline();

    // ---------------------------------------------------------------- GEMM

    /**
     * c = alpha·op(a)·op(b) + beta·c (+ bias broadcast over rows when non-null), with op(m) = mᵀ when trans is set.
     * a, b, c are seen as 2-D (rows, cols); op(a) is (M, K), op(b) is (K, N), c is (M, N), bias (N).
     * With beta = 0, c's previous contents are ignored (NaN in c does not propagate). Accumulation is fp32.
     *
     * <p>The three uses in a Linear y = x·wᵀ + b with x (M, K), w (N, K):
     * forward {@code gemm(y, x, false, w, true, 1, 0, b)}; input grad {@code gemm(dx, dy, false, w, false, 1, 0|1, null)};
     * weight grad {@code gemm(dw, dy, true, x, false, 1, 1, null)}.
     */
    void gemm(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB, float alpha, float beta, Tensor bias);

    /**
     * Dequantizes musubi's block-wise fp8 weight (spec §3.2): out[o, i] = bf16(bf16(wq[o, i]) · scale[o, i/64]).
     * wq (O, I) F8_E4M3, scale (O, I/64, 1) BF16 or F32 (the product is rounded to scale's dtype), out (O, I) BF16
     * or F32 (= overwrite).
     */
    void dequantizeFp8(Tensor out, Tensor wq, Tensor scale);

    /**
     * musubi's {@code --fp8_scaled} block quantizer, bit for bit {@code Fp8BlockQuantizer} (spec §3.2; its Javadoc has
     * the upstream lines): for each run of 64 input elements of a row, scale = max(dtype(max|w| / 448), dtype(1e-8))
     * computed in w's dtype (a NaN in the block makes the scale NaN, as torch's amax does), and
     * codes = e4m3(clamp(nan→0(w / scale), ±448)) rounded to nearest even. w (O, I) BF16, F16 or F32 with I % 64 == 0;
     * codes (O, I) F8_E4M3 (=); scale (O, I/64, 1) (=), BF16 for a BF16 w, F32 for F16 and F32 (holding the value
     * rounded to w's dtype, exact in F32). {@link #dequantizeFp8} inverts it the way musubi's patched Linear does.
     */
    void quantizeFp8(Tensor codes, Tensor scale, Tensor w);

    // ---------------------------------------------------------------- norms

    /**
     * LayerNorm over the last dim: out = (x − mean)·rstd·weight + bias, rstd = 1/sqrt(var + eps) with the biased
     * variance. x, out (R, C); weight, bias (C) or null (no affine); mean, rstd (R) F32 saved for backward (=).
     */
    void layerNorm(Tensor out, Tensor mean, Tensor rstd, Tensor x, Tensor weight, Tensor bias, float eps);

    /**
     * Backward of {@link #layerNorm}. dx (R, C): {@code accumulate ? += : =}. dWeight, dBias (C): += when non-null
     * (frozen weights pass null).
     */
    void layerNormBackward(Tensor dx, Tensor dWeight, Tensor dBias, Tensor dOut, Tensor x, Tensor weight,
                           Tensor mean, Tensor rstd, boolean accumulate);

    /**
     * RMSNorm over the last dim as musubi computes it: n = x·rsqrt(mean(x²) + eps) in fp32, rounded to out's dtype,
     * then out = n·weight (weight rounded to out's dtype, product rounded again). x, out (R, C); weight (C);
     * rstd (R) F32 (=).
     */
    void rmsNorm(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps);

    /**
     * SiLU after {@link #rmsNorm}, the Wan VAE's RMS_norm → SiLU pair: out = silu(n) with n rmsNorm's output (both
     * roundings to out's dtype), then silu's rounding. Shapes, dtypes and rstd as rmsNorm; out must not overlap x. This
     * default is the unfused chain, the reference that a backend's fused kernel is tested against.
     */
    default void rmsNormSilu(Tensor out, Tensor rstd, Tensor x, Tensor weight, float eps) {
        rmsNorm(out, rstd, x, weight, eps);
        silu(out, out);
    }

    /** Backward of {@link #rmsNorm}: dx (R, C) overwritten; dWeight (C) += when non-null. */
    void rmsNormBackward(Tensor dx, Tensor dWeight, Tensor dOut, Tensor x, Tensor weight, Tensor rstd);

    // ---------------------------------------------------------------- adaLN modulation (Wan blocks and head)

    /**
     * out[b,l,c] = x[b,l,c]·(1 + mod[b,scaleIndex,c]) + mod[b,shiftIndex,c], computed in fp32.
     * x, out (B, L, C); mod (B, n, C) F32.
     */
    void modulate(Tensor out, Tensor x, Tensor mod, int shiftIndex, int scaleIndex);

    /** Backward of {@link #modulate} w.r.t. x: dx = dOut·(1 + scale) (=). mod is frozen (no gradient). */
    void modulateBackward(Tensor dx, Tensor dOut, Tensor mod, int scaleIndex);

    /**
     * In-place gated residual: x[b,l,c] = x + y·mod[b,gateIndex,c], computed in fp32 and rounded to x's dtype.
     * gateIndex &lt; 0 means no gate (a plain residual add, Wan's cross-attention). x, y (B, L, C); mod (B, n, C) F32.
     */
    void gatedResidual(Tensor x, Tensor y, Tensor mod, int gateIndex);

    /** Backward of {@link #gatedResidual} w.r.t. y: dy = dx·gate (=), or dy = dx with gateIndex &lt; 0. */
    void gatedResidualBackward(Tensor dy, Tensor dx, Tensor mod, int gateIndex);

    // ---------------------------------------------------------------- RoPE and attention

    /**
     * Interleaved-pair rotary embedding (Wan's 3D RoPE; the table is built by {@code Rope3d}): for each token l,
     * head h and pair j, (a, b) = (x[l, h·D + 2j], x[l, h·D + 2j + 1]) becomes
     * (a·cos[l,j] − b·sin[l,j], a·sin[l,j] + b·cos[l,j]). x, out (B, L, N·D) (out may be x); cos, sin (L, D/2) F32.
     */
    void rope(Tensor out, Tensor x, Tensor cos, Tensor sin, int numHeads);

    /** Backward of {@link #rope}: the inverse rotation (angle → −angle) applied to dOut; dx may be dOut. */
    void ropeBackward(Tensor dx, Tensor dOut, Tensor cos, Tensor sin, int numHeads);

    /**
     * Multi-head attention without mask: out = softmax(q·kᵀ/√D)·v per batch and head. q, out (B, Lq, N·D);
     * k, v (B, Lk, N·D); lse (B, N, Lq) F32 = log Σ exp(scores) saved for backward (=).
     */
    void attention(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int numHeads);

    /** Backward of {@link #attention}: dq, dk, dv overwritten. */
    void attentionBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor out,
                           Tensor lse, int numHeads);

    // ---------------------------------------------------------------- activations and elementwise

    /** out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (torch GELU approximate="tanh"). out may be x. */
    void geluTanh(Tensor out, Tensor x);

    /** dx = dOut·gelu'(x) (=). dx may be dOut. */
    void geluTanhBackward(Tensor dx, Tensor dOut, Tensor x);

    /** out = x·sigmoid(x). out may be x. */
    void silu(Tensor out, Tensor x);

    /** out = a + b, elementwise, equal element counts. out may alias a or b. */
    void add(Tensor out, Tensor a, Tensor b);

    /** out[r, c] = x[r, c] + v[c]: a row vector broadcast over rows. out may be x. */
    void addRowVector(Tensor out, Tensor x, Tensor v);

    /** out = alpha·x. out may be x. */
    void scale(Tensor out, Tensor x, float alpha);

    // ---------------------------------------------------------------- layout and embeddings

    /**
     * Patch extraction for a (1,2,2) patch: latents (B, Cin, F, H, W) → out (B, F·(H/2)·(W/2), Cin·4) with token
     * index (f·H/2 + h)·W/2 + w and patch element c·4 + kh·2 + kw (the Conv3d weight order). H, W even.
     */
    void patchify(Tensor out, Tensor latents, int channels, int frames, int height, int width);

    /**
     * Inverse layout of Wan's head: tokens (B, L, 4·Cout) with feature ph·2·Cout + pw·Cout + ch →
     * out (B, Cout, F, H, W) with out(ch, f, 2h+ph, 2w+pw). height/width are the full latent sizes.
     */
    void unpatchify(Tensor out, Tensor tokens, int channels, int frames, int height, int width);

    /** Backward of {@link #unpatchify}: the gather in the other direction (=). */
    void unpatchifyBackward(Tensor dTokens, Tensor dOut, int channels, int frames, int height, int width);

    /**
     * Wan's sinusoidal time embedding in float64, stored as F32: out (B, 2·half) = [cos(t·ω_j), sin(t·ω_j)],
     * ω_j = 10000^(−j/half), j &lt; half; cosine first. timesteps (B) F32.
     */
    void sinusoidalEmbedding(Tensor out, Tensor timesteps);

    // ---------------------------------------------------------------- text encoder (umT5)

    /**
     * Embedding gather: out[r, :] = table[ids[r], :]. table (V, C); out (R, C) (=); ids (R) F32 holding integer token
     * ids in [0, V) (exact in F32 below 2²⁴; umT5's vocabulary is 256384). Values are copied, rounded to out's dtype.
     * An id that is not an integer in [0, V) is a caller error: the CPU throws; CUDA writes NaN into that row.
     */
    void embedding(Tensor out, Tensor table, Tensor ids);

    /**
     * T5's relative-position bias, gathered per head: out[h, i, j] = table[buckets[j − i + Lq − 1], h].
     * table (numBuckets, N); out (N, Lq, Lk) (=); buckets (Lq + Lk − 1) F32 holding the integer bucket of each
     * relative position j − i = −(Lq − 1) … Lk − 1 (computed by the model, T5's bucket rule).
     */
    void relativePositionBias(Tensor out, Tensor table, Tensor buckets);

    /**
     * T5 attention: softmax over unmasked keys of q·kᵀ + bias, without 1/√D scaling, then ·v, per batch and head:
     * s_ij = q_i·k_j + bias[h, i, j] for keyMask[b, j] ≠ 0; out_i = Σ_j softmax(s_i)_j·v_j (fp32 softmax and
     * accumulation). Masked keys get weight exactly 0 (musubi adds finfo.min, whose exp underflows to 0). A query row
     * whose keys are all masked gets zeros. q, out (B, Lq, N·D); k, v (B, Lk, N·D); bias (N, Lq, Lk), shared by the
     * batch; keyMask (B, Lk) F32, 1 for real tokens and 0 for padding.
     */
    void attentionWithBias(Tensor out, Tensor q, Tensor k, Tensor v, Tensor bias, Tensor keyMask, int numHeads);

    /**
     * T5's gated-GELU product: out = x·g with g = gelu_tanh(gate) rounded to out's dtype first (musubi's bf16 path
     * stores the GELU before multiplying), the product rounded again. Equal element counts; out may be x or gate.
     */
    void gatedGelu(Tensor out, Tensor gate, Tensor x);
    // ---------------------------------------------------------------- video convolution (the Wan VAE)

    /**
     * Strides and spatial zero padding of {@link #conv3d}: frames are read with {@code timeStride}, rows and columns
     * with {@code spaceStride}; {@code padBefore} zero rows/columns sit before the first and {@code padAfter} after the
     * last (a 3×3 "same" convolution is (1, 1); Wan's downsampler's {@code ZeroPad2d((0,1,0,1))} is (0, 1)). There is
     * no time padding: a causal convolution's leading frames come from {@code cache}.
     */
    record ConvGeometry(int timeStride, int spaceStride, int padBefore, int padAfter) {
        /** Stride 1, the given symmetric spatial padding. */
        public static ConvGeometry same(int pad) { return new ConvGeometry(1, 1, pad, pad); }
    }

    /**
     * Convolution over channels-last frames, the Wan VAE's CausalConv3d / Conv2d with its feature cache. The input
     * stream is in = concat(cache, x) along frames (Tin = Tc + Tx), and
     * out[t, h, w, o] = bias[o] + Σ_{dt, dh, dw, i} weight[o, dt, dh, dw, i] · in[t·st + dt, h·ss + dh − pb, w·ss + dw − pb, i]
     * with in = 0 outside the H×W image (st, ss, pb = geometry's timeStride, spaceStride, padBefore). Accumulation is
     * fp32 or wider; out is overwritten (=).
     *
     * <p>Shapes: cache (Tc, H, W, Cin) or null (Tc = 0); x (Tx, H, W, Cin); weight (Cout, KT, KH, KW, Cin) (the
     * checkpoint's (Cout, Cin, KT, KH, KW) with Cin moved last); bias (Cout) or null; out (To, Ho, Wo, Cout) with
     * To = (Tin − KT)/st + 1, Ho = (H + pb + pa − KH)/ss + 1 (pa = padAfter; the division must be exact), likewise Wo.
     * cache and x share a dtype; out must not overlap an input.
     */
    void conv3d(Tensor out, Tensor cache, Tensor x, Tensor weight, Tensor bias, ConvGeometry geometry);

    /**
     * Nearest 2× spatial upsampling of channels-last frames: out[t, 2h + a, 2w + b, c] = x[t, h, w, c] for a, b ∈ {0, 1}
     * (torch's "nearest" and "nearest-exact" agree at factor 2). x (T, H, W, C), out (T, 2H, 2W, C) (=).
     */
    void upsampleNearest2x(Tensor out, Tensor x);

    /**
     * Softmax over the last dim: out[r, c] = exp(s·x[r, c] − m) / Σ_c' exp(s·x[r, c'] − m), m = max_c s·x[r, c], in
     * fp32 or wider (s = scale). x, out (R, C) (=); out may be x.
     */
    void softmax(Tensor out, Tensor x, float scale);

    // ---------------------------------------------------------------- flow matching and loss

    /**
     * Standard normal noise from a counter-based generator (see {@code CounterRng}): element i of out is
     * normal(seed, offset + i), rounded to out's dtype. The same (seed, offset) gives the same values on every
     * backend.
     */
    void gaussianNoise(Tensor out, long seed, long offset);

    /**
     * Flow-matching input and target per sample b (spec §4): xt = (1 − t[b])·x0 + t[b]·noise and
     * target = noise − x0, in fp32. x0, noise, xt, target (B, …); t (B) F32.
     */
    void flowMatchingInput(Tensor xt, Tensor target, Tensor x0, Tensor noise, Tensor t);

    /**
     * Mean squared error: loss (1) F32 (=) = mean((pred − target)²) with an fp32 (or wider) reduction;
     * dPred (=) = gradScale·2·(pred − target)/n. pred, target, dPred of equal shape.
     */
    void mseLoss(Tensor loss, Tensor dPred, Tensor pred, Tensor target, float gradScale);

    // ---------------------------------------------------------------- optimizer

    /** normSquared (1) F32 += Σ g² over the tensor, reduced in fp32 or wider. */
    void sumOfSquares(Tensor normSquared, Tensor g);

    /**
     * One AdamW step (torch semantics: decoupled weight decay, bias correction) on F32 param/grad/m/v, with the
     * gradient first multiplied by gradScale (1) F32 (the clip coefficient, computed on the device so no host
     * synchronization is needed): p −= lr·wd·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
     * p −= lr·(m/(1−β1^step)) / (sqrt(v/(1−β2^step)) + eps). step is 1-based.
     */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, AdamWStep hyper);

    /**
     * One 8-bit AdamW step (bitsandbytes AdamW8bit semantics, block-wise dynamic quantization): both moments are
     * stored as U8 codes of the signed (m) / unsigned (v) dynamic quantization maps with one F32 absmax per block of
     * {@link #ADAMW8BIT_BLOCK_SIZE} elements. Each step dequantizes, applies the AdamW update in fp32 in
     * bitsandbytes' order (Adam step p += −lr·c2/c1·m/(√v + c2·eps), then p ·= 1 − lr·wd; a non-finite gradient
     * element zeroes m and v and leaves p), and requantizes with the new per-block absmax (the reference is
     * {@code CpuAdamW8bit}, the maps and rounding are {@code DynamicQuantization}). mCodes, vCodes (n) U8;
     * mAbsMax, vAbsMax (ceil(n/block)) F32.
     */
    void adamw8bit(Tensor param, Tensor grad, Tensor mCodes, Tensor mAbsMax, Tensor vCodes, Tensor vAbsMax,
                   Tensor gradScale, AdamWStep hyper);

    /** Elements per quantization block of {@link #adamw8bit}'s moments (bitsandbytes ≥ 0.46 BLOCKSIZE_2STATE). */
    int ADAMW8BIT_BLOCK_SIZE = 256;

    /**
     * clip (1) F32 = min(1, maxNorm/(sqrt(normSquared) + 1e-6)) (torch.nn.utils.clip_grad_norm_), or 1 when
     * maxNorm ≤ 0.
     */
    void clipCoefficient(Tensor clip, Tensor normSquared, float maxNorm);

    /** Hyper-parameters of one AdamW step. step is 1-based (bias correction uses it). */
    record AdamWStep(float learningRate, float beta1, float beta2, float eps, float weightDecay, long step) {}

    /**
     * Prodigy (prodigyopt.Prodigy, d-adaptation of Adam's step size), first pass over one parameter: g =
     * f32(grad·gradScale) (+ wd·p when not decoupled); p0 = p when the step count k is 0 (the initial point); m =
     * β1·m + d(1−β1)·g; v = β2·v + d²(1−β2)·g²; s = β3·s + (d/d0)·(safeguardWarmup ? d : dlr)·g with dlr =
     * d·lr·(bias correction); then state[4] += (d/d0)·dlr·Σ g·(p0 − p) and state[5] += Σ |s| (double sums, added once
     * in F32). Nothing happens when lr is 0 (Prodigy skips such groups). param, grad, p0, m, v, s F32 of one shape;
     * state ({@link #PRODIGY_STATE_SIZE}) F32 = {d, d_max, d_numerator, k, numerator sum, denominator sum, dlr, skip}.
     */
    void prodigyAccumulate(Tensor param, Tensor grad, Tensor p0, Tensor m, Tensor v, Tensor s, Tensor gradScale,
                           Tensor state, ProdigyStep hyper);

    /**
     * Prodigy's step-size update, once per step after {@link #prodigyAccumulate} over every parameter: dlr =
     * d·lr·(bias correction) is kept in state[6]; a zero denominator sum sets skip (state[7] = 1, the step makes no
     * update, as upstream returns early); otherwise d_numerator = β3·d_numerator + state[4], d̂ = d_coef·d_numerator /
     * state[5], d = max(d, d̂) while d is still d0, d_max = max(d_max, d̂), d = min(d_max, d·growth_rate), k += 1. Both
     * sums are reset to 0.
     */
    void prodigyAdapt(Tensor state, ProdigyStep hyper);

    /**
     * Prodigy's parameter update after {@link #prodigyAdapt} (nothing when skip is set): with d the new estimate and
     * dlr = state[6], p −= wd·dlr·p when decoupled, then p −= dlr·m/(sqrt(v) + d·eps) (β1 = 0: dlr·d·g/(…) with g as in
     * the first pass).
     */
    void prodigyUpdate(Tensor param, Tensor grad, Tensor m, Tensor v, Tensor gradScale, Tensor state, ProdigyStep hyper);

    /** Length of Prodigy's scalar state tensor. */
    int PRODIGY_STATE_SIZE = 8;

    /**
     * Hyper-parameters of one Prodigy step: learningRate is the scheduled lr (Prodigy's multiplier of d, usually 1),
     * the rest prodigyopt.Prodigy's arguments of the same names (growthRate may be infinite).
     */
    record ProdigyStep(float learningRate, float beta1, float beta2, float beta3, float eps, float weightDecay,
                       boolean decouple, boolean useBiasCorrection, boolean safeguardWarmup, float d0, float dCoef,
                       float growthRate) {}

    /**
     * One Adafactor step on one parameter (transformers.optimization.Adafactor): g = f32(grad·gradScale); lr =
     * (scaleParameter ? max(eps2, RMS(p)) : 1)·(relativeStep ? min(warmupInit ? 1e-6·t : 1e-2, 1/√t) : learningRate);
     * β2t = 1 − t^decayRate; for a 2-D (R, C) parameter the second moment is factored: row (R) and col (C) F32 keep
     * the EMAs (β2t) of the row and column means of g² + eps1 and u = g / sqrt(row_i / mean(row)) / sqrt(col_j); a 1-D
     * one keeps v (n) F32 with u = g / sqrt(v). Then u /= max(1, RMS(u)/clipThreshold), u ·= lr; with β1 (m not
     * null) m = β1·m + (1−β1)·u and u = m; p −= wd·lr·p; p −= u. Reductions in double, state rounded to F32. Unused
     * state tensors are null (row/col for 1-D, v for 2-D, m without β1).
     */
    void adafactor(Tensor param, Tensor grad, Tensor m, Tensor row, Tensor col, Tensor v, Tensor gradScale,
                   AdafactorStep hyper);

    /**
     * Hyper-parameters of one Adafactor step; step is 1-based (the per-parameter step count), beta1 is used only
     * when the op gets an m tensor.
     */
    record AdafactorStep(float learningRate, long step, float eps1, float eps2, float clipThreshold, float decayRate,
                         float beta1, float weightDecay, boolean scaleParameter, boolean relativeStep,
                         boolean warmupInit) {

        /** The step size before the parameter scale: relativeStep ? min(warmupInit ? 1e-6·t : 1e-2, 1/√t) : lr. */
        public double relativeStepSize() {
            if (!relativeStep) return learningRate;
            double t = step;
            return Math.min(warmupInit ? 1e-6 * t : 1e-2, 1.0 / Math.sqrt(t));
        }
    }

    @Override
    void close();
}
