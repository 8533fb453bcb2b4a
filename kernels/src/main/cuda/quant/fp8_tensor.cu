// The operands of the fp8 compute path (--fp8_compute; GemmOps#quantizeFp8Tensor, #dequantizeFp8Tensor), bit for
// bit the CPU reference engine/cpu/CpuFp8Gemm: per-tensor E4M3 codes with one fp32 scale, the format of cuBLASLt's
// scalar scale mode (CUBLASLT_MATMUL_DESC_A/B_SCALE_POINTER), which every fp8 tensor-core GPU runs (sm_89, sm_90).
//
// amax_partial_fwd_<x>(partials, x, n): block b writes partials[b] = max |x[i]| over its grid-stride share (fmaxf,
//   so a NaN element is ignored). Launched with at most 1024 blocks of 256 threads.
// quantize_fp8_tensor_fwd_<x>(codes, scale, partials, num_partials, x, n): every block reduces the partials to
//   amax, s = amax > 0 ? amax / 448 : 1 (IEEE division, __fdiv_rn); block 0 stores scale[0] = s; then
//   codes[i] = e4m3_rn(clamp(x[i] / s, -448, 448)) (clamped before the non-saturating cast: the quotient of the
//   largest element may round just above 448; a NaN stays NaN).
// dequantize_fp8_tensor_fwd_<out>(out, codes, scale, n): out[i] = round_out(fp32(codes[i] * scale[0])).
// Two launches make the reduction deterministic without atomics or a memset: the partials are written by one block
// each, and max is exact in any order, so the result does not depend on the grid.
// Thread mapping: grid-stride over groups of 8 elements (16-byte loads of bf16, two of f32, 8-byte stores of codes)
// when the pointers allow it, element by element otherwise and for the tail. Denormals kept (no fast-math).
#include "wanlora.cuh"

// Max over the block (every value >= 0 or NaN-free: fmaxf), valid in thread 0. `scratch`: 32 floats of shared memory.
__device__ __forceinline__ float block_max(float v, float* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : 0.f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, o));
  return t;
}

template <typename T>
__device__ void amax_partial(float* __restrict__ partials, const T* __restrict__ x, long long n) {
  __shared__ float scratch[32];
  long long t = global_thread(), stride = global_threads();
  long long groups = aligned8(x) ? n / 8 : 0;
  float m = 0.f;
  for (long long g = t; g < groups; g += stride) {
    float v[8];
    load8(x + g * 8, v);
#pragma unroll
    for (int k = 0; k < 8; k++) m = fmaxf(m, fabsf(v[k]));
  }
  for (long long i = groups * 8 + t; i < n; i += stride) m = fmaxf(m, fabsf(to_float(x[i])));
  m = block_max(m, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = m;
}

__device__ __forceinline__ float saturate448(float q) { return q > 448.f ? 448.f : (q < -448.f ? -448.f : q); }

template <typename T>
__device__ void quantize_tensor(f8e4m3* __restrict__ codes, float* __restrict__ scale, const float* __restrict__ partials,
                                int num_partials, const T* __restrict__ x, long long n) {
  __shared__ float scratch[32];
  __shared__ float shared_scale;
  float m = 0.f;
  for (int i = threadIdx.x; i < num_partials; i += blockDim.x) m = fmaxf(m, partials[i]);
  m = block_max(m, scratch);
  if (threadIdx.x == 0) {
    shared_scale = m > 0.f ? __fdiv_rn(m, 448.f) : 1.f;
    if (blockIdx.x == 0) scale[0] = shared_scale;
  }
  __syncthreads();
  float s = shared_scale;
  long long t = global_thread(), stride = global_threads();
  long long groups = aligned8(x) && aligned8(codes) ? n / 8 : 0;
  for (long long g = t; g < groups; g += stride) {
    float v[8];
    load8(x + g * 8, v);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = saturate448(__fdiv_rn(v[k], s));
    store8(codes + g * 8, v);
  }
  for (long long i = groups * 8 + t; i < n; i += stride) {
    codes[i] = from_float<f8e4m3>(saturate448(__fdiv_rn(to_float(x[i]), s)));
  }
}

template <typename TO>
__device__ void dequantize_tensor(TO* __restrict__ out, const f8e4m3* __restrict__ codes, const float* __restrict__ scale,
                                  long long n) {
  float s = scale[0];
  long long t = global_thread(), stride = global_threads();
  long long groups = aligned8(out) && aligned8(codes) ? n / 8 : 0;
  for (long long g = t; g < groups; g += stride) {
    float v[8];
    load8(codes + g * 8, v);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = __fmul_rn(v[k], s);
    store8(out + g * 8, v);
  }
  for (long long i = groups * 8 + t; i < n; i += stride) out[i] = from_float<TO>(__fmul_rn(to_float(codes[i]), s));
}

#define FP8_TENSOR(T)                                                                                                   \
  extern "C" __global__ void amax_partial_fwd_##T(float* partials, const T* x, long long n) {                          \
    amax_partial<T>(partials, x, n);                                                                                    \
  }                                                                                                                     \
  extern "C" __global__ void quantize_fp8_tensor_fwd_##T(f8e4m3* codes, float* scale, const float* partials,           \
                                                        int num_partials, const T* x, long long n) {                    \
    quantize_tensor<T>(codes, scale, partials, num_partials, x, n);                                                     \
  }                                                                                                                     \
  extern "C" __global__ void dequantize_fp8_tensor_fwd_##T(T* out, const f8e4m3* codes, const float* scale,            \
                                                          long long n) {                                                \
    dequantize_tensor<T>(out, codes, scale, n);                                                                         \
  }

FP8_TENSOR(bf16)
FP8_TENSOR(f32)
