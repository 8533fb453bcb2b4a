// Dev harness (not shipped): extern "C" host launchers over raw device pointers for check_bench.py (ctypes).
// Build: nvcc -shared -Xcompiler -fPIC -O3 -std=c++17 -I../../src/main/cuda/common
//        -gencode arch=compute_90,code=sm_90 -o libattn.so harness.cu
#include "../../src/main/cuda/attention/flash_attention.cu"

#include <cuda_runtime.h>

namespace {
size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }
int queryBlocks(int Lq) { return (Lq + kBwdRows - 1) / kBwdRows; }
}  // namespace

extern "C" int fa_fwd(void* out, void* lse, const void* q, const void* k, const void* v, int B, int N, int Lq, int Lk,
                      void* stream) {
  static bool configured = false;
  if (!configured) {
    cudaError_t e = cudaFuncSetAttribute(attention_fwd_bf16, cudaFuncAttributeMaxDynamicSharedMemorySize, kFwdSmemBytes);
    if (e != cudaSuccess) return e;
    configured = true;
  }
  dim3 grid((Lq + kFwdRows - 1) / kFwdRows, B * N);
  attention_fwd_bf16<<<grid, kFwdWarps * 32, kFwdSmemBytes, (cudaStream_t)stream>>>(
      (__nv_bfloat16*)out, (float*)lse, (const __nv_bfloat16*)q, (const __nv_bfloat16*)k, (const __nv_bfloat16*)v, N,
      Lq, Lk);
  return cudaGetLastError();
}

// Workspace: dqAccum (B, Lq, N·D) f32 | delta (B, N, Lq) f32 | control (B·N·ceil(Lq/64) + 1) int32.
extern "C" size_t fa_bwd_workspace_bytes(int B, int N, int Lq, int Lk) {
  return align256((size_t)B * Lq * N * kHeadDim * 4) + align256((size_t)B * N * Lq * 4) +
         align256(((size_t)B * N * queryBlocks(Lq) + 1) * 4);
}

extern "C" int fa_bwd(void* dq, void* dk, void* dv, const void* dOut, const void* q, const void* k, const void* v,
                      const void* out, const void* lse, void* workspace, int B, int N, int Lq, int Lk, void* stream) {
  static bool configured = false;
  if (!configured) {
    cudaError_t e = cudaFuncSetAttribute(attention_bwd_bf16, cudaFuncAttributeMaxDynamicSharedMemorySize, kBwdSmemBytes);
    if (e != cudaSuccess) return e;
    configured = true;
  }
  char* ws = (char*)workspace;
  float* dqAccum = (float*)ws;
  float* delta = (float*)(ws + align256((size_t)B * Lq * N * kHeadDim * 4));
  int* control = (int*)((char*)delta + align256((size_t)B * N * Lq * 4));
  const int numControl = B * N * queryBlocks(Lq) + 1;
  long long threads = (long long)B * Lq * N * 16;
  int blocks = (int)((threads + 255) / 256);
  if (blocks > 132 * 32) blocks = 132 * 32;
  attention_bwd_preprocess_bf16<<<blocks, 256, 0, (cudaStream_t)stream>>>(
      delta, control, (const __nv_bfloat16*)dOut, (const __nv_bfloat16*)out, B, N, Lq, numControl);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const int numKeyBlocks = (Lk + kBwdKeys - 1) / kBwdKeys;
  attention_bwd_bf16<<<B * N * numKeyBlocks, kBwdWarps * 32, kBwdSmemBytes, (cudaStream_t)stream>>>(
      (__nv_bfloat16*)dq, (__nv_bfloat16*)dk, (__nv_bfloat16*)dv, dqAccum, control, (const __nv_bfloat16*)dOut,
      (const __nv_bfloat16*)q, (const __nv_bfloat16*)k, (const __nv_bfloat16*)v, (const float*)lse, delta, N, Lq, Lk);
  return cudaGetLastError();
}
