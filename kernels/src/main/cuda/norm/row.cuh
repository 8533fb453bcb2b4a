// Row-resident helpers for the norm kernels: each thread of a block owns up to ROW_ELEMS elements of one row, in
// groups of VEC consecutive columns (VEC = 8 with 16-byte accesses, or 1), group g = threadIdx.x + j·blockDim.x.
// A row of C columns fits when ceil(C / VEC) <= ROW_ELEMS / VEC · blockDim.x (C <= 8192 at 1024 threads). Kernels are bounded to
// 1024 threads (<= 64 registers), so any block size up to 1024 launches.
#pragma once
#include "wanlora.cuh"

#define ROW_ELEMS 8

template <int VEC, typename T> __device__ __forceinline__ void load_vec(const T* p, float* v) {
  if constexpr (VEC == 8) {
    float t[8];
    load8(p, t);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = t[k];
  } else {
    v[0] = to_float(p[0]);
  }
}

template <int VEC, typename T> __device__ __forceinline__ void store_vec(T* p, const float* v) {
  if constexpr (VEC == 8) {
    float t[8];
#pragma unroll
    for (int k = 0; k < 8; k++) t[k] = v[k];
    store8(p, t);
  } else {
    p[0] = from_float<T>(v[0]);
  }
}

template <int VEC> __device__ __forceinline__ void load_param_vec(const void* p, int type, long long c, float* v) {
  if constexpr (VEC == 8) {
    float t[8];
    if (type == PARAM_BF16) load8((const bf16*)p + c, t); else load8((const float*)p + c, t);
#pragma unroll
    for (int k = 0; k < 8; k++) v[k] = t[k];
  } else {
    v[0] = load_param(p, type, c);
  }
}
