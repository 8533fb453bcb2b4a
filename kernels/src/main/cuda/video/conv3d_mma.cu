// conv3d on tensor cores (Backend.conv3d, bf16): the same implicit GEMM as conv3d.cu,
//   out(M = To·Ho·Wo, N = Cout) = A(M, K)·Wᵀ(K, N), K = KT·KH·KW·Cin (tap-major, Cin fastest), A gathered on the fly.
//   conv3d_mma_fwd_bf16(out, cache, x, w, bias, biasType, ...): arguments and semantics exactly as conv3d_fwd_bf16,
//   with a 128 × 64 output tile; conv3d_mma96_fwd_bf16 the same with a 128 × 96 tile, for Cout % 96 == 0 (the
//   release VAE's 96, 192 and 384 channels, which 64-wide tiles would pad by a third at 96).
// Thread mapping: a CTA of 256 threads (8 warps as 4 × 2) owns a 128 × BN output tile; each warp a 32 × BN/2
//   sub-tile as 2 × BN/32 WMMA 16×16×16 bf16 fragments with fp32 accumulators. K is walked in tiles of 32 through a
//   2-stage shared-memory pipeline filled by 16-byte cp.async copies (zero-filled outside the image, the tile or K):
//   a copy moves 8 consecutive channels of one position (A: 2 per thread) or of one output channel's weights (B).
//   The epilogue stages the fp32 tile in shared memory (≤ 48 KiB, reusing the pipeline's), adds the bias and stores
//   bf16 (coalesced along Cout).
// Requirements (checked by the launcher, which otherwise uses conv3d_fwd_bf16): Cin % 8 == 0 (8 channels never
//   straddle a tap), x, cache and w 16-byte aligned; sm_80+. No requirement on M, Cout or the geometry.
// Numerics: bf16 products accumulated in fp32 by the tensor cores (summation order differs from conv3d_fwd_bf16),
//   bias added in fp32, one rounding on store. Deterministic: fixed K order, no atomics.
#include <mma.h>
#include "wanlora.cuh"

#define MMA_BM 128
#define MMA_BK 32
#define MMA_LDS (MMA_BK + 8)  // bf16 row pitch in shared memory: 80 bytes, a multiple of 16 (cp.async) and of 8 elements (wmma)

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  int bytes = valid ? 16 : 0;  // 0: nothing is read, the 16 bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

