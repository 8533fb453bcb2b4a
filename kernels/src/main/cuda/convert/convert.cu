// convert_fwd_<src>_<dst>: dst[i] = (dst type) src[i] for i < n; Backend.copy with a dtype change.
// Thread mapping: grid-stride loop over groups of 8 elements (16-byte loads/stores) when both pointers are 8-element
// aligned, then a scalar tail; otherwise scalar throughout. No size requirement.
// Numerics: widening is exact; narrowing goes through float (exact for every source type here) and rounds once to
// nearest even; fp8 narrowing does not saturate (beyond the last midpoint -> NaN for e4m3, Inf for e5m2), like torch.
// Deterministic: pure elementwise.
#include "wanlora.cuh"

template <typename TS, typename TD>
__device__ void convert(TD* __restrict__ dst, const TS* __restrict__ src, long long n) {
  long long t = global_thread(), stride = global_threads();
  long long groups = (aligned8(dst) && aligned8(src)) ? n / 8 : 0;
  for (long long g = t; g < groups; g += stride) {
    float v[8];
    load8(src + g * 8, v);
    store8(dst + g * 8, v);
  }
  for (long long i = groups * 8 + t; i < n; i += stride) dst[i] = from_float<TD>(to_float(src[i]));
}

#define CONVERT(S, D) \
  extern "C" __global__ void convert_fwd_##S##_##D(D* dst, const S* src, long long n) { convert<S, D>(dst, src, n); }

CONVERT(f32, bf16)
CONVERT(f32, f16)
CONVERT(f32, f8e4m3)
CONVERT(f32, f8e5m2)
CONVERT(bf16, f32)
CONVERT(bf16, f16)
CONVERT(bf16, f8e4m3)
CONVERT(bf16, f8e5m2)
CONVERT(f16, f32)
CONVERT(f16, bf16)
CONVERT(f16, f8e4m3)
CONVERT(f16, f8e5m2)
CONVERT(f8e4m3, f32)
CONVERT(f8e4m3, bf16)
CONVERT(f8e4m3, f16)
CONVERT(f8e4m3, f8e5m2)
CONVERT(f8e5m2, f32)
CONVERT(f8e5m2, bf16)
CONVERT(f8e5m2, f16)
CONVERT(f8e5m2, f8e4m3)
