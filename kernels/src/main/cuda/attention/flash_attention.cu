// Flash attention (FlashAttention-2-style tiling, no mask) for head dim D = 128: bf16 q/k/v/out, fp32 accumulation.
// Contract: Backend.attention / Backend.attentionBackward. q, out, dq, dOut (B, Lq, N·D) and k, v, dk, dv
// (B, Lk, N·D) row-major bf16, element (b, l, h, d) at ((b·L + l)·N + h)·D + d; lse (B, N, Lq) F32 natural log.
// Invariant: the scores S = q·kᵀ/√128 never exist as an L×L matrix; a warp holds one 16×64 tile of them in registers.
//
// Tensor cores through mma.sync.m16n8k16 (bf16 in, fp32 accumulate); operands come from shared memory by ldmatrix,
// tiles are copied in by cp.async (16-byte chunks, zero-filled past the sequence end). A shared tile row of 128 bf16
// (256 bytes, 16 chunks) stores chunk c at position c ^ (row & 7): the 8 row addresses of one ldmatrix phase and the
// 8 chunk writes of one cp.async phase hit 8 distinct 4-bank groups, so neither conflicts.
// Every kernel fits the 99 KiB of shared memory a block may have on sm_86/sm_89 (sm_80 and sm_90 hold 2 CTAs per SM;
// 255 registers × 128 threads × 2 CTAs just fit the 64 K register file). Requirements: D = 128; pointers 16-byte aligned (every row then is, as N·D·2
// bytes is a multiple of 16); Lq, Lk ≥ 1, any value (ragged tails are zero-filled and masked).
//
// attention_fwd_bf16 — grid (ceil(Lq/64), B·N), 128 threads = 4 warps, 80 KiB dynamic shared memory.
//   A CTA owns 64 query rows of one (b, h); warp w owns rows 16w..16w+15 and keeps their q fragments in registers.
//   K/V stream through in 64-row tiles, double-buffered (Q 16 KiB, K 2×16 KiB, V 2×16 KiB): tile j+1 is in flight
//   while tile j is computed. Per tile: S = Q·Kᵀ (16×64 per warp), online softmax in the log2 domain (m = running
//   max of S·log2(e)/√128, l = running Σ 2^(S·c − m), the 4 threads of a row reduce by shuffles), P rounded to bf16
//   feeds O += P·V straight from the accumulator registers (the m16n8k16 C fragment is the A fragment).
//   out = O / l (bf16, round to nearest even), staged through shared memory for 16-byte stores; lse = (m + log2 l)·ln 2.
//   (8 warps / 128 rows halves the K/V re-reads and is 4 % faster at L = 32760 but 10 % slower at L = 3744 on an
//   H200: kernels/dev/attention/NOTES.md.)
//
// attention_bwd_preprocess_bf16 — delta[b, h, i] = Σ_d dOut·out in fp32 (from the bf16 tensors): 16 threads per
//   (row, head), 16-byte loads. delta is the rowsum(dP∘P) of the softmax backward.
//
// attention_bwd_dkdv_bf16 — grid (ceil(Lk/64), B·N), 128 threads = 4 warps, 97 KiB dynamic shared memory.
//   A CTA owns a 64-row K/V block of one (b, h) (warp w: keys 16w..16w+15, dK and dV accumulators in registers) and
//   sweeps every 64-row Q block, with Q, dO, lse and delta double-buffered. Keys are the M dimension throughout:
//   Sᵀ = K·Qᵀ, Pᵀ = 2^(Sᵀ·c − lse·log2 e), dV += Pᵀ·dO, dPᵀ = V·dOᵀ, dSᵀ = Pᵀ∘(dPᵀ − delta), dK += dSᵀ·Q.
//   dK·(1/√128) and dV are written once at the end.
// attention_bwd_dq_bf16 — grid (ceil(Lq/64), B·N), 128 threads = 4 warps, 96 KiB dynamic shared memory.
//   A CTA owns 64 query rows of one (b, h) (warp w: rows 16w.., q and dO fragments in registers) and streams K/V
//   tiles of 64 like the forward, recomputing S and dP to form dS = P∘(dP − delta) and dQ += dS·K; dq = dQ/√128.
// Determinism: dq gets its own pass instead of FlashAttention-2's fp32 atomics, so every output element is summed
//   by one thread in a fixed order: bitwise reproducible. The price is recomputing S and dP (7 GEMMs instead of 5);
//   measured on an H200 it is still faster than ordered or atomic dQ accumulation (kernels/dev/attention/NOTES.md).
// Numerics: fp32 accumulation; exp2 via ex2.approx (relative error 2⁻²²); P and dS are rounded to bf16 as operands of
//   the second GEMMs (as in FlashAttention-2); the row sum l uses the fp32 P.
#include "wanlora.cuh"

