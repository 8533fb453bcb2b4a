// LayerNorm over the last dim, forward and backward.
//   layer_norm_fwd_<x>[_<out>]: out = (x − mean)·rstd·w + b, rstd = 1/sqrt(var + eps), biased variance; mean, rstd
//     (R) f32 saved. w, b optional (null = no affine), f32 or bf16 (pType). Two-pass statistics (mean, then the sum
//     of squared deviations) from the row held in registers.
//   layer_norm_bwd_<x>[_<dx>]: xhat = (x − mean)·rstd, g = dOut·w; dx = rstd·(g − mean(g) − xhat·mean(g·xhat)),
//     assigned or accumulated (accumulate != 0). x and dOut share a dtype. When partialW / partialB are non-null the
//     block also writes its rows' Σ dOut·xhat / Σ dOut per column to partial[blockIdx.x·C + c]; column_sum_fwd adds
//     the blocks' partials into dWeight / dBias in block order.
// Thread mapping: forward one block per row; backward one block per rowsPerBlock consecutive rows; VEC = 8 (16-byte
// accesses; requires C % 8 == 0 and 16-byte aligned rows and params) or 1. See row.cuh for the ownership scheme.
// Numerics: fp32 throughout, one rounding per stored element. Deterministic: fixed reduction trees, no atomics.
#include "row.cuh"

template <typename TI, typename TO, int VEC>
__device__ void layer_norm_fwd(TO* out, float* mean, float* rstd, const TI* x, const void* w, const void* b, int pType,
                               int C, float eps) {
  constexpr int G = ROW_ELEMS / VEC;
  __shared__ float scratch[32];
  long long r = blockIdx.x;
  const TI* xr = x + r * C;
  float v[G][VEC];
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
    if (c < C) {
      load_vec<VEC>(xr + c, v[j]);
#pragma unroll
      for (int k = 0; k < VEC; k++) sum += v[j][k];
    }
  }
  float m = block_sum(sum, scratch) / C;
  float sq = 0.f;
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
    if (c < C) {
#pragma unroll
      for (int k = 0; k < VEC; k++) {
        float d = v[j][k] - m;
        sq += d * d;
      }
    }
  }
  float rs = 1.f / sqrtf(block_sum(sq, scratch) / C + eps);
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
    if (c < C) {
      float o[VEC], wv[VEC], bv[VEC];
      if (w != nullptr) load_param_vec<VEC>(w, pType, c, wv);
      if (b != nullptr) load_param_vec<VEC>(b, pType, c, bv);
#pragma unroll
      for (int k = 0; k < VEC; k++) {
        o[k] = (v[j][k] - m) * rs;
        if (w != nullptr) o[k] *= wv[k];
        if (b != nullptr) o[k] += bv[k];
      }
      store_vec<VEC>(out + r * C + c, o);
    }
  }
  if (threadIdx.x == 0) {
    mean[r] = m;
    rstd[r] = rs;
  }
}

template <typename TI, typename TO, int VEC>
__device__ void layer_norm_bwd(TO* dx, float* partialW, float* partialB, const TI* dOut, const TI* x, const void* w,
                               int pType, const float* mean, const float* rstd, long long R, int C, int accumulate,
                               int rowsPerBlock) {
  constexpr int G = ROW_ELEMS / VEC;
  __shared__ float scratch[32];
  float dw[G][VEC], db[G][VEC], wv[G][VEC];
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
#pragma unroll
    for (int k = 0; k < VEC; k++) dw[j][k] = db[j][k] = 0.f, wv[j][k] = 1.f;
    if (c < C && w != nullptr) load_param_vec<VEC>(w, pType, c, wv[j]);
  }
  long long r0 = (long long)blockIdx.x * rowsPerBlock, r1 = min(R, r0 + rowsPerBlock);
  for (long long r = r0; r < r1; r++) {
    float m = mean[r], rs = rstd[r];
    float xh[G][VEC], dy[G][VEC];
    float sg = 0.f, sgx = 0.f;
#pragma unroll
    for (int j = 0; j < G; j++) {
      long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
      if (c < C) {
        load_vec<VEC>(x + r * C + c, xh[j]);
        load_vec<VEC>(dOut + r * C + c, dy[j]);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
          xh[j][k] = (xh[j][k] - m) * rs;
          float g = dy[j][k] * wv[j][k];
          sg += g;
          sgx += g * xh[j][k];
          dw[j][k] += dy[j][k] * xh[j][k];
          db[j][k] += dy[j][k];
        }
      }
    }
    float mg = block_sum(sg, scratch) / C;
    float mgx = block_sum(sgx, scratch) / C;
#pragma unroll
    for (int j = 0; j < G; j++) {
      long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
      if (c < C) {
        float o[VEC], prev[VEC];
        if (accumulate) load_vec<VEC>(dx + r * C + c, prev);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
          o[k] = rs * (dy[j][k] * wv[j][k] - mg - xh[j][k] * mgx);
          if (accumulate) o[k] += prev[k];
        }
        store_vec<VEC>(dx + r * C + c, o);
      }
    }
  }
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
    if (c < C) {
#pragma unroll
      for (int k = 0; k < VEC; k++) {
        if (partialW != nullptr) partialW[(long long)blockIdx.x * C + c + k] = dw[j][k];
        if (partialB != nullptr) partialB[(long long)blockIdx.x * C + c + k] = db[j][k];
      }
    }
  }
}

#define LAYER_NORM(TI, TO, S)                                                                                         \
  extern "C" __global__ void __launch_bounds__(1024) layer_norm_fwd_##S(TO* out, float* mean, float* rstd, const TI* x, const void* w,        \
                                                const void* b, int pType, int C, float eps, int vec) {                \
    if (vec) layer_norm_fwd<TI, TO, 8>(out, mean, rstd, x, w, b, pType, C, eps);                                      \
    else layer_norm_fwd<TI, TO, 1>(out, mean, rstd, x, w, b, pType, C, eps);                                          \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(1024) layer_norm_bwd_##S(TO* dx, float* partialW, float* partialB, const TI* dOut, const TI* x, \
                                                const void* w, int pType, const float* mean, const float* rstd,       \
                                                long long R, int C, int accumulate, int rowsPerBlock, int vec) {      \
    if (vec) layer_norm_bwd<TI, TO, 8>(dx, partialW, partialB, dOut, x, w, pType, mean, rstd, R, C, accumulate, rowsPerBlock); \
    else layer_norm_bwd<TI, TO, 1>(dx, partialW, partialB, dOut, x, w, pType, mean, rstd, R, C, accumulate, rowsPerBlock);     \
  }

FOR_EACH_IO(LAYER_NORM)

// column_sum_fwd: param[c] += Σ_b partial[b·C + c] over b < blocks, in block order (deterministic), summed in fp32
// and added in fp32 to the parameter gradient (f32 or bf16 per pType). One thread per column.
extern "C" __global__ void column_sum_fwd_f32(void* param, int pType, const float* partial, int blocks, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s = 0.f;
  for (int b = 0; b < blocks; b++) s += partial[(long long)b * C + c];
  if (pType == PARAM_BF16) {
    bf16* p = (bf16*)param;
    p[c] = __float2bfloat16_rn(__bfloat162float(p[c]) + s);
  } else {
    ((float*)param)[c] += s;
  }
}
