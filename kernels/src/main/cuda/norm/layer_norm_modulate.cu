// Wan's adaLN input in one pass: LayerNorm without affine, then modulation; and its backward.
//   layer_norm_modulate_fwd_<x>[_<out>]: n = (x − mean)·rstd rounded to out's type (the chain stores n there), then
//     out = n·(1 + mod[b,scale,c]) + mod[b,shift,c]; mean, rstd (R) f32 saved. Rows r = b·L + l of C columns; mod is
//     (B, nMod, C) f32. Equals layer_norm_fwd (w = b = null) into a buffer of out's type followed by modulate_fwd,
//     bit for bit at the same block size (same statistics code, same fp32 arithmetic per element).
//   layer_norm_modulate_bwd_<dOut,x>[_<dx>]: dn = dOut·(1 + mod[b,scale,c]) rounded to dx's type, then
//     dx = rstd·(dn − mean(dn) − xhat·mean(dn·xhat)), xhat = (x − mean)·rstd, assigned or accumulated. Equals
//     modulate_bwd into a buffer of dx's type followed by layer_norm_bwd (w = null, no partials) at the same block
//     size, bit for bit.
// Thread mapping: one block per row, the row held in registers (row.cuh); VEC = 8 (16-byte accesses of x, out, dOut,
// dx, two of mod; requires C % 8 == 0 and 16-byte aligned tensors) or 1.
// Numerics: fp32 throughout, two-pass statistics, one rounding of n and one of out. Deterministic: fixed reduction
// trees, no atomics.
#include "row.cuh"

template <typename TI, typename TO, int VEC>
__device__ void layer_norm_modulate_fwd(TO* out, float* mean, float* rstd, const TI* x, const float* mod, int nMod,
                                        int shift, int scale, long long L, int C, float eps) {
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
  long long b = r / L;
  const float* scaleRow = mod + (b * nMod + scale) * C;
  const float* shiftRow = mod + (b * nMod + shift) * C;
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
    if (c < C) {
      float o[VEC], s[VEC], h[VEC];
      load_vec<VEC>(scaleRow + c, s);
      load_vec<VEC>(shiftRow + c, h);
#pragma unroll
      for (int k = 0; k < VEC; k++) o[k] = round_to<TO>((v[j][k] - m) * rs) * (1.f + s[k]) + h[k];
      store_vec<VEC>(out + r * C + c, o);
    }
  }
  if (threadIdx.x == 0) {
    mean[r] = m;
    rstd[r] = rs;
  }
}

template <typename TI, typename TO, int VEC>
__device__ void layer_norm_modulate_bwd(TO* dx, const TI* dOut, const TI* x, const float* mean, const float* rstd,
                                        const float* mod, int nMod, int scale, long long L, int C, int accumulate) {
  constexpr int G = ROW_ELEMS / VEC;
  __shared__ float scratch[32];
  long long r = blockIdx.x;
  const float* scaleRow = mod + (r / L * nMod + scale) * C;
  float m = mean[r], rs = rstd[r];
  float xh[G][VEC], dy[G][VEC];
  float sg = 0.f, sgx = 0.f;
#pragma unroll
  for (int j = 0; j < G; j++) {
    long long c = (long long)(threadIdx.x + j * blockDim.x) * VEC;
    if (c < C) {
      float s[VEC];
      load_vec<VEC>(x + r * C + c, xh[j]);
      load_vec<VEC>(dOut + r * C + c, dy[j]);
      load_vec<VEC>(scaleRow + c, s);
#pragma unroll
      for (int k = 0; k < VEC; k++) {
        dy[j][k] = round_to<TO>(dy[j][k] * (1.f + s[k]));
        xh[j][k] = (xh[j][k] - m) * rs;
        sg += dy[j][k];
        sgx += dy[j][k] * xh[j][k];
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
        o[k] = rs * (dy[j][k] - mg - xh[j][k] * mgx);
        if (accumulate) o[k] += prev[k];
      }
      store_vec<VEC>(dx + r * C + c, o);
    }
  }
}

#define LAYER_NORM_MODULATE(TI, TO, S)                                                                                \
  extern "C" __global__ void __launch_bounds__(1024)                                                                  \
      layer_norm_modulate_fwd_##S(TO* out, float* mean, float* rstd, const TI* x, const float* mod, int nMod,          \
                                  int shift, int scale, long long L, int C, float eps, int vec) {                     \
    if (vec) layer_norm_modulate_fwd<TI, TO, 8>(out, mean, rstd, x, mod, nMod, shift, scale, L, C, eps);             \
    else layer_norm_modulate_fwd<TI, TO, 1>(out, mean, rstd, x, mod, nMod, shift, scale, L, C, eps);                 \
  }                                                                                                                   \
  extern "C" __global__ void __launch_bounds__(1024)                                                                  \
      layer_norm_modulate_bwd_##S(TO* dx, const TI* dOut, const TI* x, const float* mean, const float* rstd,           \
                                  const float* mod, int nMod, int scale, long long L, int C, int accumulate, int vec) { \
    if (vec) layer_norm_modulate_bwd<TI, TO, 8>(dx, dOut, x, mean, rstd, mod, nMod, scale, L, C, accumulate);        \
    else layer_norm_modulate_bwd<TI, TO, 1>(dx, dOut, x, mean, rstd, mod, nMod, scale, L, C, accumulate);            \
  }

FOR_EACH_IO(LAYER_NORM_MODULATE)