namespace wanlora_attention {

constexpr int kHeadDim = 128;
constexpr int kRowBytes = kHeadDim * 2;
constexpr int kTile = 64;                                      // K/V rows per streamed tile; Q rows per backward block
constexpr float kScale = 0.08838834764831845f;                 // 1/√128
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kScaleLog2 = kScale * kLog2e;
constexpr float kLn2 = 0.6931471805599453f;

constexpr int kFwdWarps = 4, kBwdWarps = 4;
// Dynamic shared memory of each kernel for a given warp count (16 rows per warp).
constexpr int fwdSmemBytes(int warps) { return (16 * warps + 4 * kTile) * kRowBytes; }
constexpr int dkdvSmemBytes(int warps) { return (2 * 16 * warps + 4 * kTile) * kRowBytes + 4 * kTile * 4; }
constexpr int dqSmemBytes(int warps) { return (2 * 16 * warps + 4 * kTile) * kRowBytes; }

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// Byte offset of 16-byte chunk c of row r in a swizzled tile of 128-element rows.
__device__ __forceinline__ uint32_t swz(int r, int c) { return r * kRowBytes + ((c ^ (r & 7)) << 4); }

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void st_shared(uint32_t addr, uint32_t value) {
  asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(addr), "r"(value));
}

// c += a·b for one m16n8k16 tile: a 16×16 bf16 (4 regs), b 16×8 bf16 (2 regs), c 16×8 fp32.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Fragment addresses (lane = thread index in the warp). For a tile stored row-major [row][128 d]:
// A operand (16 rows from row0, k-step kk over d): ldmatrix x4 gives a0..a3 of mma's A fragment.
__device__ __forceinline__ uint32_t a_frag_addr(uint32_t tile, int row0, int kk, int lane) {
  return tile + swz(row0 + (lane & 15), 2 * kk + (lane >> 4));
}
// B operand with n = tile rows (16 rows from row0 = two n-tiles of 8), k = d (k-step kk): regs 0,1 → n-tile 0; 2,3 → 1.
__device__ __forceinline__ uint32_t b_rows_addr(uint32_t tile, int row0, int kk, int lane) {
  return tile + swz(row0 + ((lane >> 4) << 3) + (lane & 7), 2 * kk + ((lane >> 3) & 1));
}
// B operand with k = tile rows (16 rows from row0), n = d (d-tiles 2·dp, 2·dp+1), through ldmatrix.trans.
__device__ __forceinline__ uint32_t b_cols_addr(uint32_t tile, int row0, int dp, int lane) {
  return tile + swz(row0 + (lane & 15), 2 * dp + (lane >> 4));
}

// A fragment of a 16×16 block (k-step kk) from a 16×64 accumulator held as 8 n-tiles (C layout = A layout).
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&c)[8][4], int kk) {
  a[0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

template <int N>
__device__ __forceinline__ void zero(float (&c)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n) c[n][0] = c[n][1] = c[n][2] = c[n][3] = 0.f;
}

// c (16×64, 8 n-tiles) += A (16×128, fragments af[8]) · Bᵀ where B = 64 rows × 128 d of a shared tile.
__device__ __forceinline__ void gemm_a_regs_b_rows(float (&c)[8][4], const uint32_t (&af)[8][4], uint32_t tile,
                                                   int lane) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      ldsm_x4(b, b_rows_addr(tile, np * 16, kk, lane));
      mma(c[2 * np], af[kk], b[0], b[1]);
      mma(c[2 * np + 1], af[kk], b[2], b[3]);
    }
  }
}

