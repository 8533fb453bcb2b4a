// Flash attention (FA2-style tiling, no mask) for head dim D = 128: bf16 q/k/v/out, fp32 accumulation.
// Contract: Backend.attention / Backend.attentionBackward. q, out, dq (B, Lq, N·D) and k, v, dk, dv (B, Lk, N·D)
// row-major bf16, element (b, l, h, d) at ((b·L + l)·N + h)·D + d; lse (B, N, Lq) F32 natural log.
// Invariant: the scores S = q·kᵀ/√128 never exist as an L×L matrix; each CTA keeps one tile of them in registers.
//
// Tensor cores through mma.sync.m16n8k16 (bf16 in, fp32 accumulate), operands from shared memory by ldmatrix,
// tiles copied in by cp.async (16-byte chunks, zero-filled past the sequence end). Every shared tile row of 128 bf16
// (256 bytes, 16 chunks) stores chunk c at position c ^ (row & 7), so the 8 row addresses of one ldmatrix phase and
// the 8 chunk writes of one cp.async phase hit 8 distinct 4-bank groups (no bank conflicts). The 64-wide dS tile of
// the backward pass (8 chunks a row) uses the same XOR.
// Requirements: D = 128; pointers 16-byte aligned (every row then is, because N·D·2 bytes is a multiple of 16);
// Lq, Lk ≥ 1 and any value (ragged tails are zero-filled and masked).
//
// attention_fwd_bf16 — grid (ceil(Lq/128), B·N), 256 threads = 8 warps, 96 KiB dynamic shared memory.
//   A CTA owns 128 query rows of one (b, h); warp w owns rows 16w..16w+15 and keeps their q fragments in registers.
//   It streams K/V in 64-row tiles, double-buffered (shared: Q 32 KiB, K 2×16 KiB, V 2×16 KiB): while tile j is
//   computed, tile j+1 is in flight. Per tile: S = Q·Kᵀ (16×64 per warp, fp32 registers), online softmax in the
//   log2 domain (m = running max of S·log2(e)/√128, l = running Σ 2^(S·c − m); rows of a quad reduce by shuffles),
//   P rounded to bf16 feeds O += P·V straight from the accumulator registers (the m16n8k16 C fragment is the
//   A fragment). Finally out = O / l (bf16, round to nearest even) and lse = (m + log2 l)·ln 2.
//
// attention_bwd_preprocess_bf16 — delta[b, h, i] = Σ_d dOut·out (fp32, from the bf16 tensors), 16 threads per
//   (row, head) with 16-byte loads; also zeroes the dq semaphores and the work ticket of attention_bwd_bf16.
//
// attention_bwd_bf16 — grid B·N·ceil(Lk/128), 256 threads = 8 warps, 145 KiB dynamic shared memory.
//   A CTA owns a 128-row K/V block of one (b, h) (warp w: keys 16w..16w+15) and sweeps every 64-row Q block i in
//   order, with Q/dO/lse/delta double-buffered. Per Q block it computes, transposed so that keys are the M dim:
//   Sᵀ = K·Qᵀ, Pᵀ = 2^(Sᵀ·c − lse·log2 e), dV += Pᵀ·dO, dPᵀ = V·dOᵀ, dSᵀ = Pᵀ∘(dPᵀ − delta), dK += dSᵀ·Q, and,
//   through dSᵀ in shared memory, the partial dQ_i = dS·K (64×128, warp w: rows 16(w&3), cols 64(w>>2)).
//   dK·(1/√128) and dV are written once at the end.
// Determinism: no floating-point atomics. The partials dQ_i of the key blocks j = 0..nK−1 are summed in that fixed
//   order into an fp32 workspace (B, Lq, N·D): block j waits on a per-(b, h, i) semaphore until it reads j, adds its
//   partial (block 0 stores, the last block scales by 1/√128 and writes bf16 dq instead), then releases j+1. CTAs
//   take their (b, h, j) from an atomic ticket, so every block a CTA can wait on is already running: no deadlock
//   whatever order the hardware schedules CTAs in. Results are bitwise reproducible run to run.
// Numerics: fp32 accumulation everywhere; exp2 via ex2.approx (rel. error 2⁻²²); P and dS are rounded to bf16 as
//   operands of the second GEMMs (as in FlashAttention-2); the row sum l uses the fp32 P.
#include "wanlora.cuh"

