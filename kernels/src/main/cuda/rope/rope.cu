// Interleaved-pair rotary embedding (Wan's 3D RoPE), forward and backward in one kernel.
//   rope_fwd_<x>[_<out>]: for token l = row % L, head h, pair j < D/2 of x (B, L, N·D):
//     (a, b) = (x[.., h·D + 2j], x[.., h·D + 2j + 1]) -> (a·cos[l,j] − b·sin[l,j], a·sin[l,j] + b·cos[l,j]);
//     inverse != 0 rotates by −angle: (a·cos + b·sin, −a·sin + b·cos) (the backward). cos, sin (L, D/2) f32.
// Thread mapping: grid-stride over groups of 4 pairs (8 elements, 16-byte accesses) when D % 8 == 0 and pointers are
// aligned, else one pair per step. out may be x. Numerics: fp32 with one rounding per output. Deterministic.
#include "wanlora.cuh"

template <typename TI, typename TO>
__device__ void rope(TO* out, const TI* x, const float* cosT, const float* sinT, long long L, int N, int D,
                     long long total, int inverse) {
  long long t = global_thread(), stride = global_threads();
  int half = D / 2;
  long long rowLen = (long long)N * D;
  float sgn = inverse ? -1.f : 1.f;
  bool vec = D % 8 == 0 && aligned8(out) && aligned8(x) && aligned8(cosT) && aligned8(sinT);
  if (vec) {
    long long groups = total / 8;
    for (long long g = t; g < groups; g += stride) {
      long long i = g * 8, row = i / rowLen, l = row % L;
      int j0 = (int)((i - row * rowLen) % D) / 2;
      float v[8];
      load8(x + i, v);
      float4 c = *reinterpret_cast<const float4*>(cosT + l * half + j0);
      float4 s = *reinterpret_cast<const float4*>(sinT + l * half + j0);
      float cs[4] = {c.x, c.y, c.z, c.w}, sn[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
      for (int p = 0; p < 4; p++) {
        float a = v[2 * p], b = v[2 * p + 1], sp = sgn * sn[p];
        v[2 * p] = a * cs[p] - b * sp;
        v[2 * p + 1] = a * sp + b * cs[p];
      }
      store8(out + i, v);
    }
  } else {
    long long pairs = total / 2;
    for (long long q = t; q < pairs; q += stride) {
      long long i = q * 2, row = i / rowLen, l = row % L;
      int j = (int)((i - row * rowLen) % D) / 2;
      float a = to_float(x[i]), b = to_float(x[i + 1]);
      float c = cosT[l * half + j], sp = sgn * sinT[l * half + j];
      out[i] = from_float<TO>(a * c - b * sp);
      out[i + 1] = from_float<TO>(a * sp + b * c);
    }
  }
}

#define ROPE(TI, TO, S)                                                                                               \
  extern "C" __global__ void rope_fwd_##S(TO* out, const TI* x, const float* cosT, const float* sinT, long long L,   \
                                          int N, int D, long long total, int inverse) {                              \
    rope<TI, TO>(out, x, cosT, sinT, L, N, D, total, inverse);                                                        \
  }

FOR_EACH_IO(ROPE)