// c (16×64) += A (16×128 from 16 shared rows at aRow0) · Bᵀ where B = 64 rows × 128 d of a shared tile.
__device__ __forceinline__ void gemm_a_smem_b_rows(float (&c)[8][4], uint32_t aTile, int aRow0, uint32_t tile,
                                                   int lane) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    uint32_t a[4];
    ldsm_x4(a, a_frag_addr(aTile, aRow0, kk, lane));
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      ldsm_x4(b, b_rows_addr(tile, np * 16, kk, lane));
      mma(c[2 * np], a, b[0], b[1]);
      mma(c[2 * np + 1], a, b[2], b[3]);
    }
  }
}

// c (16×128, 16 d-tiles) += A (16×64 as a bf16 copy of the accumulator p) · B where B = 64 rows × 128 d of a tile.
__device__ __forceinline__ void gemm_acc_b_cols(float (&c)[16][4], const float (&p)[8][4], uint32_t tile, int lane) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t a[4];
    acc_to_a(a, p, kk);
#pragma unroll
    for (int dp = 0; dp < 8; ++dp) {
      uint32_t b[4];
      ldsm_x4_t(b, b_cols_addr(tile, 16 * kk, dp, lane));
      mma(c[2 * dp], a, b[0], b[1]);
      mma(c[2 * dp + 1], a, b[2], b[3]);
    }
  }
}

// cp.async of ROWS rows (128 bf16 each, global row stride `stride` elements) starting at sequence row `row0` into a
// swizzled shared tile; rows at or past `limit` are zero-filled (their source address is clamped to row 0).
template <int ROWS, int THREADS>
__device__ __forceinline__ void load_rows(uint32_t dst, const __nv_bfloat16* base, int row0, int limit, size_t stride,
                                          int tid) {
  static_assert(ROWS * 16 % THREADS == 0, "tile chunks must split evenly over the threads");
#pragma unroll
  for (int it = 0; it < ROWS * 16 / THREADS; ++it) {
    int id = tid + it * THREADS, r = id >> 4, c = id & 15;
    bool valid = row0 + r < limit;
    cp_async16(dst + swz(r, c), base + (size_t)(valid ? row0 + r : 0) * stride + c * 8, valid);
  }
}

// Writes a warp's 16×128 fp32 accumulator, times `scale`, as bf16 rows row0.. of the sequence (rows ≥ limit are
// skipped): staged in the warp's own 16 rows of a swizzled shared tile (stageRow0..), then stored in 16-byte chunks.
__device__ __forceinline__ void store_rows(__nv_bfloat16* base, size_t stride, int row0, int limit,
                                           const float (&c)[16][4], float scale0, float scale1, uint32_t stage,
                                           int stageRow0, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int n = 0; n < 16; ++n) {
    st_shared(stage + swz(stageRow0 + g, n) + 4 * t, pack_bf16(c[n][0] * scale0, c[n][1] * scale0));
    st_shared(stage + swz(stageRow0 + g + 8, n) + 4 * t, pack_bf16(c[n][2] * scale1, c[n][3] * scale1));
  }
  __syncwarp();
#pragma unroll
  for (int it = 0; it < 8; ++it) {
    const int id = lane + 32 * it, r = id >> 4, ch = id & 15;
    if (row0 + r < limit) {
      uint4 val;
      asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(val.x), "=r"(val.y), "=r"(val.z), "=r"(val.w)
                   : "r"(stage + swz(stageRow0 + r, ch)));
      *reinterpret_cast<uint4*>(base + (size_t)(row0 + r) * stride + ch * 8) = val;
    }
  }
}