namespace wanlora_attention {

constexpr int kHeadDim = 128;
constexpr float kScale = 0.08838834764831845f;             // 1/√128
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kScaleLog2 = kScale * kLog2e;
constexpr float kLn2 = 0.6931471805599453f;

constexpr int kFwdWarps = 8, kFwdRows = 16 * kFwdWarps, kFwdKeys = 64;
constexpr int kFwdSmemBytes = (kFwdRows + 4 * kFwdKeys) * kHeadDim * 2;
constexpr int kBwdWarps = 8, kBwdKeys = 16 * kBwdWarps, kBwdRows = 64;
constexpr int kBwdSmemBytes = (2 * kBwdKeys + 4 * kBwdRows) * kHeadDim * 2 + kBwdKeys * kBwdRows * 2 + 4 * kBwdRows * 4;

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// Byte offset of 16-byte chunk c of row r in a tile of 128-element rows (16 chunks) / 64-element rows (8 chunks).
__device__ __forceinline__ uint32_t swz128(int r, int c) { return r * 256 + ((c ^ (r & 7)) << 4); }
__device__ __forceinline__ uint32_t swz64(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

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

// cp.async of ROWS rows (128 bf16 each, global row stride `stride` elements) starting at sequence row `row0` into a
// swizzled shared tile; rows at or past `limit` are zero-filled (their source address is clamped to row 0).
template <int ROWS, int THREADS>
__device__ __forceinline__ void load_rows(uint32_t dst, const __nv_bfloat16* base, int row0, int limit, size_t stride,
                                          int tid) {
#pragma unroll
  for (int it = 0; it < ROWS * 16 / THREADS; ++it) {
    int id = tid + it * THREADS, r = id >> 4, c = id & 15;
    bool valid = row0 + r < limit;
    cp_async16(dst + swz128(r, c), base + (size_t)(valid ? row0 + r : 0) * stride + c * 8, valid);
  }
}

}  // namespace wanlora_attention

using namespace wanlora_attention;

extern "C" __global__ void __launch_bounds__(kFwdWarps * 32, 1)
    attention_fwd_bf16(__nv_bfloat16* __restrict__ out, float* __restrict__ lse, const __nv_bfloat16* __restrict__ q,
                       const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v, int N, int Lq,
                       int Lk) {
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sQ = smem_addr(smem);                        // (128, 128) bf16
  const uint32_t sK = sQ + kFwdRows * 256;                    // 2 × (64, 128) bf16
  const uint32_t sV = sK + 2 * kFwdKeys * 256;                // 2 × (64, 128) bf16
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int bh = blockIdx.y, b = bh / N, h = bh % N, q0 = blockIdx.x * kFwdRows;
  const size_t stride = (size_t)N * kHeadDim;
  const __nv_bfloat16* qBase = q + ((size_t)b * Lq * N + h) * kHeadDim;
  const __nv_bfloat16* kBase = k + ((size_t)b * Lk * N + h) * kHeadDim;
  const __nv_bfloat16* vBase = v + ((size_t)b * Lk * N + h) * kHeadDim;
  const int numKeyTiles = (Lk + kFwdKeys - 1) / kFwdKeys;

  load_rows<kFwdRows, kFwdWarps * 32>(sQ, qBase, q0, Lq, stride, tid);
  load_rows<kFwdKeys, kFwdWarps * 32>(sK, kBase, 0, Lk, stride, tid);
  load_rows<kFwdKeys, kFwdWarps * 32>(sV, vBase, 0, Lk, stride, tid);
  cp_async_commit();

  float o[16][4];                                              // O rows g, g+8 of the warp; 16 d-tiles of 8
#pragma unroll
  for (int n = 0; n < 16; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;    // rows g, g+8: max (log2 domain), partial row sum
  uint32_t qf[8][4];                                           // q A-fragments, 8 k-steps over d

  for (int j = 0; j < numKeyTiles; ++j) {
    cp_async_wait_all();
    __syncthreads();                                           // tile j landed; tile j−1's buffers are free
    const uint32_t kT = sK + (j & 1) * kFwdKeys * 256, vT = sV + (j & 1) * kFwdKeys * 256;
    if (j == 0) {
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) ldsm_x4(qf[kk], sQ + swz128(warp * 16 + (lane & 15), 2 * kk + (lane >> 4)));
    }
    if (j + 1 < numKeyTiles) {
      const uint32_t off = ((j + 1) & 1) * kFwdKeys * 256;
      load_rows<kFwdKeys, kFwdWarps * 32>(sK + off, kBase, (j + 1) * kFwdKeys, Lk, stride, tid);
      load_rows<kFwdKeys, kFwdWarps * 32>(sV + off, vBase, (j + 1) * kFwdKeys, Lk, stride, tid);
      cp_async_commit();
    }

    float s[8][4];                                             // S rows g, g+8; 8 key-tiles of 8
#pragma unroll
    for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t bk[4];
        ldsm_x4(bk, kT + swz128(np * 16 + ((lane >> 4) << 3) + (lane & 7), 2 * kk + ((lane >> 3) & 1)));
        mma(s[2 * np], qf[kk], bk[0], bk[1]);
        mma(s[2 * np + 1], qf[kk], bk[2], bk[3]);
      }
    }
    if ((j + 1) * kFwdKeys > Lk) {                             // ragged last tile: keys ≥ Lk get −∞
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        int key = j * kFwdKeys + n * 8 + 2 * t;
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
    const float mNew0 = fmaxf(m0, mx0 * kScaleLog2), mNew1 = fmaxf(m1, mx1 * kScaleLog2);
    const float alpha0 = ex2(m0 - mNew0), alpha1 = ex2(m1 - mNew1);   // 0 on the first tile (m = −∞)
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

#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {                           // keys 16kk..16kk+15
      const uint32_t pf[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < 8; ++dp) {
        uint32_t bv[4];
        ldsm_x4_t(bv, vT + swz128(16 * kk + (lane & 15), 2 * dp + (lane >> 4)));
        mma(o[2 * dp], pf, bv[0], bv[1]);
        mma(o[2 * dp + 1], pf, bv[2], bv[3]);
      }
    }
  }

  l0 += __shfl_xor_sync(0xffffffff, l0, 1);
  l0 += __shfl_xor_sync(0xffffffff, l0, 2);
  l1 += __shfl_xor_sync(0xffffffff, l1, 1);
  l1 += __shfl_xor_sync(0xffffffff, l1, 2);
  const float inv0 = 1.f / l0, inv1 = 1.f / l1;
  // Stage the warp's 16 output rows in its own (already consumed) rows of the Q tile, then store 16-byte chunks.
  const int r0 = warp * 16 + g;
