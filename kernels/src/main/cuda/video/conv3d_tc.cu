// conv3d on tensor cores (Backend.conv3d, bf16) with mma.sync, ldmatrix and a 4-stage cp.async pipeline (sm_80+,
// so the same code serves the users' sm_86/sm_89 cards and Hopper): the implicit GEMM of conv3d.cu,
//   out(M = To·Ho·Wo, N = Cout) = A(M, K)·Wᵀ(K, N), K = KT·KH·KW·Cin (tap-major, Cin fastest), A gathered on the fly
//   from concat(cache, x) (cache frames read in place, never copied), arguments and semantics exactly as
//   conv3d_fwd_bf16. Four tile shapes, one template (the launcher picks, CudaVideo.conv3d):
//     conv3d_tc128x128_fwd_bf16  BM 128, BN 128, 8 warps of 64×32   (Cout % 128 == 0: the VAE's 384)
//     conv3d_tc128x96_fwd_bf16   BM 128, BN  96, 8 warps of 32×48   (Cout % 96 == 0: 96, 192)
//     conv3d_tc64x64_fwd_bf16    BM  64, BN  64, 4 warps of 32×32   (other Cout, and grids too small to fill the GPU)
//     conv3d_tc128x8_fwd_bf16    BM 128, BN   8, 8 warps of 16×8    (Cout <= 8: the decoder's head, Cout 3)
// Thread mapping: a CTA owns a BM × BN output tile; warp w a WM × WN sub-tile of (WM/16)·(WN/8) m16n8k16 MMAs with
//   fp32 accumulators in registers. K is walked in tiles of 32 through STAGES shared-memory buffers filled by 16-byte
//   cp.async copies, STAGES − 1 tiles ahead of the MMAs (one barrier per tile). A copy moves 8 consecutive channels
//   of one input position (A) or of one output channel's weights (B); each thread keeps one chunk column (tid % 4)
//   and steps its (tap, channel) position by 32 per tile, so the gather needs no division in the loop. Positions
//   outside the image, the tile, M or K are zero-filled by the copy. Rows are padded to 40 bf16 (80 bytes), which
//   makes the 8 rows of every ldmatrix phase land in 8 different 16-byte bank groups (conflict-free).
//   Epilogue: bias added in fp32, rounded to bf16 into shared memory, then stored as coalesced 16-byte rows (scalar
//   stores when Cout % 8 != 0 or out is not 16-byte aligned).
// Requirements (checked by the launcher, which otherwise uses conv3d_fwd_bf16): Cin % 8 == 0 (8 channels never
//   straddle a tap), x, cache and w 16-byte aligned; dynamic shared memory as conv3d_tc_smem_bytes below (80 KiB
//   at most: every sm_80+ GPU allows 99 KiB per block). No requirement on M, Cout or the geometry.
// Numerics: bf16 products accumulated in fp32 by the tensor cores (summation order differs from conv3d_fwd_bf16),
//   bias added in fp32, one rounding on store. Deterministic: fixed K order, no atomics.
#include "wanlora.cuh"

#define TC_BK 32
#define TC_LDS (TC_BK + 8)  // bf16 row pitch of the pipeline buffers: 80 bytes
#define TC_STAGES 4

