// quantize_fp8_fwd_<w>: musubi's --fp8_scaled block quantizer (spec §3.2), bit for bit the CPU reference
// engine/numeric/Fp8BlockQuantizer (its Javadoc cites the upstream lines). For each block b of 64 consecutive elements
// of a row (w is (O, I), I % 64 == 0, so the blocks tile the flat array):
//   scale[b] = max(round_w(max|w_b| / 448), round_w(1e-8))       round_w: to w's dtype (torch computes the scale there)
//   codes[i] = e4m3_rn(clamp(nan->0(w[i] / scale[b]), -448, 448))
// stored as scale's dtype (bf16 for bf16 w, f32 for f16 and f32 w: the f16 value is exact in f32).
// Numerics, matched to Java float arithmetic: both divisions are IEEE round-to-nearest (__fdiv_rn; the build has no
// fast-math, and an explicit intrinsic keeps the compiler from using a reciprocal); denormals are kept (no ftz). The
// max propagates NaN like Java's Math.max and torch's amax (fmaxf would drop it), the clamp keeps -0 (so a -0
// quotient gives code 0x80 like the reference), and the e4m3 cast does not saturate (|x| <= 448 here anyway).
// Thread mapping: one thread per 8 consecutive elements (one 16-byte load of bf16/f16, two of f32, one 8-byte store
// of codes); the 8 threads of a block are 8 aligned lanes of a warp and reduce the block max with __shfl_xor_sync
// over their 8-lane mask (max is exact, so the order does not matter); the first of them stores the scale. Grid-stride
// over groups of 8: the stride is a multiple of the block size (256), so the 8 lanes of a block always iterate
// together. Requirements: n % 64 == 0; w 16-byte aligned (32 for f32 is not needed: load8 does two 16-byte loads),
// codes 8-byte aligned. Deterministic.
#include "wanlora.cuh"

__device__ __forceinline__ float max_nan(float a, float b) { return (isnan(b) || b > a) ? b : a; }

template <typename TW, typename TS>
__device__ void quantize_fp8(f8e4m3* __restrict__ codes, TS* __restrict__ scale, const TW* __restrict__ w, long long n) {
  long long groups = n / 8, stride = global_threads();
  unsigned lane = threadIdx.x & 31;
  unsigned mask = 0xffu << (lane & 24);
  const float min_scale = round_to<TW>(1e-8f);
  for (long long g = global_thread(); g < groups; g += stride) {
    float v[8];
    load8(w + g * 8, v);
    float m = 0.f;
#pragma unroll
    for (int k = 0; k < 8; k++) m = max_nan(m, fabsf(v[k]));
#pragma unroll
    for (int o = 4; o > 0; o >>= 1) m = max_nan(m, __shfl_xor_sync(mask, m, o, 8));
    float s = round_to<TW>(__fdiv_rn(m, 448.f));
    s = (isnan(s) || s > min_scale) ? s : min_scale;  // Java's Math.max(s, min_scale)
    float q[8];
#pragma unroll
    for (int k = 0; k < 8; k++) {
      float x = __fdiv_rn(v[k], s);
      q[k] = isnan(x) ? 0.f : (x < -448.f ? -448.f : (x > 448.f ? 448.f : x));
    }
    store8(codes + g * 8, q);
    if ((g & 7) == 0) scale[g >> 3] = from_float<TS>(s);
  }
}

#define QUANTIZE(TW, TS)                                                                                          \
  extern "C" __global__ void quantize_fp8_fwd_##TW(f8e4m3* codes, TS* scale, const TW* w, long long n) {         \
    quantize_fp8<TW, TS>(codes, scale, w, n);                                                                     \
  }

QUANTIZE(bf16, bf16)
QUANTIZE(f16, f32)
QUANTIZE(f32, f32)