#pragma unroll
  for (int n = 0; n < 16; ++n) {
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sQ + swz128(r0, n) + 4 * t), "r"(pack_bf16(o[n][0] * inv0, o[n][1] * inv0)));
    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sQ + swz128(r0 + 8, n) + 4 * t), "r"(pack_bf16(o[n][2] * inv1, o[n][3] * inv1)));
  }
  __syncwarp();
  __nv_bfloat16* outBase = out + ((size_t)b * Lq * N + h) * kHeadDim;
#pragma unroll
  for (int it = 0; it < 8; ++it) {
    int id = lane + 32 * it, r = warp * 16 + (id >> 4), c = id & 15;
    if (q0 + r < Lq) {
      uint4 val;
      asm volatile("ld.shared.v4.b32 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(val.x), "=r"(val.y), "=r"(val.z), "=r"(val.w) : "r"(sQ + swz128(r, c)));
      *reinterpret_cast<uint4*>(outBase + (size_t)(q0 + r) * stride + c * 8) = val;
    }
  }
  if (t == 0) {
    float* lseRow = lse + (size_t)bh * Lq;
    if (q0 + r0 < Lq) lseRow[q0 + r0] = (m0 + log2f(l0)) * kLn2;
    if (q0 + r0 + 8 < Lq) lseRow[q0 + r0 + 8] = (m1 + log2f(l1)) * kLn2;
  }
}