template <int WARPS>
__device__ __forceinline__ void forward(__nv_bfloat16* __restrict__ out, float* __restrict__ lse,
                                        const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                                        const __nv_bfloat16* __restrict__ v, int N, int Lq, int Lk) {
  constexpr int kRows = 16 * WARPS, kThreads = 32 * WARPS;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sQ = smem_addr(smem);                         // (kRows, 128) bf16; later the output stage
  const uint32_t sK = sQ + kRows * kRowBytes;                  // 2 × (64, 128) bf16
  const uint32_t sV = sK + 2 * kTile * kRowBytes;              // 2 × (64, 128) bf16
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int bh = blockIdx.y, b = bh / N, h = bh % N, q0 = blockIdx.x * kRows;
  const size_t stride = (size_t)N * kHeadDim;
  const size_t qOffset = ((size_t)b * Lq * N + h) * kHeadDim, kOffset = ((size_t)b * Lk * N + h) * kHeadDim;
  const int numKeyTiles = (Lk + kTile - 1) / kTile;

  load_rows<kRows, kThreads>(sQ, q + qOffset, q0, Lq, stride, tid);
  load_rows<kTile, kThreads>(sK, k + kOffset, 0, Lk, stride, tid);
  load_rows<kTile, kThreads>(sV, v + kOffset, 0, Lk, stride, tid);
  cp_async_commit();

  float o[16][4];                                              // O rows g, g+8 of the warp; 16 d-tiles of 8
  zero(o);
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;    // rows g, g+8: max (log2 domain), partial row sum
  uint32_t qf[8][4];                                           // q A-fragments, 8 k-steps over d

  for (int j = 0; j < numKeyTiles; ++j) {
    cp_async_wait_all();
    __syncthreads();                                           // tile j landed; tile j−1's buffers are free
    const uint32_t kT = sK + (j & 1) * kTile * kRowBytes, vT = sV + (j & 1) * kTile * kRowBytes;
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) ldsm_x4(qf[kk], a_frag_addr(sQ, warp * 16, kk, lane));
    }
    if (j + 1 < numKeyTiles) {
      const uint32_t next = ((j + 1) & 1) * kTile * kRowBytes;
      load_rows<kTile, kThreads>(sK + next, k + kOffset, (j + 1) * kTile, Lk, stride, tid);
      load_rows<kTile, kThreads>(sV + next, v + kOffset, (j + 1) * kTile, Lk, stride, tid);
      cp_async_commit();
    }

    float s[8][4];                                             // S rows g, g+8; 8 key-tiles of 8
    zero(s);
    gemm_a_regs_b_rows(s, qf, kT, lane);
    if ((j + 1) * kTile > Lk) {                                // ragged last tile: keys ≥ Lk get −∞
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        const int key = j * kTile + n * 8 + 2 * t;
        if (key >= Lk) s[n][0] = s[n][2] = -INFINITY;
        if (key + 1 >= Lk) s[n][1] = s[n][3] = -INFINITY;
      }
    }

    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
      mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, 1));
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, 1));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, 2));
    // Every tile holds at least one key < Lk, so the new max is finite and alpha is 0 on the first tile.
    const float mNew0 = fmaxf(m0, mx0 * kScaleLog2), mNew1 = fmaxf(m1, mx1 * kScaleLog2);
    const float alpha0 = ex2(m0 - mNew0), alpha1 = ex2(m1 - mNew1);
    m0 = mNew0;
    m1 = mNew1;
    float rowSum0 = 0.f, rowSum1 = 0.f;
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      s[n][0] = ex2(fmaf(s[n][0], kScaleLog2, -mNew0));
      s[n][1] = ex2(fmaf(s[n][1], kScaleLog2, -mNew0));
      s[n][2] = ex2(fmaf(s[n][2], kScaleLog2, -mNew1));
      s[n][3] = ex2(fmaf(s[n][3], kScaleLog2, -mNew1));
      rowSum0 += s[n][0] + s[n][1];
      rowSum1 += s[n][2] + s[n][3];
    }
    l0 = l0 * alpha0 + rowSum0;
    l1 = l1 * alpha1 + rowSum1;
