// The flow-matching input, deterministic reductions for the loss and the gradient norm, and the clip coefficient.
// The per-step latent tensors are small (≤ 2.1M elements for the largest 14B bucket), so flow matching and the loss
// take each tensor's dtype at run time (0 = f32, 1 = bf16: ParamType) instead of one symbol per combination.
//   flow_matching_fwd_any: xt = (1 − t[b])·x0 + t[b]·noise, target = noise − x0 in fp32, per sample of perSample elements.
//   mse_loss_fwd_any: dPred[i] = gradScale2n·(pred[i] − target[i]) (gradScale2n = gradScale·2/n);
//     partial[block] = Σ (pred − target)² over the elements this block's threads visit.
//   sum_of_squares_fwd_<g>: partial[block] = Σ g² likewise.
//   reduce_partials_fwd_f32: out[0] = (accumulate ? out[0] : 0) + scale·Σ partial[0..count) (float64 sum, in index
//     order), one block of 1024 threads.
//   clip_coefficient_fwd_f32: clip = min(1, maxNorm/(sqrt(normSquared) + 1e-6)), 1 when maxNorm <= 0 (NaN norms give
//     NaN, so a NaN loss is not hidden). One thread.
// Thread mapping: the partial kernels run a FIXED grid (the launcher always uses 1024 blocks × 256 threads), element i
// visited by thread i mod 262144 in increasing order, so the summation order — and the result — is the same on
// every run and every GPU. Per-thread sums are fp32, the block tree fp32, the final sum float64.
#include "wanlora.cuh"

__device__ __forceinline__ float load_any(const void* p, int type, long long i) { return load_param(p, type, i); }

__device__ __forceinline__ void store_any(void* p, int type, long long i, float v) {
  if (type == PARAM_BF16) ((bf16*)p)[i] = __float2bfloat16_rn(v); else ((float*)p)[i] = v;
}

extern "C" __global__ void flow_matching_fwd_any(void* xt, int xtType, void* target, int targetType, const void* x0,
                                             int x0Type, const void* noise, int noiseType, const float* t,
                                             long long perSample, long long total) {
  for (long long i = global_thread(); i < total; i += global_threads()) {
    float s = t[i / perSample], a = load_any(x0, x0Type, i), e = load_any(noise, noiseType, i);
    store_any(xt, xtType, i, (1.f - s) * a + s * e);
    store_any(target, targetType, i, e - a);
  }
}

extern "C" __global__ void mse_loss_fwd_any(void* dPred, int dPredType, float* partial, const void* pred, int predType,
                                        const void* target, int targetType, float gradScale2n, long long n) {
  __shared__ float scratch[32];
  float s = 0.f;
  for (long long i = global_thread(); i < n; i += global_threads()) {
    float d = load_any(pred, predType, i) - load_any(target, targetType, i);
    s += d * d;
    store_any(dPred, dPredType, i, gradScale2n * d);
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <typename T>
__device__ void sum_of_squares(float* partial, const T* g, long long n) {
  __shared__ float scratch[32];
  float s = 0.f;
  for (long long i = global_thread(); i < n; i += global_threads()) {
    float v = to_float(g[i]);
    s += v * v;
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

extern "C" __global__ void sum_of_squares_fwd_f32(float* partial, const float* g, long long n) { sum_of_squares(partial, g, n); }
extern "C" __global__ void sum_of_squares_fwd_bf16(float* partial, const bf16* g, long long n) { sum_of_squares(partial, g, n); }

extern "C" __global__ void reduce_partials_fwd_f32(float* out, const float* partial, int count, double scale, int accumulate) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[0] = (float)((accumulate ? (double)out[0] : 0.0) + scale * s);
}

extern "C" __global__ void clip_coefficient_fwd_f32(float* clip, const float* normSquared, float maxNorm) {
  if (maxNorm <= 0.f) {
    clip[0] = 1.f;
    return;
  }
  float c = maxNorm / (sqrtf(normSquared[0]) + 1e-6f);
  clip[0] = c > 1.f ? 1.f : c;
}