// delta[(b·N + h)·Lq + i] = Σ_d dOut[b, i, h, d]·out[b, i, h, d] in fp32. 16 threads per (row, head), 8 elements each.
// Also zeroes `control` (numControl ints: the dq semaphores and the work ticket of attention_bwd_bf16).
extern "C" __global__ void attention_bwd_preprocess_bf16(float* __restrict__ delta, int* __restrict__ control,
                                                         const __nv_bfloat16* __restrict__ dOut,
                                                         const __nv_bfloat16* __restrict__ out, int B, int N, int Lq,
                                                         int numControl) {
  const long long numRows = (long long)B * Lq * N;             // (b, i, h) in memory order
  const long long first = (blockIdx.x * (long long)blockDim.x + threadIdx.x);
  for (long long c = first; c < numControl; c += (long long)gridDim.x * blockDim.x) control[c] = 0;
  // Whole warps iterate together (the shuffles below need all 32 lanes); the bound applies per lane.
  for (long long idx = first; idx - (threadIdx.x & 31) < numRows * 16; idx += (long long)gridDim.x * blockDim.x) {
    const bool valid = idx < numRows * 16;
    const long long row = valid ? idx >> 4 : 0;                // 16 lanes of one row lie in one warp half
    const int part = (int)(idx & 15);
    uint4 a = make_uint4(0, 0, 0, 0), o = make_uint4(0, 0, 0, 0);
    if (valid) {
      a = *reinterpret_cast<const uint4*>(dOut + row * kHeadDim + part * 8);
      o = *reinterpret_cast<const uint4*>(out + row * kHeadDim + part * 8);
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

namespace wanlora_attention {
__device__ __forceinline__ int load_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void store_release(int* p, int v) {
  asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
}
}  // namespace wanlora_attention

// Workspace: dqAccum (B, Lq, N·D) fp32, need not be initialised; delta (B, N, Lq) fp32 and control
// (B·N·ceil(Lq/64) semaphores + 1 ticket) as written by attention_bwd_preprocess_bf16 just before.
extern "C" __global__ void __launch_bounds__(kBwdWarps * 32, 1)
    attention_bwd_bf16(__nv_bfloat16* __restrict__ dq, __nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv,
                       float* __restrict__ dqAccum, int* __restrict__ control,
                       const __nv_bfloat16* __restrict__ dOut, const __nv_bfloat16* __restrict__ q,
                       const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
                       const float* __restrict__ lse, const float* __restrict__ delta, int N, int Lq, int Lk) {
  extern __shared__ __align__(128) unsigned char smem[];
  const uint32_t sK = smem_addr(smem);                         // (128, 128) bf16
  const uint32_t sV = sK + kBwdKeys * 256;                     // (128, 128) bf16
  const uint32_t sQ = sV + kBwdKeys * 256;                     // 2 × (64, 128) bf16
  const uint32_t sDO = sQ + 2 * kBwdRows * 256;                // 2 × (64, 128) bf16
  const uint32_t sDS = sDO + 2 * kBwdRows * 256;               // (128 keys, 64 queries) bf16, dSᵀ
  float* sLse = reinterpret_cast<float*>(smem + (sDS - sK) + kBwdKeys * kBwdRows * 2);   // 2 × 64: lse, then
  float* sDelta = sLse + 2 * kBwdRows;                                                   // 2 × 64: delta
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int numKeyBlocks = (Lk + kBwdKeys - 1) / kBwdKeys, numQueryBlocks = (Lq + kBwdRows - 1) / kBwdRows;

  __shared__ int sTicket;
  int* ticket = control + (size_t)gridDim.x / numKeyBlocks * numQueryBlocks;
  if (tid == 0) sTicket = atomicAdd(ticket, 1);
  __syncthreads();
  const int bh = sTicket / numKeyBlocks, j = sTicket % numKeyBlocks, b = bh / N, h = bh % N;
  int* semaphores = control + (size_t)bh * numQueryBlocks;
  const size_t stride = (size_t)N * kHeadDim;
  const size_t qOffset = ((size_t)b * Lq * N + h) * kHeadDim, kOffset = ((size_t)b * Lk * N + h) * kHeadDim;
  const float* lseRow = lse + (size_t)bh * Lq;
  const float* deltaRow = delta + (size_t)bh * Lq;
  const int k0 = j * kBwdKeys;

  auto loadQueryBlock = [&](int i, int buf) {
    load_rows<kBwdRows, kBwdWarps * 32>(sQ + buf * kBwdRows * 256, q + qOffset, i * kBwdRows, Lq, stride, tid);
    load_rows<kBwdRows, kBwdWarps * 32>(sDO + buf * kBwdRows * 256, dOut + qOffset, i * kBwdRows, Lq, stride, tid);
    if (tid < 2 * kBwdRows) {                                  // lse then delta; zero past Lq (see below)
      const int r = tid & (kBwdRows - 1), row = i * kBwdRows + r;
      const bool valid = row < Lq;
      const float* src = (tid < kBwdRows ? lseRow : deltaRow) + (valid ? row : 0);
      float* dst = (tid < kBwdRows ? sLse : sDelta) + buf * kBwdRows + r;
      cp_async4(smem_addr(dst), src, valid);
    }
  };
  load_rows<kBwdKeys, kBwdWarps * 32>(sK, k + kOffset, k0, Lk, stride, tid);
  load_rows<kBwdKeys, kBwdWarps * 32>(sV, v + kOffset, k0, Lk, stride, tid);
  loadQueryBlock(0, 0);
  cp_async_commit();

  float dkAcc[16][4], dvAcc[16][4];                            // keys 16w+g, 16w+g+8 of the block; 16 d-tiles
#pragma unroll
  for (int n = 0; n < 16; ++n) {
    dkAcc[n][0] = dkAcc[n][1] = dkAcc[n][2] = dkAcc[n][3] = 0.f;
    dvAcc[n][0] = dvAcc[n][1] = dvAcc[n][2] = dvAcc[n][3] = 0.f;
  }
  const bool raggedKeys = k0 + kBwdKeys > Lk;
  const int keyRow0 = warp * 16 + g;                           // this thread's key rows keyRow0, keyRow0 + 8

  for (int i = 0; i < numQueryBlocks; ++i) {
    const int buf = i & 1;
    cp_async_wait_all();
    __syncthreads();                                           // block i landed; block i−1's buffers are free
    if (i + 1 < numQueryBlocks) {
      loadQueryBlock(i + 1, buf ^ 1);
      cp_async_commit();
    }
    const uint32_t qT = sQ + buf * kBwdRows * 256, doT = sDO + buf * kBwdRows * 256;

    // Sᵀ = K·Qᵀ: rows = this warp's 16 keys, cols = 64 queries (8 tiles of 8).
    float s[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
      uint32_t ka[4];
      ldsm_x4(ka, sK + swz128(warp * 16 + (lane & 15), 2 * kk + (lane >> 4)));
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t bq[4];
        ldsm_x4(bq, qT + swz128(np * 16 + ((lane >> 4) << 3) + (lane & 7), 2 * kk + ((lane >> 3) & 1)));
        mma(s[2 * np], ka, bq[0], bq[1]);
        mma(s[2 * np + 1], ka, bq[2], bq[3]);
      }
    }
    // Pᵀ = 2^(Sᵀ·c − lse·log2 e). Query rows past Lq were zero-filled (q, dO, lse, delta = 0): their P is 1 but
    // dO = 0 and dP − delta = 0 make every contribution vanish, and their dq rows are not written.
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      const float2 l2 = *reinterpret_cast<const float2*>(sLse + buf * kBwdRows + n * 8 + 2 * t);
      s[n][0] = ex2(fmaf(s[n][0], kScaleLog2, -l2.x * kLog2e));
      s[n][1] = ex2(fmaf(s[n][1], kScaleLog2, -l2.y * kLog2e));
      s[n][2] = ex2(fmaf(s[n][2], kScaleLog2, -l2.x * kLog2e));
      s[n][3] = ex2(fmaf(s[n][3], kScaleLog2, -l2.y * kLog2e));
    }
    if (raggedKeys) {                                          // keys ≥ Lk (zero-filled) get P = 0
      const bool dead0 = k0 + keyRow0 >= Lk, dead1 = k0 + keyRow0 + 8 >= Lk;
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        if (dead0) s[n][0] = s[n][1] = 0.f;
        if (dead1) s[n][2] = s[n][3] = 0.f;
      }
    }
    // dV += Pᵀ·dO (k = 64 queries in 4 steps, n = 128 d).
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint32_t pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]), pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                              pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < 8; ++dp) {
        uint32_t bo[4];
        ldsm_x4_t(bo, doT + swz128(16 * kk + (lane & 15), 2 * dp + (lane >> 4)));
        mma(dvAcc[2 * dp], pa, bo[0], bo[1]);
        mma(dvAcc[2 * dp + 1], pa, bo[2], bo[3]);
      }
    }
    // dPᵀ = V·dOᵀ.
    float dpT[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) dpT[n][0] = dpT[n][1] = dpT[n][2] = dpT[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
      uint32_t va[4];
      ldsm_x4(va, sV + swz128(warp * 16 + (lane & 15), 2 * kk + (lane >> 4)));
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t bo[4];
        ldsm_x4(bo, doT + swz128(np * 16 + ((lane >> 4) << 3) + (lane & 7), 2 * kk + ((lane >> 3) & 1)));
        mma(dpT[2 * np], va, bo[0], bo[1]);
        mma(dpT[2 * np + 1], va, bo[2], bo[3]);
      }
    }
    // dSᵀ = Pᵀ∘(dPᵀ − delta) (forward: P = softmax rows, so dS = P∘(dP − rowsum(dP∘P)) and rowsum(dP∘P) = delta).
    // Written to shared memory as bf16 for the dQ GEMM; the same bf16 values feed dK.
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      const float2 d2 = *reinterpret_cast<const float2*>(sDelta + buf * kBwdRows + n * 8 + 2 * t);
      const uint32_t top = pack_bf16(s[n][0] * (dpT[n][0] - d2.x), s[n][1] * (dpT[n][1] - d2.y));
      const uint32_t bottom = pack_bf16(s[n][2] * (dpT[n][2] - d2.x), s[n][3] * (dpT[n][3] - d2.y));
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sDS + swz64(keyRow0, n) + 4 * t), "r"(top));
      asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sDS + swz64(keyRow0 + 8, n) + 4 * t), "r"(bottom));
      dpT[n][0] = __uint_as_float(top);                        // dpT[n][0..1] now hold the packed bf16 pairs
      dpT[n][1] = __uint_as_float(bottom);
    }
    // dK += dSᵀ·Q (k = 64 queries, n = 128 d); 1/√128 is applied at the end.
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint32_t da[4] = {__float_as_uint(dpT[2 * kk][0]), __float_as_uint(dpT[2 * kk][1]),
                              __float_as_uint(dpT[2 * kk + 1][0]), __float_as_uint(dpT[2 * kk + 1][1])};