#pragma unroll
    for (int n = 0; n < 16; ++n) {
      o[n][0] *= alpha0;
      o[n][1] *= alpha0;
      o[n][2] *= alpha1;
      o[n][3] *= alpha1;
    }
    gemm_acc_b_cols(o, s, vT, lane);                           // O += P·V
  }

  l0 += __shfl_xor_sync(0xffffffff, l0, 1);
  l0 += __shfl_xor_sync(0xffffffff, l0, 2);
  l1 += __shfl_xor_sync(0xffffffff, l1, 1);
  l1 += __shfl_xor_sync(0xffffffff, l1, 2);
  // The warp's own Q rows were consumed at j = 0: they become its output stage.
  store_rows(out + qOffset, stride, q0 + warp * 16, Lq, o, 1.f / l0, 1.f / l1, sQ, warp * 16, lane);
  if (t == 0) {
    const int r0 = q0 + warp * 16 + g;
    float* lseRow = lse + (size_t)bh * Lq;
    if (r0 < Lq) lseRow[r0] = (m0 + log2f(l0)) * kLn2;
    if (r0 + 8 < Lq) lseRow[r0 + 8] = (m1 + log2f(l1)) * kLn2;
  }
}

template <int WARPS>
__device__ __forceinline__ void backward_dkdv(__nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv,
                                              const __nv_bfloat16* __restrict__ dOut,
                                              const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                                              const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse,
                                              const float* __restrict__ delta, int N, int Lq, int Lk) {
  constexpr int kKeys = 16 * WARPS, kThreads = 32 * WARPS;
  static_assert(kThreads >= 2 * kTile, "one thread per lse and delta value of a Q block");
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sK = smem_addr(smem);                         // (kKeys, 128) bf16
  const uint32_t sV = sK + kKeys * kRowBytes;                  // (kKeys, 128) bf16
  const uint32_t sQ = sV + kKeys * kRowBytes;                  // 2 × (64, 128) bf16
  const uint32_t sDO = sQ + 2 * kTile * kRowBytes;             // 2 × (64, 128) bf16
  float* sLse = reinterpret_cast<float*>(smem + (2 * kKeys + 4 * kTile) * kRowBytes);   // 2 × 64 F32
  float* sDelta = sLse + 2 * kTile;                                                     // 2 × 64 F32
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int bh = blockIdx.y, b = bh / N, h = bh % N, k0 = blockIdx.x * kKeys;
  const size_t stride = (size_t)N * kHeadDim;
  const size_t qOffset = ((size_t)b * Lq * N + h) * kHeadDim, kOffset = ((size_t)b * Lk * N + h) * kHeadDim;
  const float* lseRow = lse + (size_t)bh * Lq;
  const float* deltaRow = delta + (size_t)bh * Lq;
  const int numQueryBlocks = (Lq + kTile - 1) / kTile;

  // Query rows past Lq are zero-filled (q, dO, lse and delta = 0): their P is 1, but dO = 0 and dP − delta = 0
  // make their dV and dK contributions vanish.
  auto loadQueryBlock = [&](int i, int buf) {
    load_rows<kTile, kThreads>(sQ + buf * kTile * kRowBytes, q + qOffset, i * kTile, Lq, stride, tid);
    load_rows<kTile, kThreads>(sDO + buf * kTile * kRowBytes, dOut + qOffset, i * kTile, Lq, stride, tid);
    if (tid < 2 * kTile) {
      const int r = tid & (kTile - 1), row = i * kTile + r;
      const bool valid = row < Lq;
      const float* src = (tid < kTile ? lseRow : deltaRow) + (valid ? row : 0);
      cp_async4(smem_addr((tid < kTile ? sLse : sDelta) + buf * kTile + r), src, valid);
    }
  };
  load_rows<kKeys, kThreads>(sK, k + kOffset, k0, Lk, stride, tid);
  load_rows<kKeys, kThreads>(sV, v + kOffset, k0, Lk, stride, tid);
  loadQueryBlock(0, 0);
  cp_async_commit();

  float dkAcc[16][4], dvAcc[16][4];                            // keys 16w+g, 16w+g+8 of the block; 16 d-tiles
  zero(dkAcc);
  zero(dvAcc);
  const int key0 = k0 + warp * 16 + g;                         // this thread's keys key0, key0 + 8
  const bool dead0 = key0 >= Lk, dead1 = key0 + 8 >= Lk;       // zero-filled keys of a ragged last block

  for (int i = 0; i < numQueryBlocks; ++i) {
    const int buf = i & 1;
    cp_async_wait_all();
    __syncthreads();                                           // block i landed; block i−1's buffers are free
    if (i + 1 < numQueryBlocks) {
      loadQueryBlock(i + 1, buf ^ 1);
      cp_async_commit();
    }
    const uint32_t qT = sQ + buf * kTile * kRowBytes, doT = sDO + buf * kTile * kRowBytes;
    const float* lseT = sLse + buf * kTile;
    const float* deltaT = sDelta + buf * kTile;

    float s[8][4];                                             // Sᵀ: this warp's 16 keys × 64 queries
    zero(s);
    gemm_a_smem_b_rows(s, sK, warp * 16, qT, lane);
#pragma unroll
    for (int n = 0; n < 8; ++n) {                              // Pᵀ = 2^(Sᵀ·c − lse·log2 e)
      const float2 l2 = *reinterpret_cast<const float2*>(lseT + n * 8 + 2 * t);
      s[n][0] = dead0 ? 0.f : ex2(fmaf(s[n][0], kScaleLog2, -l2.x * kLog2e));
      s[n][1] = dead0 ? 0.f : ex2(fmaf(s[n][1], kScaleLog2, -l2.y * kLog2e));
      s[n][2] = dead1 ? 0.f : ex2(fmaf(s[n][2], kScaleLog2, -l2.x * kLog2e));
      s[n][3] = dead1 ? 0.f : ex2(fmaf(s[n][3], kScaleLog2, -l2.y * kLog2e));
    }
    gemm_acc_b_cols(dvAcc, s, doT, lane);                      // dV += Pᵀ·dO

    float dp[8][4];                                            // dPᵀ = V·dOᵀ
    zero(dp);
    gemm_a_smem_b_rows(dp, sV, warp * 16, doT, lane);
    // dSᵀ = Pᵀ∘(dPᵀ − delta). Forward: P = softmax(S) by rows, so dS = P∘(dP − rowsum(dP∘P)), rowsum(dP∘P) = delta.
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      const float2 d2 = *reinterpret_cast<const float2*>(deltaT + n * 8 + 2 * t);
      dp[n][0] = s[n][0] * (dp[n][0] - d2.x);
      dp[n][1] = s[n][1] * (dp[n][1] - d2.y);
      dp[n][2] = s[n][2] * (dp[n][2] - d2.x);
      dp[n][3] = s[n][3] * (dp[n][3] - d2.y);
    }
    gemm_acc_b_cols(dkAcc, dp, qT, lane);                      // dK += dSᵀ·Q (1/√128 applied at the end)
  }

  // Stage through the Q/dO buffers (rows warp·16.. for dK, 16·WARPS + warp·16.. for dV; 4·64 rows are there): wait
  // for every warp to finish reading the last Q block first.
  __syncthreads();
  store_rows(dk + kOffset, stride, k0 + warp * 16, Lk, dkAcc, kScale, kScale, sQ, warp * 16, lane);
  store_rows(dv + kOffset, stride, k0 + warp * 16, Lk, dvAcc, 1.f, 1.f, sQ, 16 * WARPS + warp * 16, lane);
}

