// gated_gelu_fwd_<in>_<out>: T5's gated-GELU product (Backend#gatedGelu): out = x · round_out(gelu_tanh(gate)).
// gate and x share the input type. Thread mapping: grid-stride, one thread per element. Numerics: GELU in fp32
// (tanhf), rounded to out's type before the multiply (musubi's bf16 path), product rounded again. out may be x or
// gate (each element is read before it is written). Deterministic.
#include "wanlora.cuh"

__device__ __forceinline__ float gated_gelu_tanh_f(float v) {
  return 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

#define GATED_GELU(TI, TO, S)                                                                                       \
  extern "C" __global__ void gated_gelu_fwd_##S(TO* out, const TI* gate, const TI* x, long long n) {              \
    for (long long i = global_thread(); i < n; i += global_threads()) {                                            \
      float g = round_to<TO>(gated_gelu_tanh_f(to_float(gate[i])));                                                \
      out[i] = from_float<TO>(to_float(x[i]) * g);                                                                 \
    }                                                                                                              \
  }

FOR_EACH_IO(GATED_GELU)
