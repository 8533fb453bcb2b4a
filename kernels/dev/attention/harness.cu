// Dev harness (not shipped): extern "C" host launchers over raw device pointers for check_bench.py (ctypes).
// The default configuration launches the shipped extern "C" kernels; fa_set_config selects other warp counts of the
// same kernel templates, fa_set_fwd the forward (0: portable, 1: sm_90a shipped, 2-4: sm_90a variants), fa_set_bwd
// the backward kernels (0: portable, 1: sm_90a dQ, 2: sm_90a dK/dV, 3: both, 4: sm_90a fused with ordered dQ,
// 5: fused with racy dQ adds, timing only; 6: fused v1 (no pipelining, dK from registers); 7: 4 or 3 by grid size;
// 8: pipelined, dK from registers; 9: not pipelined, dK from shared memory; 10: 4 in launches of 7 heads;
// 11: 4 in one launch); dev
// comparison only. Build (sm_90a, for the wgmma kernels): see stage.sh.
#define WANLORA_DEV_SPIN_LIMIT (1ll << 22)
#include "../../src/main/cuda/attention/flash_attention.cu"
#include "../../src/main/cuda/attention_sm90a/flash_attention_sm90.cu"

#include <cuda_runtime.h>

#include <algorithm>

using namespace wanlora_attention;

namespace {
template <int W>
__global__ void __launch_bounds__(W * 32, 1) fwd_dev(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q,
                                                     const __nv_bfloat16* k, const __nv_bfloat16* v, int N, int Lq,
                                                     int Lk) {
  forward<W>(out, lse, q, k, v, N, Lq, Lk);
}
template <int W>
__global__ void __launch_bounds__(W * 32, 1) dkdv_dev(__nv_bfloat16* dk, __nv_bfloat16* dv, const __nv_bfloat16* dOut,
                                                      const __nv_bfloat16* q, const __nv_bfloat16* k,
                                                      const __nv_bfloat16* v, const float* lse, const float* delta,
                                                      int N, int Lq, int Lk) {
  backward_dkdv<W>(dk, dv, dOut, q, k, v, lse, delta, N, Lq, Lk);
}
template <int W>
__global__ void __launch_bounds__(W * 32, 1) dq_dev(__nv_bfloat16* dq, const __nv_bfloat16* dOut,
                                                    const __nv_bfloat16* q, const __nv_bfloat16* k,
                                                    const __nv_bfloat16* v, const float* lse, const float* delta, int N,
                                                    int Lq, int Lk) {
  backward_dq<W>(dq, dOut, q, k, v, lse, delta, N, Lq, Lk);
}

template <int S, bool O, bool P = false>
__global__ void __launch_bounds__(wanlora_attention_sm90::kThreads, 1)
    fwd90_dev(__nv_bfloat16* out, float* lse, const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
              int N, int Lq, int Lk) {
  wanlora_attention_sm90::forward<S, O, P>(out, lse, q, k, v, N, Lq, Lk);
}

template <bool O, bool P, bool DK>
__global__ void __launch_bounds__(wanlora_attention_sm90::kThreads, 1)
    fused_dev(__nv_bfloat16* dk, __nv_bfloat16* dv, float* dqAcc, int* sem, const __nv_bfloat16* dOut,
              const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, const float* lse,
              const float* delta, int N, int Lq, int Lk, int bh0) {
  wanlora_attention_sm90::backward_fused<2, O, P, DK>(dk, dv, dqAcc, sem, dOut, q, k, v, lse, delta, N, Lq, Lk, bh0);
}

// The fused launches take as many (batch, head) pairs as keep dqAcc within this (as DeviceFacts.AttentionWorkspace.
// FUSED_ACC_BUDGET, the shipped rule): all 40 heads of one sample up to 6912 tokens, 16 at 32760.
constexpr long long kFusedAccBudget = 256ll << 20;

int fwdVariant = 0, bwdVariant = 0;   // bwd: 0 portable, 1 sm_90a dQ, 2 sm_90a dK/dV, 3 both
int fwdWarps = kFwdWarps, dkdvWarps = kBwdWarps, dqWarps = kBwdWarps;

template <typename F>
cudaError_t allowSmem(F* f, int bytes) { return cudaFuncSetAttribute(f, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes); }
#define CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) return e_; } while (0)
}  // namespace