template <int WARPS>
__device__ __forceinline__ void backward_dq(__nv_bfloat16* __restrict__ dq, const __nv_bfloat16* __restrict__ dOut,
                                            const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                                            const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse,
                                            const float* __restrict__ delta, int N, int Lq, int Lk) {
  constexpr int kRows = 16 * WARPS, kThreads = 32 * WARPS;
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sQ = smem_addr(smem);                         // (kRows, 128) bf16; later the output stage
  const uint32_t sDO = sQ + kRows * kRowBytes;                 // (kRows, 128) bf16
  const uint32_t sK = sDO + kRows * kRowBytes;                 // 2 × (64, 128) bf16
  const uint32_t sV = sK + 2 * kTile * kRowBytes;              // 2 × (64, 128) bf16
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int bh = blockIdx.y, b = bh / N, h = bh % N, q0 = blockIdx.x * kRows;
  const size_t stride = (size_t)N * kHeadDim;
  const size_t qOffset = ((size_t)b * Lq * N + h) * kHeadDim, kOffset = ((size_t)b * Lk * N + h) * kHeadDim;
  const int numKeyTiles = (Lk + kTile - 1) / kTile;

  load_rows<kRows, kThreads>(sQ, q + qOffset, q0, Lq, stride, tid);
  load_rows<kRows, kThreads>(sDO, dOut + qOffset, q0, Lq, stride, tid);
  load_rows<kTile, kThreads>(sK, k + kOffset, 0, Lk, stride, tid);
  load_rows<kTile, kThreads>(sV, v + kOffset, 0, Lk, stride, tid);
  cp_async_commit();
  // Rows past Lq: q = dO = 0 and lse = delta = 0 give dS = 1·(0 − 0) = 0; they are not stored.
  const int r0 = q0 + warp * 16 + g;
  const float lse0 = r0 < Lq ? lse[(size_t)bh * Lq + r0] * kLog2e : 0.f;
  const float lse1 = r0 + 8 < Lq ? lse[(size_t)bh * Lq + r0 + 8] * kLog2e : 0.f;
  const float delta0 = r0 < Lq ? delta[(size_t)bh * Lq + r0] : 0.f;
  const float delta1 = r0 + 8 < Lq ? delta[(size_t)bh * Lq + r0 + 8] : 0.f;

  float acc[16][4];                                            // dQ rows g, g+8 of the warp; 16 d-tiles
  zero(acc);
  uint32_t qf[8][4], df[8][4];                                 // q and dO A-fragments

  for (int j = 0; j < numKeyTiles; ++j) {
    cp_async_wait_all();
    __syncthreads();                                           // tile j landed; tile j−1's buffers are free
    const uint32_t kT = sK + (j & 1) * kTile * kRowBytes, vT = sV + (j & 1) * kTile * kRowBytes;
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) {
        ldsm_x4(qf[kk], a_frag_addr(sQ, warp * 16, kk, lane));
        ldsm_x4(df[kk], a_frag_addr(sDO, warp * 16, kk, lane));
      }
    }
    if (j + 1 < numKeyTiles) {
      const uint32_t next = ((j + 1) & 1) * kTile * kRowBytes;
      load_rows<kTile, kThreads>(sK + next, k + kOffset, (j + 1) * kTile, Lk, stride, tid);
      load_rows<kTile, kThreads>(sV + next, v + kOffset, (j + 1) * kTile, Lk, stride, tid);
      cp_async_commit();
    }
    float s[8][4], dp[8][4];                                   // S and dP: 16 rows × 64 keys
    zero(s);
    zero(dp);
    gemm_a_regs_b_rows(s, qf, kT, lane);
    gemm_a_regs_b_rows(dp, df, vT, lane);
    const bool ragged = (j + 1) * kTile > Lk;
