// adaLN modulation and gated residuals of Wan's blocks. Tensors are (B, L, C) seen
// flat with row r = i / C, sample b = r / L; mod is (B, n, C) f32 (Wan keeps modulation in fp32).
//   modulate_fwd:        out = x·(1 + mod[b,scale,c]) + mod[b,shift,c]
//   modulate_bwd:        dx = dOut·(1 + mod[b,scale,c])
//   gated_residual_fwd:  x = x + y·mod[b,gate,c]   (gate < 0: x = x + y)     symbols gated_residual_fwd_<x>[_<y>]
//   gated_residual_bwd:  dy = dx·mod[b,gate,c]     (gate < 0: dy = dx)
//   add_gated_residual_fwd: out = x + y·mod[b,gate,c] (gate < 0: out = x + y), x and out of one type: the copy and
//                        the in-place gated_residual_fwd in one pass, bit for bit (x's copy is exact)
//                        symbols add_gated_residual_fwd_<x,out>[_<y>]
// Thread mapping: grid-stride over groups of 8 (16-byte accesses) when C % 8 == 0 and all pointers are aligned,
// else scalar. Numerics: fp32 math, one rounding per stored value.
// Deterministic: pure elementwise.
#include "wanlora.cuh"

template <typename TI, typename TO>
__device__ void modulate(TO* out, const TI* x, const float* mod, int n, int shift, int scale, long long L,
                         long long C, long long total, bool backward) {
  long long t = global_thread(), stride = global_threads();
  bool vec = C % 8 == 0 && aligned8(out) && aligned8(x) && aligned8(mod);
  long long groups = vec ? total / 8 : 0;
  for (long long g = t; g < groups; g += stride) {
    long long i = g * 8, r = i / C, c = i - r * C, b = r / L;
    float v[8], s[8], h[8];
    load8(x + i, v);
    load8(mod + (b * n + scale) * C + c, s);
    if (!backward) load8(mod + (b * n + shift) * C + c, h);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = backward ? v[k] * (1.f + s[k]) : v[k] * (1.f + s[k]) + h[k];
    store8(out + i, v);
  }
  for (long long i = groups * 8 + t; i < total; i += stride) {
    long long r = i / C, c = i - r * C, b = r / L;
    float v = to_float(x[i]), s = mod[(b * n + scale) * C + c];
    out[i] = from_float<TO>(backward ? v * (1.f + s) : v * (1.f + s) + mod[(b * n + shift) * C + c]);
  }
}