template <int MMA_BN>
__device__ void conv3d_mma(bf16* out, const bf16* cache, const bf16* x, const bf16* w, const void* bias, int biasType,
                           int Tc, int H, int W, int Cin, int KT, int KH, int KW, int To, int Ho, int Wo, int Cout, int st,
                           int ss, int pb) {
#if __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  constexpr int FN = MMA_BN / 32;  // fragments per warp along N
  constexpr int STAGE = (MMA_BM + MMA_BN) * MMA_LDS;  // bf16 elements per pipeline stage
  constexpr int PIPE_BYTES = 2 * STAGE * 2, EPI_BYTES = MMA_BM * MMA_BN * 4;
  __shared__ __align__(128) unsigned char smem[PIPE_BYTES > EPI_BYTES ? PIPE_BYTES : EPI_BYTES];
  bf16* pipe = reinterpret_cast<bf16*>(smem);

  const long long M = (long long)To * Ho * Wo;
  const int K = KT * KH * KW * Cin;
  const long long frame = (long long)H * W * Cin;
  const long long m0 = (long long)blockIdx.x * MMA_BM;
  const int n0 = blockIdx.y * MMA_BN;
  const int tid = threadIdx.x, group = tid % 4, row = tid / 4;  // a copy is 8 channels (group) of one row

  // The two A rows (positions) this thread copies, decoded once.
  int pt[2], ph[2], pw[2];
  bool pValid[2];
#pragma unroll
  for (int j = 0; j < 2; j++) {
    long long m = m0 + row + 64 * j;
    pValid[j] = m < M;
    long long mm = pValid[j] ? m : 0;
    pw[j] = (int)(mm % Wo);
    long long r = mm / Wo;
    ph[j] = (int)(r % Ho);
    pt[j] = (int)(r / Ho);
  }

  auto load = [&](int kt, int stage) {
    bf16* As = pipe + stage * STAGE;
    bf16* Bs = As + MMA_BM * MMA_LDS;
    int k = kt * MMA_BK + group * 8;
    bool kValid = k < K;
    int tap = kValid ? k / Cin : 0, ci = k - tap * Cin;
    int dw = tap % KW, dh = (tap / KW) % KH, dt = tap / (KW * KH);
#pragma unroll
    for (int j = 0; j < 2; j++) {
      const bf16* src = x;
      bool valid = false;
      if (kValid && pValid[j]) {
        int ti = pt[j] * st + dt, ih = ph[j] * ss + dh - pb, iw = pw[j] * ss + dw - pb;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
          src = (ti < Tc ? cache + (long long)ti * frame : x + (long long)(ti - Tc) * frame)
                + ((long long)ih * W + iw) * Cin + ci;
          valid = true;
        }
      }
      cp_async16(As + (row + 64 * j) * MMA_LDS + group * 8, src, valid);
    }
    for (int c = tid; c < MMA_BN * 4; c += 256) {  // B: BN output channels × 4 groups of 8
      int bRow = c / 4, bk = kt * MMA_BK + (c % 4) * 8, bn = n0 + bRow;
      bool bValid = bk < K && bn < Cout;
      cp_async16(Bs + bRow * MMA_LDS + (c % 4) * 8, bValid ? w + (long long)bn * K + bk : w, bValid);
    }
  };

  const int warp = tid / 32, wm = warp % 4, wn = warp / 4;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][FN];
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < FN; j++) wmma::fill_fragment(acc[i][j], 0.f);

  const int tiles = (K + MMA_BK - 1) / MMA_BK;
  load(0, 0);
  cp_async_commit();
  for (int kt = 0; kt < tiles; kt++) {
    if (kt + 1 < tiles) {
      load(kt + 1, (kt + 1) & 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* As = pipe + (kt & 1) * STAGE;
    const bf16* Bs = As + MMA_BM * MMA_LDS;
#pragma unroll
    for (int kk = 0; kk < MMA_BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b[FN];
#pragma unroll
      for (int i = 0; i < 2; i++) wmma::load_matrix_sync(a[i], As + (wm * 32 + i * 16) * MMA_LDS + kk, MMA_LDS);
#pragma unroll
      for (int j = 0; j < FN; j++)
        wmma::load_matrix_sync(b[j], Bs + (wn * (MMA_BN / 2) + j * 16) * MMA_LDS + kk, MMA_LDS);
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < FN; j++) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // the next iteration's copy overwrites this stage
  }

  float* tile = reinterpret_cast<float*>(smem);  // (BM, BN) fp32, reusing the pipeline's memory
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < FN; j++)
      wmma::store_matrix_sync(tile + (wm * 32 + i * 16) * MMA_BN + wn * (MMA_BN / 2) + j * 16, acc[i][j], MMA_BN,
                              wmma::mem_row_major);
  __syncthreads();
  for (int e = tid; e < MMA_BM * MMA_BN; e += blockDim.x) {
    int r = e / MMA_BN, c = e % MMA_BN;
    long long m = m0 + r;
    int n = n0 + c;
    if (m < M && n < Cout) {
      out[m * Cout + n] = from_float<bf16>(tile[e] + (bias ? load_param(bias, biasType, n) : 0.f));
    }
  }
#endif
}

#define CONV3D_MMA(BN, NAME)                                                                                       \
  extern "C" __global__ void __launch_bounds__(256)                                                                \
      NAME(bf16* out, const bf16* cache, const bf16* x, const bf16* w, const void* bias, int biasType, int Tc, int H,  \
           int W, int Cin, int KT, int KH, int KW, int To, int Ho, int Wo, int Cout, int st, int ss, int pb) {         \
    conv3d_mma<BN>(out, cache, x, w, bias, biasType, Tc, H, W, Cin, KT, KH, KW, To, Ho, Wo, Cout, st, ss, pb);      \
  }

CONV3D_MMA(64, conv3d_mma_fwd_bf16)
CONV3D_MMA(96, conv3d_mma96_fwd_bf16)