#pragma unroll
    for (int n = 0; n < 8; ++n) {                              // dS = P∘(dP − delta), P = 2^(S·c − lse·log2 e)
      const int key = j * kTile + n * 8 + 2 * t;
      const bool dead0 = ragged && key >= Lk, dead1 = ragged && key + 1 >= Lk;
      s[n][0] = dead0 ? 0.f : ex2(fmaf(s[n][0], kScaleLog2, -lse0)) * (dp[n][0] - delta0);
      s[n][1] = dead1 ? 0.f : ex2(fmaf(s[n][1], kScaleLog2, -lse0)) * (dp[n][1] - delta0);
      s[n][2] = dead0 ? 0.f : ex2(fmaf(s[n][2], kScaleLog2, -lse1)) * (dp[n][2] - delta1);
      s[n][3] = dead1 ? 0.f : ex2(fmaf(s[n][3], kScaleLog2, -lse1)) * (dp[n][3] - delta1);
    }
    gemm_acc_b_cols(acc, s, kT, lane);                         // dQ += dS·K
  }
  // The warp's own Q rows were consumed at j = 0: they become its output stage.
  store_rows(dq + qOffset, stride, q0 + warp * 16, Lq, acc, kScale, kScale, sQ, warp * 16, lane);
}

}  // namespace wanlora_attention