__device__ __forceinline__ void tc_cp_async16(void* smem, const void* gmem, bool valid) {
  unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  int bytes = valid ? 16 : 0;  // 0: nothing is read, the 16 bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void tc_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void tc_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void tc_ldmatrix_x4(unsigned (&r)[4], const void* smem) {
  unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void tc_ldmatrix_x2(unsigned (&r)[2], const void* smem) {
  unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
}
// d += a·b, a 16×16 (row-major fragments), b 16×8 (column-major), fp32 accumulators.
__device__ __forceinline__ void tc_mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Bytes of dynamic shared memory a tile shape needs: the pipeline, or the bf16 epilogue tile if larger.
constexpr int conv3d_tc_smem_bytes(int BM, int BN) {
  return TC_STAGES * (BM + BN) * TC_LDS * 2 > BM * (BN + 8) * 2 ? TC_STAGES * (BM + BN) * TC_LDS * 2
                                                                 : BM * (BN + 8) * 2;
}

template <int BM, int BN, int WM, int WN>
__device__ void conv3d_tc(bf16* out, const bf16* cache, const bf16* x, const bf16* w, const void* bias, int biasType,
                          int Tc, int H, int W, int Cin, int KT, int KH, int KW, int To, int Ho, int Wo, int Cout, int st,
                          int ss, int pb) {
#if __CUDA_ARCH__ >= 800
  constexpr int WARPS_M = BM / WM, WARPS_N = BN / WN, THREADS = WARPS_M * WARPS_N * 32;
  constexpr int MI = WM / 16, NI = WN / 8;                        // MMAs per warp along M and N
  constexpr int ROWS_PER_PASS = THREADS / 4;                      // 4 chunks of 8 channels per 32-wide K row
  constexpr int A_ITERS = BM / ROWS_PER_PASS;
  constexpr int B_ITERS = (BN + ROWS_PER_PASS - 1) / ROWS_PER_PASS;
  constexpr int STAGE = (BM + BN) * TC_LDS;                       // bf16 elements per pipeline stage
  static_assert(BM % ROWS_PER_PASS == 0, "A rows must split evenly over the threads");
  extern __shared__ __align__(128) unsigned char tc_smem[];
  bf16* pipe = reinterpret_cast<bf16*>(tc_smem);

  const long long M = (long long)To * Ho * Wo;
  const int K = KT * KH * KW * Cin;
  const long long frame = (long long)H * W * Cin;
  const int nTiles = (Cout + BN - 1) / BN;
  const long long m0 = (long long)(blockIdx.x / nTiles) * BM;  // N tiles of one M tile run side by side (L2 reuse of A)
  const int n0 = (blockIdx.x % nTiles) * BN;
  const int tid = threadIdx.x, chunk = tid % 4, row0 = tid / 4;

  // The A rows (positions) this thread copies: first input frame and top-left input pixel of each; a row past M gets
  // an origin that fails the image test, so it is zero-filled.
  int t0[A_ITERS], h0[A_ITERS], w0[A_ITERS];
#pragma unroll
  for (int i = 0; i < A_ITERS; i++) {
    long long m = m0 + row0 + i * ROWS_PER_PASS;
    long long mm = m < M ? m : 0;
    int pw = (int)(mm % Wo);
    long long r = mm / Wo;
    t0[i] = (int)(r / Ho) * st;
    h0[i] = m < M ? (int)(r % Ho) * ss - pb : -(1 << 30);
    w0[i] = pw * ss - pb;
  }
  // This thread's K position (k = tile·32 + chunk·8) as tap (dt, dh, dw) and channel ci, stepped by 32 per load.
  int ci = chunk * 8, dw = 0, dh = 0, dt = 0;
  while (ci >= Cin) {
    ci -= Cin;
    if (++dw == KW) { dw = 0; if (++dh == KH) { dh = 0; ++dt; } }
  }
  int kNext = chunk * 8;  // k of the next load

  auto load = [&](int stage) {
    bf16* As = pipe + stage * STAGE;
    bf16* Bs = As + BM * TC_LDS;
    const bool kValid = kNext < K;
#pragma unroll
    for (int i = 0; i < A_ITERS; i++) {
      const bf16* src = x;
      bool valid = false;
      int ti = t0[i] + dt, ih = h0[i] + dh, iw = w0[i] + dw;
      if (kValid && ih >= 0 && ih < H && iw >= 0 && iw < W) {
        src = (ti < Tc ? cache + (long long)ti * frame : x + (long long)(ti - Tc) * frame)
              + ((long long)ih * W + iw) * Cin + ci;
        valid = true;
      }
      tc_cp_async16(As + (row0 + i * ROWS_PER_PASS) * TC_LDS + chunk * 8, src, valid);
    }
#pragma unroll
    for (int i = 0; i < B_ITERS; i++) {
      int bRow = row0 + i * ROWS_PER_PASS;
      if (bRow < BN) {
        int n = n0 + bRow;
        bool valid = kValid && n < Cout;
        tc_cp_async16(Bs + bRow * TC_LDS + chunk * 8, valid ? w + (long long)n * K + kNext : w, valid);
      }
    }
    kNext += TC_BK;
    ci += TC_BK;
    while (ci >= Cin) {
      ci -= Cin;
      if (++dw == KW) { dw = 0; if (++dh == KH) { dh = 0; ++dt; } }
    }
  };

  const int lane = tid % 32, warp = tid / 32, wm = warp % WARPS_M, wn = warp / WARPS_M;
  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; i++)
#pragma unroll
    for (int j = 0; j < NI; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

  const int tiles = (K + TC_BK - 1) / TC_BK;
#pragma unroll
  for (int s = 0; s < TC_STAGES - 1; s++) {
    if (s < tiles) load(s);
    tc_cp_async_commit();  // empty groups keep the wait count uniform
  }
  // ldmatrix row addresses: A x4 = rows 0–15 × k 0–7 | k 8–15; B x4 = n 0–7 × k 0–7 | k 8–15, then n 8–15.
  const int aRow = lane % 16, aCol = (lane / 16) * 8;
  const int bRow = (lane % 8) + ((lane / 16) * 8), bCol = ((lane / 8) % 2) * 8;
  for (int kt = 0; kt < tiles; kt++) {
    tc_cp_async_wait<TC_STAGES - 2>();
    __syncthreads();  // tile kt is visible to all; every warp is done with the stage the next load overwrites
    if (kt + TC_STAGES - 1 < tiles) load((kt + TC_STAGES - 1) % TC_STAGES);
    tc_cp_async_commit();
    const bf16* As = pipe + (kt % TC_STAGES) * STAGE + (wm * WM) * TC_LDS;
    const bf16* Bs = pipe + (kt % TC_STAGES) * STAGE + BM * TC_LDS + (wn * WN) * TC_LDS;
#pragma unroll
    for (int kk = 0; kk < TC_BK; kk += 16) {
      unsigned a[MI][4], b[NI][2];
#pragma unroll
      for (int i = 0; i < MI; i++) tc_ldmatrix_x4(a[i], As + (i * 16 + aRow) * TC_LDS + kk + aCol);
      if constexpr (NI % 2 == 0) {
#pragma unroll
        for (int j = 0; j < NI; j += 2) {
          unsigned r[4];
          tc_ldmatrix_x4(r, Bs + (j * 8 + bRow) * TC_LDS + kk + bCol);
          b[j][0] = r[0], b[j][1] = r[1], b[j + 1][0] = r[2], b[j + 1][1] = r[3];
        }
      } else {
#pragma unroll
        for (int j = 0; j < NI; j++) tc_ldmatrix_x2(b[j], Bs + (j * 8 + (lane % 8)) * TC_LDS + kk + bCol);
      }
#pragma unroll
      for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++) tc_mma(acc[i][j], a[i], b[j][0], b[j][1]);
    }
  }
  tc_cp_async_wait<0>();
  __syncthreads();  // the pipeline's memory becomes the epilogue tile

  // Accumulator (i, j): rows wm·WM + 16i + lane/4 (+8), columns wn·WN + 8j + 2·(lane % 4) (+1).
  constexpr int CS = BN + 8;  // bf16 pitch of the epilogue tile (a multiple of 8: 16-byte rows)
  bf16* tile = reinterpret_cast<bf16*>(tc_smem);
#pragma unroll
  for (int j = 0; j < NI; j++) {
    int c = wn * WN + j * 8 + 2 * (lane % 4);
    float b0 = 0.f, b1 = 0.f;
    if (bias) {
      b0 = n0 + c < Cout ? load_param(bias, biasType, n0 + c) : 0.f;
      b1 = n0 + c + 1 < Cout ? load_param(bias, biasType, n0 + c + 1) : 0.f;
    }
#pragma unroll
    for (int i = 0; i < MI; i++) {
      int r = wm * WM + i * 16 + lane / 4;
      *reinterpret_cast<__nv_bfloat162*>(tile + r * CS + c) = __floats2bfloat162_rn(acc[i][j][0] + b0, acc[i][j][1] + b1);
      *reinterpret_cast<__nv_bfloat162*>(tile + (r + 8) * CS + c) =
          __floats2bfloat162_rn(acc[i][j][2] + b0, acc[i][j][3] + b1);
    }
  }
  __syncthreads();
  const bool vec = Cout % 8 == 0 && (reinterpret_cast<unsigned long long>(out) & 15) == 0;
  for (int e = tid; e < BM * (BN / 8); e += THREADS) {
    int r = e / (BN / 8), c = (e % (BN / 8)) * 8;
    long long m = m0 + r;
    int n = n0 + c;
    if (m >= M || n >= Cout) continue;
    if (vec) {
      *reinterpret_cast<uint4*>(out + m * Cout + n) = *reinterpret_cast<const uint4*>(tile + r * CS + c);
    } else {
      for (int q = 0; q < 8 && n + q < Cout; q++) out[m * Cout + n + q] = tile[r * CS + c + q];
    }
  }
#endif
}

#define CONV3D_TC(BM, BN, WM, WN)                                                                                   \
  extern "C" __global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32) conv3d_tc##BM##x##BN##_fwd_bf16(         \
      bf16* out, const bf16* cache, const bf16* x, const bf16* w, const void* bias, int biasType, int Tc, int H,     \
      int W, int Cin, int KT, int KH, int KW, int To, int Ho, int Wo, int Cout, int st, int ss, int pb) {            \
    conv3d_tc<BM, BN, WM, WN>(out, cache, x, w, bias, biasType, Tc, H, W, Cin, KT, KH, KW, To, Ho, Wo, Cout, st, ss, \
                              pb);                                                                                   \
  }

CONV3D_TC(128, 128, 64, 32)
CONV3D_TC(128, 96, 32, 48)
CONV3D_TC(64, 64, 32, 32)
CONV3D_TC(128, 8, 16, 8)