#pragma unroll
      for (int dp = 0; dp < 8; ++dp) {
        uint32_t bq[4];
        ldsm_x4_t(bq, qT + swz128(16 * kk + (lane & 15), 2 * dp + (lane >> 4)));
        mma(dkAcc[2 * dp], da, bq[0], bq[1]);
        mma(dkAcc[2 * dp + 1], da, bq[2], bq[3]);
      }
    }
    __syncthreads();                                           // dSᵀ of all 8 warps is in shared memory
    // Partial dQ_i = dS·K: warp w computes query rows 16(w&3).., d cols 64(w>>2).. (k = 128 keys in 8 steps).
    const int qr = 16 * (warp & 3), dc = 64 * (warp >> 2);
    float dqAcc[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) dqAcc[n][0] = dqAcc[n][1] = dqAcc[n][2] = dqAcc[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
      uint32_t da[4];
      ldsm_x4_t(da, sDS + swz64(16 * kk + (lane & 7) + ((lane >> 4) << 3), (qr >> 3) + ((lane >> 3) & 1)));
#pragma unroll
      for (int dp = 0; dp < 4; ++dp) {
        uint32_t bk[4];
        ldsm_x4_t(bk, sK + swz128(16 * kk + (lane & 15), (dc >> 3) + 2 * dp + (lane >> 4)));
        mma(dqAcc[2 * dp], da, bk[0], bk[1]);
        mma(dqAcc[2 * dp + 1], da, bk[2], bk[3]);
      }
    }
    // Ordered accumulation: key block j adds its partial after blocks 0..j−1 (see the file header).
    if (tid == 0) {
      while (load_acquire(semaphores + i) != j) {
      }
    }
    __syncthreads();
    const int qRow = i * kBwdRows + qr + g;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = qRow + 8 * half;
      if (row < Lq) {
        float* accRow = dqAccum + qOffset + (size_t)row * stride + dc + 2 * t;
        __nv_bfloat16* dqRow = dq + qOffset + (size_t)row * stride + dc + 2 * t;
#pragma unroll
        for (int n = 0; n < 8; ++n) {
          float2 sum = make_float2(dqAcc[n][2 * half], dqAcc[n][2 * half + 1]);
          if (j > 0) {
            const float2 prev = __ldcg(reinterpret_cast<const float2*>(accRow + 8 * n));
            sum.x += prev.x;
            sum.y += prev.y;
          }
          if (j + 1 < numKeyBlocks) {
            __stcg(reinterpret_cast<float2*>(accRow + 8 * n), sum);
          } else {
            *reinterpret_cast<__nv_bfloat162*>(dqRow + 8 * n) = __floats2bfloat162_rn(sum.x * kScale, sum.y * kScale);
          }
        }
      }
    }
    __syncthreads();
    if (tid == 0) {
      __threadfence();
      store_release(semaphores + i, j + 1);
    }
  }

#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int key = k0 + keyRow0 + 8 * half;
    if (key < Lk) {
      __nv_bfloat16* dkRow = dk + kOffset + (size_t)key * stride + 2 * t;
      __nv_bfloat16* dvRow = dv + kOffset + (size_t)key * stride + 2 * t;
#pragma unroll
      for (int n = 0; n < 16; ++n) {
        *reinterpret_cast<__nv_bfloat162*>(dkRow + 8 * n) =
            __floats2bfloat162_rn(dkAcc[n][2 * half] * kScale, dkAcc[n][2 * half + 1] * kScale);
        *reinterpret_cast<__nv_bfloat162*>(dvRow + 8 * n) =
            __floats2bfloat162_rn(dvAcc[n][2 * half], dvAcc[n][2 * half + 1]);
      }
    }
  }
}
