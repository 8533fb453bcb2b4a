// dequantize_fp8_fwd_<scale>[_<out>]: musubi's block-wise fp8 weight (spec §3.2):
//   out[o, i] = round_scale(bf16(wq[o, i]) · scale[o, i / 64]), stored in out's dtype.
// wq (O, I) e4m3; scale (O, I/64) f32 or bf16; I % 64 == 0. An e4m3 value is exact in bf16, and a bf16×bf16
// product is exact in fp32, so the fp32 product rounded once to scale's dtype is musubi's bf16 result bit for bit.
// Thread mapping: grid-stride over groups of 8 elements (one 8-byte load of codes, 16-byte stores when aligned).
// Deterministic.
#include "wanlora.cuh"

template <typename TS, typename TO>
__device__ void dequantize(TO* out, const f8e4m3* wq, const TS* scale, long long n) {
  long long t = global_thread(), stride = global_threads();
  bool vec = aligned8(out) && aligned8(wq);
  long long groups = vec ? n / 8 : 0;
  for (long long g = t; g < groups; g += stride) {
    long long i = g * 8;
    float v[8];
    load8(wq + i, v);
    float s = to_float(scale[i / 64]);  // I % 64 == 0, so a group of 8 never straddles two scale blocks
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = round_to<TS>(v[k] * s);
    store8(out + i, v);
  }
  for (long long i = groups * 8 + t; i < n; i += stride) {
    out[i] = from_float<TO>(round_to<TS>(to_float(wq[i]) * to_float(scale[i / 64])));
  }
}

#define DEQUANT(TS, TO, S)                                                                                            \
  extern "C" __global__ void dequantize_fp8_fwd_##S(TO* out, const f8e4m3* wq, const TS* scale, long long n) { \
    dequantize<TS, TO>(out, wq, scale, n);                                                                         \
  }

FOR_EACH_IO(DEQUANT)
