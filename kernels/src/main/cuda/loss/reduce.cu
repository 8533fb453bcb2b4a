// Deterministic reductions for the loss and the gradient norm, and the clip coefficient.
//   mse_loss_fwd_<in>[_<dPred>]: dPred[i] = gradScale2n·(pred[i] − target[i]) (gradScale2n = gradScale·2/n; dPred
//     may be null); partial[block] = Σ (pred − target)² over the elements this block's threads visit.
//   sum_of_squares_fwd_<g>: partial[block] = Σ g² likewise.
//   reduce_partials_fwd_f32: out[0] = (accumulate ? out[0] : 0) + scale·Σ partial[0..count) (float64 sum, in index
//     order), one block of 1024 threads.
//   clip_coefficient_fwd_f32: clip = min(1, maxNorm/(sqrt(normSquared) + 1e-6)), 1 when maxNorm <= 0 (NaN norms give
//     NaN, so a NaN loss is not hidden). One thread.
// Thread mapping: the partial kernels run a FIXED grid (the launcher always uses 1024 blocks × 256 threads), element i
// visited by thread i mod 262144 in increasing order, so the summation order — and the result — is the same on
// every run and every GPU. Per-thread sums are fp32, the block tree fp32, the final sum float64.
#include "wanlora.cuh"

template <typename TI, typename TO>
__device__ void mse_loss(TO* dPred, float* partial, const TI* pred, const TI* target, float gradScale2n, long long n) {
  __shared__ float scratch[32];
  float s = 0.f;
  for (long long i = global_thread(); i < n; i += global_threads()) {
    float d = to_float(pred[i]) - to_float(target[i]);
    s += d * d;
    if (dPred != nullptr) dPred[i] = from_float<TO>(gradScale2n * d);
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

#define MSE(TI, TO, S)                                                                                                \
  extern "C" __global__ void mse_loss_fwd_##S(TO* dPred, float* partial, const TI* pred, const TI* target,            \
                                              float gradScale2n, long long n) {                                       \
    mse_loss<TI, TO>(dPred, partial, pred, target, gradScale2n, n);                                                   \
  }

FOR_EACH_IO(MSE)

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