extern "C" int fa_set_config(int fwdW, int dkdvW, int dqW) {
  fwdWarps = fwdW; dkdvWarps = dkdvW; dqWarps = dqW;
  CHECK(allowSmem(attention_fwd_bf16, fwdSmemBytes(kFwdWarps)));
  CHECK(allowSmem(attention_bwd_dkdv_bf16, dkdvSmemBytes(kBwdWarps)));
  CHECK(allowSmem(attention_bwd_dq_bf16, dqSmemBytes(kBwdWarps)));
  CHECK(allowSmem(fwd_dev<4>, fwdSmemBytes(4)));
  CHECK(allowSmem(fwd_dev<8>, fwdSmemBytes(8)));
  CHECK(allowSmem(dkdv_dev<4>, dkdvSmemBytes(4)));
  CHECK(allowSmem(dkdv_dev<8>, dkdvSmemBytes(8)));
  CHECK(allowSmem(dq_dev<4>, dqSmemBytes(4)));
  CHECK(allowSmem(dq_dev<8>, dqSmemBytes(8)));
  CHECK(allowSmem(attention_fwd_sm90_bf16, wanlora_attention_sm90::smemBytes(2)));
  CHECK(allowSmem(fwd90_dev<3, false>, wanlora_attention_sm90::smemBytes(3)));
  CHECK(allowSmem(fwd90_dev<3, true>, wanlora_attention_sm90::smemBytes(3)));
  CHECK(allowSmem((fwd90_dev<2, false, true>), wanlora_attention_sm90::smemBytes(2)));
  return cudaSuccess;
}

extern "C" int fa_set_fwd(int variant) {
  fwdVariant = variant;
  return cudaSuccess;
}

extern "C" int fa_set_bwd(int variant) {
  bwdVariant = variant;
  CHECK(allowSmem(attention_bwd_dq_sm90_bf16, wanlora_attention_sm90::dqSmemBytes(2)));
  CHECK(allowSmem(attention_bwd_dkdv_sm90_bf16, wanlora_attention_sm90::dkdvSmemBytes(2)));
  CHECK(allowSmem(attention_bwd_fused_sm90_bf16, wanlora_attention_sm90::fusedSmemBytes(2)));
  CHECK(allowSmem((fused_dev<false, true, true>), wanlora_attention_sm90::fusedSmemBytes(2)));
  CHECK(allowSmem((fused_dev<true, false, false>), wanlora_attention_sm90::fusedSmemBytes(2)));
  CHECK(allowSmem((fused_dev<true, true, false>), wanlora_attention_sm90::fusedSmemBytes(2)));
  CHECK(allowSmem((fused_dev<true, false, true>), wanlora_attention_sm90::fusedSmemBytes(2)));
  return cudaSuccess;
}

extern "C" int fa_fwd(void* out, void* lse, const void* q, const void* k, const void* v, int B, int N, int Lq, int Lk,
                      void* stream) {
  auto o = (__nv_bfloat16*)out;
  auto qq = (const __nv_bfloat16*)q, kk = (const __nv_bfloat16*)k, vv = (const __nv_bfloat16*)v;
  cudaStream_t s = (cudaStream_t)stream;
  if (fwdVariant != 0) {
    using namespace wanlora_attention_sm90;
    dim3 grid90((Lq + kBr - 1) / kBr, B * N);
    if (fwdVariant == 1) {
      attention_fwd_sm90_bf16<<<grid90, kThreads, smemBytes(2), s>>>(o, (float*)lse, qq, kk, vv, N, Lq, Lk);
    } else if (fwdVariant == 2) {
      fwd90_dev<3, false><<<grid90, kThreads, smemBytes(3), s>>>(o, (float*)lse, qq, kk, vv, N, Lq, Lk);
    } else if (fwdVariant == 3) {
      fwd90_dev<3, true><<<grid90, kThreads, smemBytes(3), s>>>(o, (float*)lse, qq, kk, vv, N, Lq, Lk);
    } else {   // 4: the shipped order, O rescaled only when a row's max changed
      fwd90_dev<2, false, true><<<grid90, kThreads, smemBytes(2), s>>>(o, (float*)lse, qq, kk, vv, N, Lq, Lk);
    }
    return cudaGetLastError();
  }
  dim3 grid((Lq + 16 * fwdWarps - 1) / (16 * fwdWarps), B * N);
  if (fwdWarps == kFwdWarps) {
    attention_fwd_bf16<<<grid, 32 * kFwdWarps, fwdSmemBytes(kFwdWarps), s>>>(o, (float*)lse, qq, kk, vv, N, Lq, Lk);
  } else if (fwdWarps == 4) {
    fwd_dev<4><<<grid, 128, fwdSmemBytes(4), s>>>(o, (float*)lse, qq, kk, vv, N, Lq, Lk);
  } else {
    fwd_dev<8><<<grid, 256, fwdSmemBytes(8), s>>>(o, (float*)lse, qq, kk, vv, N, Lq, Lk);
  }
  return cudaGetLastError();
}

