// Shared helpers for wanlora kernels: dtype conversion, 8-element vector loads/stores and block reductions.
// Every kernel symbol is extern "C" and named <op>_<pass>_<dtype> (STYLE.md §3); when a kernel's tensors differ in
// dtype the suffix lists them in the order its header states (e.g. convert_fwd_f32_bf16: f32 in, bf16 out).
// All arithmetic is fp32 (float64 where a kernel says so); narrowing stores round to nearest even.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <stdint.h>

typedef float f32;
typedef __nv_bfloat16 bf16;
typedef __half f16;
typedef __nv_fp8_e4m3 f8e4m3;
typedef __nv_fp8_e5m2 f8e5m2;

// ------------------------------------------------------------------------------------------------ conversions

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(f16 x) { return __half2float(x); }
__device__ __forceinline__ float to_float(f8e4m3 x) { return float(x); }
__device__ __forceinline__ float to_float(f8e5m2 x) { return float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }
template <> __device__ __forceinline__ f16 from_float<f16>(float x) { return __float2half_rn(x); }
// fp8 narrowing without saturation, as torch's .to(float8_e4m3fn): beyond the last rounding midpoint -> NaN (e4m3)
// or Inf (e5m2).
template <> __device__ __forceinline__ f8e4m3 from_float<f8e4m3>(float x) {
  f8e4m3 r; r.__x = __nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E4M3); return r;
}
template <> __device__ __forceinline__ f8e5m2 from_float<f8e5m2>(float x) {
  f8e5m2 r; r.__x = __nv_cvt_float_to_fp8(x, __NV_NOSAT, __NV_E5M2); return r;
}

// x rounded to T's precision, kept as float (musubi's "computed in fp32, stored in bf16" points).
template <typename T> __device__ __forceinline__ float round_to(float x) { return to_float(from_float<T>(x)); }

// The dtype combinations most ops are instantiated for: M(input type, output type, symbol suffix).
#define FOR_EACH_IO(M) M(f32, f32, f32) M(bf16, bf16, bf16) M(bf16, f32, bf16_f32) M(f32, bf16, f32_bf16)

// A small parameter vector (weight, bias) whose dtype is chosen at run time: 0 = f32, 1 = bf16.
enum ParamType { PARAM_F32 = 0, PARAM_BF16 = 1 };
__device__ __forceinline__ float load_param(const void* p, int type, long long i) {
  return type == PARAM_BF16 ? __bfloat162float(((const bf16*)p)[i]) : ((const float*)p)[i];
}

// ------------------------------------------------------------------------------------------------ 8-element vectors
// load8/store8 move 8 consecutive elements with 16-byte accesses (two for f32, one 8-byte access for 1-byte types).
// Requirement: the pointer is aligned to 8·sizeof(T) bytes, or 16 bytes for f32 (see aligned8()).

template <typename T> __device__ __forceinline__ void load8(const T* p, float (&v)[8]) {
  if constexpr (sizeof(T) == 4) {
    float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
  } else if constexpr (sizeof(T) == 2) {
    int4 r = *reinterpret_cast<const int4*>(p);
    const T* e = reinterpret_cast<const T*>(&r);
#pragma unroll
    for (int i = 0; i < 8; i++) v[i] = to_float(e[i]);
  } else {
    uint2 r = *reinterpret_cast<const uint2*>(p);
    const T* e = reinterpret_cast<const T*>(&r);
#pragma unroll
    for (int i = 0; i < 8; i++) v[i] = to_float(e[i]);
  }
}

template <typename T> __device__ __forceinline__ void store8(T* p, const float (&v)[8]) {
  if constexpr (sizeof(T) == 4) {
    reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else if constexpr (sizeof(T) == 2) {
    int4 r;
    T* e = reinterpret_cast<T*>(&r);
#pragma unroll
    for (int i = 0; i < 8; i++) e[i] = from_float<T>(v[i]);
    *reinterpret_cast<int4*>(p) = r;
  } else {
    uint2 r;
    T* e = reinterpret_cast<T*>(&r);
#pragma unroll
    for (int i = 0; i < 8; i++) e[i] = from_float<T>(v[i]);
    *reinterpret_cast<uint2*>(p) = r;
  }
}

// True when p may be used with load8/store8 at element offsets that are multiples of 8.
template <typename T> __device__ __forceinline__ bool aligned8(const T* p) {
  return (reinterpret_cast<uintptr_t>(p) & (sizeof(T) == 1 ? 7 : 15)) == 0;
}

__device__ __forceinline__ long long global_thread() { return blockIdx.x * (long long)blockDim.x + threadIdx.x; }
__device__ __forceinline__ long long global_threads() { return (long long)gridDim.x * blockDim.x; }

// ------------------------------------------------------------------------------------------------ reductions
// Deterministic block sum: warp shuffles in a fixed tree, then warp 0 sums the warps' partials in index order.
// Every thread gets the result. `scratch` holds 32 floats of shared memory; blockDim.x is a multiple of 32.

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float block_sum(float v, float* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous block_sum
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(t);
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ double block_sum(double v, double* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double t = lane < warps ? scratch[lane] : 0.0;
  return warp_sum(t);
}
