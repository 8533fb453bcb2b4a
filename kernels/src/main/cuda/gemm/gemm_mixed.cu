// gemm_mixed_fwd_<a>_<b>_<c>: c = alpha·op(a)·op(b) + beta·c (+ bias[n]) when a and b differ in dtype, which
// cuBLASLt does not take. Wan needs it for the time embedding: f32 activations times a bf16 weight, which musubi
// computes under fp32 autocast, i.e. with the weight widened exactly to f32 — the same values used here.
// Shapes as Backend.gemm: op(a) (M, K), op(b) (K, N), c (M, N) row-major; bias (N) f32 or bf16 (biasType), or null.
// Thread mapping: one warp per output element, grid-stride over elements; lanes stride over k (coalesced when k is
// the contiguous dim of both operands, the Linear forward x·wᵀ), fp32 accumulation, a fixed shuffle tree.
// Meant for few rows (the time embedding has M = batch); it reads op(b) once per row of c. beta = 0 never reads c.
// Deterministic.
#include "wanlora.cuh"

template <typename TA, typename TB, typename TC>
__device__ void gemm_mixed(TC* c, const TA* a, const TB* b, const void* bias, int biasType, long long M, long long N,
                           long long K, int transA, int transB, float alpha, float beta) {
  int lane = threadIdx.x & 31;
  long long warps = global_threads() / 32;
  for (long long o = global_thread() / 32; o < M * N; o += warps) {
    long long m = o / N, n = o % N;
    float s = 0.f;
    for (long long k = lane; k < K; k += 32) {
      float av = to_float(transA ? a[k * M + m] : a[m * K + k]);
      float bv = to_float(transB ? b[n * K + k] : b[k * N + n]);
      s += av * bv;
    }
    s = warp_sum(s);
    if (lane == 0) {
      float v = alpha * s;
      if (beta != 0.f) v += beta * to_float(c[o]);
      if (bias != nullptr) v += load_param(bias, biasType, n);
      c[o] = from_float<TC>(v);
    }
  }
}

#define GEMM_MIXED(TA, TB, TC)                                                                                       \
  extern "C" __global__ void gemm_mixed_fwd_##TA##_##TB##_##TC(TC* c, const TA* a, const TB* b, const void* bias,  \
                                                               int biasType, long long M, long long N, long long K, \
                                                               int transA, int transB, float alpha, float beta) {   \
    gemm_mixed<TA, TB, TC>(c, a, b, bias, biasType, M, N, K, transA, transB, alpha, beta);                          \
  }

GEMM_MIXED(f32, bf16, f32)
GEMM_MIXED(f32, bf16, bf16)
GEMM_MIXED(bf16, f32, f32)
GEMM_MIXED(bf16, f32, bf16)