// Workspace: delta (B, N, Lq) f32; for the fused backward (variants 4, 5) also semaphores (B·N, T) int32 and dqAcc
// (B·N, T, 8192) f32, T = ceil(Lq/64), each at a 256-byte boundary.
static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }
static size_t semOffset(int B, int N, int Lq) { return align256((size_t)B * N * Lq * 4); }
static size_t accOffset(int B, int N, int Lq) {
  return semOffset(B, N, Lq) + align256((size_t)B * N * ((Lq + 63) / 64) * 4);
}
extern "C" size_t fa_bwd_workspace_bytes(int B, int N, int Lq, int Lk) {
  return accOffset(B, N, Lq) + (size_t)B * N * ((Lq + 63) / 64) * wanlora_attention_sm90::kDqTileFloats * 4;
}

extern "C" int fa_bwd(void* dq, void* dk, void* dv, const void* dOut, const void* q, const void* k, const void* v,
                      const void* out, const void* lse, void* workspace, int B, int N, int Lq, int Lk, void* stream) {
  cudaStream_t s = (cudaStream_t)stream;
  float* delta = (float*)workspace;
  auto d = (const __nv_bfloat16*)dOut;
  auto qq = (const __nv_bfloat16*)q, kk = (const __nv_bfloat16*)k, vv = (const __nv_bfloat16*)v;
  const float* l = (const float*)lse;
  long long threads = (long long)B * Lq * N * 16;
  int blocks = (int)((threads + 255) / 256);
  if (blocks > 132 * 16) blocks = 132 * 16;
  attention_bwd_preprocess_bf16<<<blocks, 256, 0, s>>>(delta, d, (const __nv_bfloat16*)out, B, N, Lq);
  CHECK(cudaGetLastError());
  using wanlora_attention_sm90::kBr;
  // 7: the shipped dispatch: fused when its grid has at least 4 CTAs per SM of an H100/H200 (132), else 3
  const int variant = bwdVariant != 7 ? bwdVariant : ((Lk + 127) / 128) * B * N >= 4 * 132 ? 4 : 3;
  if (variant >= 4) {  // 4: fused, ordered dQ (deterministic, shipped); 5: its racy twin (timing only); 6, 8, 9
    // variants; 10: 4 in launches of 7 (batch, head) pairs; 11: 4 in one launch. 4-9: as many pairs per launch as
    // keep dqAcc within kFusedAccBudget (the shipped rule, CudaAttention).
    using namespace wanlora_attention_sm90;
    const int T = (Lq + 63) / 64, BN = B * N;
    const int fit = (int)std::max<long long>(1, kFusedAccBudget / ((long long)T * kDqTileFloats * 4));
    const int G = variant == 10 ? 7 : variant == 11 ? BN : std::min(BN, fit);
    int* sem = (int*)((char*)workspace + semOffset(B, N, Lq));
    float* acc = (float*)((char*)workspace + accOffset(B, N, Lq));
    for (int bh0 = 0; bh0 < BN; bh0 += G) {
      const int g = std::min(G, BN - bh0);
      CHECK(cudaMemsetAsync(sem, 0, (size_t)g * T * 4, s));
      dim3 grid90((Lk + kBr - 1) / kBr, g);
      auto dk_ = (__nv_bfloat16*)dk;
      auto dv_ = (__nv_bfloat16*)dv;
      if (variant == 4 || variant >= 10) {
        attention_bwd_fused_sm90_bf16<<<grid90, kThreads, fusedSmemBytes(2), s>>>(dk_, dv_, acc, sem, d, qq, kk, vv, l,
                                                                                   delta, N, Lq, Lk, bh0);
      } else if (variant == 5) {
        fused_dev<false, true, true><<<grid90, kThreads, fusedSmemBytes(2), s>>>(dk_, dv_, acc, sem, d, qq, kk, vv, l,
                                                                                 delta, N, Lq, Lk, bh0);
      } else if (variant == 6) {  // the first fused version (no pipelining of S_{i+1}, dK from registers)
        fused_dev<true, false, false><<<grid90, kThreads, fusedSmemBytes(2), s>>>(dk_, dv_, acc, sem, d, qq, kk, vv, l,
                                                                                  delta, N, Lq, Lk, bh0);
      } else if (variant == 8) {  // pipelined, dK from registers
        fused_dev<true, true, false><<<grid90, kThreads, fusedSmemBytes(2), s>>>(dk_, dv_, acc, sem, d, qq, kk, vv, l,
                                                                                 delta, N, Lq, Lk, bh0);
      } else {  // 9: not pipelined, dK from shared memory
        fused_dev<true, false, true><<<grid90, kThreads, fusedSmemBytes(2), s>>>(dk_, dv_, acc, sem, d, qq, kk, vv, l,
                                                                                 delta, N, Lq, Lk, bh0);
      }
      CHECK(cudaGetLastError());
      attention_bwd_dq_convert_sm90_bf16<<<132 * 8, 256, 0, s>>>((__nv_bfloat16*)dq, acc, N, Lq, bh0, g);
      CHECK(cudaGetLastError());
    }
    return cudaSuccess;
  }
  if (variant & 2) {
    dim3 grid90((Lk + kBr - 1) / kBr, B * N);
    attention_bwd_dkdv_sm90_bf16<<<grid90, wanlora_attention_sm90::kThreads, wanlora_attention_sm90::dkdvSmemBytes(2),
                                   s>>>((__nv_bfloat16*)dk, (__nv_bfloat16*)dv, d, qq, kk, vv, l, delta, N, Lq, Lk);
  } else {
  dim3 gridKV((Lk + 16 * dkdvWarps - 1) / (16 * dkdvWarps), B * N);
  if (dkdvWarps == kBwdWarps) {
    attention_bwd_dkdv_bf16<<<gridKV, 32 * kBwdWarps, dkdvSmemBytes(kBwdWarps), s>>>(
        (__nv_bfloat16*)dk, (__nv_bfloat16*)dv, d, qq, kk, vv, l, delta, N, Lq, Lk);
  } else {
    dkdv_dev<8><<<gridKV, 256, dkdvSmemBytes(8), s>>>((__nv_bfloat16*)dk, (__nv_bfloat16*)dv, d, qq, kk, vv, l, delta,
                                                      N, Lq, Lk);
  }
  }
  CHECK(cudaGetLastError());
  if (variant & 1) {
    dim3 grid90((Lq + kBr - 1) / kBr, B * N);
    attention_bwd_dq_sm90_bf16<<<grid90, wanlora_attention_sm90::kThreads, wanlora_attention_sm90::dqSmemBytes(2), s>>>(
        (__nv_bfloat16*)dq, d, qq, kk, vv, l, delta, N, Lq, Lk);
    return cudaGetLastError();
  }
  dim3 gridQ((Lq + 16 * dqWarps - 1) / (16 * dqWarps), B * N);
  if (dqWarps == kBwdWarps) {
    attention_bwd_dq_bf16<<<gridQ, 32 * kBwdWarps, dqSmemBytes(kBwdWarps), s>>>((__nv_bfloat16*)dq, d, qq, kk, vv, l,
                                                                                delta, N, Lq, Lk);
  } else {
    dq_dev<8><<<gridQ, 256, dqSmemBytes(8), s>>>((__nv_bfloat16*)dq, d, qq, kk, vv, l, delta, N, Lq, Lk);
  }
  return cudaGetLastError();
}
