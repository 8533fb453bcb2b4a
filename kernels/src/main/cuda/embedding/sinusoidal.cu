// sinusoidal_embedding_fwd_f32: Wan's time embedding in float64, stored as f32:
//   out[b, j] = cos(t[b]·ω_j), out[b, half + j] = sin(t[b]·ω_j), ω_j = 10000^(−j/half), j < half.
// Thread mapping: one thread per (b, j). Numerics: float64 pow/cos/sin (as torch's float64 path), one rounding to
// f32. Deterministic.
#include "wanlora.cuh"

extern "C" __global__ void sinusoidal_embedding_fwd_f32(float* out, const float* t, int B, int half) {
  long long total = (long long)B * half;
  for (long long i = global_thread(); i < total; i += global_threads()) {
    int b = (int)(i / half), j = (int)(i % half);
    double arg = (double)t[b] * pow(10000.0, -((double)j / (double)half));
    out[(long long)b * 2 * half + j] = (float)cos(arg);
    out[(long long)b * 2 * half + half + j] = (float)sin(arg);
  }
}