extern "C" __global__ void __launch_bounds__(wanlora_attention::kFwdWarps * 32, 1)
    attention_fwd_bf16(__nv_bfloat16* __restrict__ out, float* __restrict__ lse, const __nv_bfloat16* __restrict__ q,
                       const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v, int N, int Lq,
                       int Lk) {
  wanlora_attention::forward<wanlora_attention::kFwdWarps>(out, lse, q, k, v, N, Lq, Lk);
}

// 16 threads per (row, head) in memory order (b, i, h); blockDim a multiple of 32; any grid (grid-stride loop).
extern "C" __global__ void attention_bwd_preprocess_bf16(float* __restrict__ delta, const __nv_bfloat16* __restrict__ dOut,
                                                         const __nv_bfloat16* __restrict__ out, int B, int N, int Lq) {
  const long long numThreads = (long long)B * Lq * N * 16;
  const long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  // Whole warps iterate together (the shuffles need all 32 lanes); the bound applies per lane.
  for (long long idx = first; idx - (threadIdx.x & 31) < numThreads; idx += (long long)gridDim.x * blockDim.x) {
    const bool valid = idx < numThreads;
    const long long row = valid ? idx >> 4 : 0;                // the 16 lanes of a row lie in one warp half
    const int part = (int)(idx & 15);
    uint4 a = make_uint4(0, 0, 0, 0), o = make_uint4(0, 0, 0, 0);
    if (valid) {
      a = *reinterpret_cast<const uint4*>(dOut + row * wanlora_attention::kHeadDim + part * 8);
      o = *reinterpret_cast<const uint4*>(out + row * wanlora_attention::kHeadDim + part * 8);
    }
    const __nv_bfloat162* a2 = reinterpret_cast<const __nv_bfloat162*>(&a);
    const __nv_bfloat162* o2 = reinterpret_cast<const __nv_bfloat162*>(&o);
    float sum = 0.f;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 af = __bfloat1622float2(a2[e]), of = __bfloat1622float2(o2[e]);
      sum = fmaf(af.x, of.x, fmaf(af.y, of.y, sum));
    }
    sum += __shfl_xor_sync(0xffffffff, sum, 8);
    sum += __shfl_xor_sync(0xffffffff, sum, 4);
    sum += __shfl_xor_sync(0xffffffff, sum, 2);
    sum += __shfl_xor_sync(0xffffffff, sum, 1);
    if (valid && part == 0) {
      const long long h = row % N, bi = row / N, i = bi % Lq, b = bi / Lq;
      delta[(b * N + h) * Lq + i] = sum;
    }
  }
}

extern "C" __global__ void __launch_bounds__(wanlora_attention::kBwdWarps * 32, 1)
    attention_bwd_dkdv_bf16(__nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv,
                            const __nv_bfloat16* __restrict__ dOut, const __nv_bfloat16* __restrict__ q,
                            const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
                            const float* __restrict__ lse, const float* __restrict__ delta, int N, int Lq, int Lk) {
  wanlora_attention::backward_dkdv<wanlora_attention::kBwdWarps>(dk, dv, dOut, q, k, v, lse, delta, N, Lq, Lk);
}

extern "C" __global__ void __launch_bounds__(wanlora_attention::kBwdWarps * 32, 1)
    attention_bwd_dq_bf16(__nv_bfloat16* __restrict__ dq, const __nv_bfloat16* __restrict__ dOut,
                          const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                          const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse,
                          const float* __restrict__ delta, int N, int Lq, int Lk) {
  wanlora_attention::backward_dq<wanlora_attention::kBwdWarps>(dq, dOut, q, k, v, lse, delta, N, Lq, Lk);
}
