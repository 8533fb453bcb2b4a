// RMSNorm over the last dim as musubi computes it (Wan's q/k norms), forward and backward.
//   rms_norm_fwd_<x>[_<out>]: rstd = 1/sqrt(mean(x²) + eps); n = round_out(x·rstd); out = round_out(n·round_out(w)).
//     rstd (R) f32 saved. w is f32 or bf16 (pType).
//   rms_norm_bwd_<x>[_<dx>]: straight through the roundings: dn = dOut·w, dx = rstd·(dn − x·rstd²·mean(dn·x)) (=);
//     with partialW non-null the block writes its rows' Σ dOut·n (n = x·rstd, unrounded) per column to
//     partialW[blockIdx.x·C + c] for column_sum_fwd.
// Thread mapping and requirements as layer_norm.cu (row.cuh). Numerics: fp32, one rounding per stored value.
// Deterministic: fixed reduction trees, no atomics.
#include "row.cuh"

template <typename TI, typename TO, int VEC>
__device__ void rms_norm_fwd(TO* out, float* rstd, const TI* x, const void* w, int pType, int C, float eps) {
  constexpr int G = ROW_ELEMS / VEC;
  __shared__ float scratch[32];
  long long r = blockIdx.x;
  float v[G][VEC];
  float sq = 0.f;
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
    if (c < C) {
      load_vec<VEC>(x + r * C + c, v[j]);
#pragma unroll
      for (int k = 0; k < VEC; k++) sq += v[j][k] * v[j][k];
    }
  }
  float rs = 1.f / sqrtf(block_sum(sq, scratch) / C + eps);
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
    if (c < C) {
      float wv[VEC], o[VEC];
      load_param_vec<VEC>(w, pType, c, wv);
#pragma unroll
      for (int k = 0; k < VEC; k++) o[k] = round_to<TO>(v[j][k] * rs) * round_to<TO>(wv[k]);
      store_vec<VEC>(out + r * C + c, o);
    }
  }
  if (threadIdx.x == 0) rstd[r] = rs;
}

template <typename TI, typename TO, int VEC>
__device__ void rms_norm_bwd(TO* dx, float* partialW, const TI* dOut, const TI* x, const void* w, int pType,
                             const float* rstd, long long R, int C, int rowsPerBlock) {
  constexpr int G = ROW_ELEMS / VEC;
  __shared__ float scratch[32];
  float dw[G][VEC], wv[G][VEC];
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
#pragma unroll
    for (int k = 0; k < VEC; k++) dw[j][k] = 0.f, wv[j][k] = 1.f;
    if (c < C) load_param_vec<VEC>(w, pType, c, wv[j]);
  }
  long long r0 = (long long)blockIdx.x * rowsPerBlock, r1 = min(R, r0 + rowsPerBlock);
  for (long long r = r0; r < r1; r++) {
    float rs = rstd[r];
    float xv[G][VEC], dy[G][VEC];
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < G; j++) {
      long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
      if (c < C) {
        load_vec<VEC>(x + r * C + c, xv[j]);
        load_vec<VEC>(dOut + r * C + c, dy[j]);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
          s += dy[j][k] * wv[j][k] * xv[j][k];
          dw[j][k] += dy[j][k] * (xv[j][k] * rs);
        }
      }
    }
    float mean_dnx = block_sum(s, scratch) / C;
#pragma unroll
    for (int j = 0; j < G; j++) {
      long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
      if (c < C) {
        float o[VEC];
#pragma unroll
        for (int k = 0; k < VEC; k++) o[k] = rs * (dy[j][k] * wv[j][k] - xv[j][k] * rs * rs * mean_dnx);
        store_vec<VEC>(dx + r * C + c, o);
      }
    }
  }
  if (partialW != nullptr) {
#pragma unroll
    for (int j = 0; j < G; j++) {
      long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
      if (c < C) {
#pragma unroll
        for (int k = 0; k < VEC; k++) partialW[(long long)blockIdx.x * C + c + k] = dw[j][k];
      }
    }
  }
}

#define RMS_NORM(TI, TO, S)                                                                                           \
  extern "C" __global__ void __launch_bounds__(1024) rms_norm_fwd_##S(TO* out, float* rstd, const TI* x, const void* w, int pType, int C,     \
                                              float eps, int vec) {                                                   \
    if (vec) rms_norm_fwd<TI, TO, 8>(out, rstd, x, w, pType, C, eps);                                                 \
    else rms_norm_fwd<TI, TO, 1>(out, rstd, x, w, pType, C, eps);                                                     \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(1024) rms_norm_bwd_##S(TO* dx, float* partialW, const TI* dOut, const TI* x, const void* w,    \
                                              int pType, const float* rstd, long long R, int C, int rowsPerBlock,     \
                                              int vec) {                                                              \
    if (vec) rms_norm_bwd<TI, TO, 8>(dx, partialW, dOut, x, w, pType, rstd, R, C, rowsPerBlock);                      \
    else rms_norm_bwd<TI, TO, 1>(dx, partialW, dOut, x, w, pType, rstd, R, C, rowsPerBlock);                          \
  }

FOR_EACH_IO(RMS_NORM)
