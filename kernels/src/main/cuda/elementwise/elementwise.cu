// Elementwise ops over flat tensors: add, scale, silu, gelu (tanh) forward/backward, add_row_vector.
// Symbols: <op>_<pass>_<in>[_<out>] for (in, out) in FOR_EACH_IO (f32, bf16, bf16_f32, f32_bf16).
// Thread mapping: grid-stride loop over groups of 8 elements with 16-byte accesses when every pointer is 8-element
// aligned (and, for add_row_vector, cols % 8 == 0), then a scalar tail; otherwise scalar. Outputs may alias inputs
// (each element is read before it is written, by the same thread). No size requirement.
// Numerics: fp32 math, one rounding on store. silu uses expf, gelu tanhf (full precision, not the fast intrinsics).
// Deterministic: pure elementwise.
#include "wanlora.cuh"

// sqrt(2/pi), the constant of torch's GELU(approximate="tanh").
#define GELU_K 0.7978845608028654f
#define GELU_C 0.044715f

__device__ __forceinline__ float silu_f(float x) { return x / (1.f + expf(-x)); }

__device__ __forceinline__ float gelu_f(float x) { return 0.5f * x * (1.f + tanhf(GELU_K * (x + GELU_C * x * x * x))); }

// d/dx of gelu_f: 0.5(1 + t) + 0.5x(1 − t²)·k(1 + 3c·x²), t = tanh(k(x + c·x³)).
__device__ __forceinline__ float gelu_grad_f(float x) {
  float t = tanhf(GELU_K * (x + GELU_C * x * x * x));
  return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * GELU_K * (1.f + 3.f * GELU_C * x * x);
}

// out[i] = f(a[i], b[i]) where b may be null (unary ops).
template <typename TI, typename TO, typename F>
__device__ __forceinline__ void map2(TO* out, const TI* a, const TI* b, long long n, F f) {
  long long t = global_thread(), stride = global_threads();
  bool vec = aligned8(out) && aligned8(a) && (b == nullptr || aligned8(b));
  long long groups = vec ? n / 8 : 0;
  for (long long g = t; g < groups; g += stride) {
    float va[8], vb[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    load8(a + g * 8, va);
    if (b != nullptr) load8(b + g * 8, vb);
#pragma unroll
    for (int k = 0; k < 8; k++) va[k] = f(va[k], vb[k]);
    store8(out + g * 8, va);
  }
  for (long long i = groups * 8 + t; i < n; i += stride) {
    out[i] = from_float<TO>(f(to_float(a[i]), b != nullptr ? to_float(b[i]) : 0.f));
  }
}

#define ELEMENTWISE(TI, TO, S)                                                                                     \
  extern "C" __global__ void add_fwd_##S(TO* out, const TI* a, const TI* b, long long n) {                         \
    map2<TI, TO>(out, a, b, n, [](float x, float y) { return x + y; });                                 \
  }                                                                                                                \
  extern "C" __global__ void scale_fwd_##S(TO* out, const TI* x, float alpha, long long n) {                       \
    map2<TI, TO>(out, x, (const TI*)nullptr, n, [alpha](float v, float) { return alpha * v; });         \
  }                                                                                                                \
  extern "C" __global__ void silu_fwd_##S(TO* out, const TI* x, long long n) {                                     \
    map2<TI, TO>(out, x, (const TI*)nullptr, n, [](float v, float) { return silu_f(v); });              \
  }                                                                                                                \
  extern "C" __global__ void gelu_tanh_fwd_##S(TO* out, const TI* x, long long n) {                                \
    map2<TI, TO>(out, x, (const TI*)nullptr, n, [](float v, float) { return gelu_f(v); });              \
  }                                                                                                                \
  /* dx = dOut · gelu'(x); inputs dOut and x share TI. */                                                         \
  extern "C" __global__ void gelu_tanh_bwd_##S(TO* dx, const TI* dOut, const TI* x, long long n) {                 \
    map2<TI, TO>(dx, dOut, x, n, [](float d, float v) { return d * gelu_grad_f(v); });                  \
  }                                                                                                                \
  /* out[r, c] = x[r, c] + v[c]; v is f32 or bf16 (vType, see ParamType). */                                       \
  extern "C" __global__ void add_row_vector_fwd_##S(TO* out, const TI* x, const void* v, int vType, long long rows, \
                                                    long long cols) {                                              \
    long long n = rows * cols, t = global_thread(), stride = global_threads();                                     \
    bool vec = aligned8(out) && aligned8(x) && cols % 8 == 0;                                                      \
    long long groups = vec ? n / 8 : 0;                                                                            \
    for (long long g = t; g < groups; g += stride) {                                                               \
      float a[8];                                                                                                  \
      load8(x + g * 8, a);                                                                                         \
      long long c0 = (g * 8) % cols;                                                                               \
      _Pragma("unroll") for (int k = 0; k < 8; k++) a[k] += load_param(v, vType, c0 + k);                         \
      store8(out + g * 8, a);                                                                                      \
    }                                                                                                              \
    for (long long i = groups * 8 + t; i < n; i += stride) {                                                       \
      out[i] = from_float<TO>(to_float(x[i]) + load_param(v, vType, i % cols));                                    \
    }                                                                                                              \
  }

FOR_EACH_IO(ELEMENTWISE)