// x = x + y·gate: TX is the residual stream's type, TY the branch's.
template <typename TX, typename TY>
__device__ void gated_residual(TX* x, const TY* y, const float* mod, int n, int gate, long long L, long long C,
                               long long total) {
  long long t = global_thread(), stride = global_threads();
  bool vec = C % 8 == 0 && aligned8(x) && aligned8(y) && aligned8(mod);
  long long groups = vec ? total / 8 : 0;
  for (long long g = t; g < groups; g += stride) {
    long long i = g * 8, r = i / C, c = i - r * C, b = r / L;
    float a[8], d[8], s[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    load8(x + i, a);
    load8(y + i, d);
    if (gate >= 0) load8(mod + (b * n + gate) * C + c, s);
#pragma unroll
    for (int k = 0; k < 8; k++) a[k] = gate >= 0 ? a[k] + d[k] * s[k] : a[k] + d[k];
    store8(x + i, a);
  }
  for (long long i = groups * 8 + t; i < total; i += stride) {
    long long r = i / C, c = i - r * C, b = r / L;
    float d = to_float(y[i]);
    x[i] = from_float<TX>(to_float(x[i]) + (gate >= 0 ? d * mod[(b * n + gate) * C + c] : d));
  }
}

// out = x + y·gate: TX is the residual stream's type (x and out), TY the branch's. The same arithmetic as
// gated_residual (x + d·s in fp32, one rounding), reading x from its own buffer instead of out.
template <typename TX, typename TY>
__device__ void add_gated_residual(TX* out, const TX* x, const TY* y, const float* mod, int n, int gate, long long L,
                                   long long C, long long total) {
  long long t = global_thread(), stride = global_threads();
  bool vec = C % 8 == 0 && aligned8(out) && aligned8(x) && aligned8(y) && aligned8(mod);
  long long groups = vec ? total / 8 : 0;
  for (long long g = t; g < groups; g += stride) {
    long long i = g * 8, r = i / C, c = i - r * C, b = r / L;
    float a[8], d[8], s[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    load8(x + i, a);
    load8(y + i, d);
    if (gate >= 0) load8(mod + (b * n + gate) * C + c, s);
#pragma unroll
    for (int k = 0; k < 8; k++) a[k] = gate >= 0 ? a[k] + d[k] * s[k] : a[k] + d[k];
    store8(out + i, a);
  }
  for (long long i = groups * 8 + t; i < total; i += stride) {
    long long r = i / C, c = i - r * C, b = r / L;
    float d = to_float(y[i]);
    out[i] = from_float<TX>(to_float(x[i]) + (gate >= 0 ? d * mod[(b * n + gate) * C + c] : d));
  }
}

// dy = dx·gate (or dx): TI is dx's type, TO dy's.
template <typename TI, typename TO>
__device__ void gated_residual_bwd(TO* dy, const TI* dx, const float* mod, int n, int gate, long long L, long long C,
                                   long long total) {
  long long t = global_thread(), stride = global_threads();
  bool vec = C % 8 == 0 && aligned8(dy) && aligned8(dx) && aligned8(mod);
  long long groups = vec ? total / 8 : 0;
  for (long long g = t; g < groups; g += stride) {
    long long i = g * 8, r = i / C, c = i - r * C, b = r / L;
    float d[8], s[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    load8(dx + i, d);
    if (gate >= 0) load8(mod + (b * n + gate) * C + c, s);
#pragma unroll
    for (int k = 0; k < 8; k++) d[k] *= s[k];
    store8(dy + i, d);
  }
  for (long long i = groups * 8 + t; i < total; i += stride) {
    long long r = i / C, c = i - r * C, b = r / L;
    float d = to_float(dx[i]);
    dy[i] = from_float<TO>(gate >= 0 ? d * mod[(b * n + gate) * C + c] : d);
  }
}

#define MODULATION(TI, TO, S)                                                                                         \
  extern "C" __global__ void modulate_fwd_##S(TO* out, const TI* x, const float* mod, int n, int shift, int scale,    \
                                              long long L, long long C, long long total) {                            \
    modulate<TI, TO>(out, x, mod, n, shift, scale, L, C, total, false);                                               \
  }                                                                                                                   \
  extern "C" __global__ void modulate_bwd_##S(TO* dx, const TI* dOut, const float* mod, int n, int scale, long long L, \
                                              long long C, long long total) {                                         \
    modulate<TI, TO>(dx, dOut, mod, n, 0, scale, L, C, total, true);                                                  \
  }                                                                                                                   \
  extern "C" __global__ void gated_residual_bwd_##S(TO* dy, const TI* dx, const float* mod, int n, int gate,           \
                                                    long long L, long long C, long long total) {                      \
    gated_residual_bwd<TI, TO>(dy, dx, mod, n, gate, L, C, total);                                                    \
  }                                                                                                                   \
  /* here TI is the residual x's type and TO the branch y's */                                                        \
  extern "C" __global__ void gated_residual_fwd_##S(TI* x, const TO* y, const float* mod, int n, int gate,            \
                                                    long long L, long long C, long long total) {                      \
    gated_residual<TI, TO>(x, y, mod, n, gate, L, C, total);                                                          \
  }                                                                                                                   \
  extern "C" __global__ void add_gated_residual_fwd_##S(TI* out, const TI* x, const TO* y, const float* mod, int n,   \
                                                        int gate, long long L, long long C, long long total) {        \
    add_gated_residual<TI, TO>(out, x, y, mod, n, gate, L, C, total);                                                 \
  }

FOR_EACH_IO(MODULATION)
