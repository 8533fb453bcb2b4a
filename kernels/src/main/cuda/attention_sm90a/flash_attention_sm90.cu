// Flash attention for Hopper (sm_90a: wgmma, setmaxnreg, mbarrier), head dim D = 128, bf16 q/k/v/out, fp32
// accumulation: forward, dK/dV pass and dQ pass with the contracts of attention_fwd_bf16, attention_bwd_dkdv_bf16 and
// attention_bwd_dq_bf16 (attention/flash_attention.cu; its attention_bwd_preprocess_bf16 computes delta first):
// q, out, dq, dOut (B, Lq, N·D) and k, v, dk, dv (B, Lk, N·D) row-major bf16, element (b, l, h, d) at
// ((b·L + l)·N + h)·D + d; lse, delta (B, N, Lq) F32 (lse natural log); scale 1/√128; Lq, Lk ≥ 1, any value (ragged
// tails zero-filled and masked); pointers 16-byte aligned. This family is compiled for sm_90a only; CudaAttention
// launches it on compute capability 9.0 unless WANLORA_KERNELS=portable, and the portable family everywhere else.
//
// Every kernel: grid (ceil(L/128), B·N) over query rows (fwd, dq) or keys (dkdv), 384 threads = 3 warpgroups.
//   Warpgroup 0 is the producer: it copies the CTA's resident 128-row blocks once and then streams tiles into a ring
//   of kStages shared stages (cp.async, 16-byte chunks, zero-filled past the sequence end). A stage is handed over by
//   two mbarriers: full (128 producer arrivals, after cp.async.wait_all and fence.proxy.async so that the tensor
//   cores' async proxy sees the data) and empty (256 consumer arrivals, after the consumer's wgmma reads finished).
//   Warpgroups 1 and 2 are consumers, 64 rows each; they are not synchronised with each other, so one's
//   elementwise work overlaps the other's GEMMs. setmaxnreg: producer 40 / consumers 232 (dkdv: 24 / 240, it holds
//   two 64×128 accumulators); 3 warpgroups × 128 threads share the 64 K registers.
// attention_fwd_sm90_bf16 — 161 KiB smem. Resident Q (128 rows); K/V tiles of 128 keys. Per tile: S = Q·Kᵀ (wgmma
//   m64n128k16, Q and K from shared memory, K-major), the online softmax of attention_fwd_bf16 in registers (log2
//   domain, ex2.approx, fp32), O += P·V (wgmma m64n128k16, P as bf16 A fragments from registers, V MN-major).
//   out = O / l rounded to bf16 (round to nearest even), lse = (m + log2 l)·ln 2.
// attention_bwd_dkdv_sm90_bf16 — 130 KiB smem. Resident K, V (128 keys); Q, dO tiles of 64 queries with their lse
//   and delta. Keys are the M dimension: Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (m64n64k16, smem operands), Pᵀ = 2^(Sᵀ·c − lse·log2 e),
//   dV += Pᵀ·dO, dSᵀ = Pᵀ∘(dPᵀ − delta), dK += dSᵀ·Q (m64n128k16, Pᵀ and dSᵀ from registers, dO and Q MN-major).
// attention_bwd_dq_sm90_bf16 — 129 KiB smem. Resident Q, dO (128 rows); K/V tiles of 64 keys. S = Q·Kᵀ, dP = dO·Vᵀ,
//   dS = P∘(dP − delta), dQ += dS·K (K MN-major). dq = dQ/√128, dk = dK/√128.
// attention_bwd_fused_sm90_bf16 — 226 KiB smem. The dK/dV pass that also forms dQ: per 64-query tile the consumers
//   store dSᵀ transposed (stmatrix) into a shared dS block, meet at a named barrier, take dK += dSᵀ·Q from it and
//   compute dQ_tile = dS·K (each consumer 64 of the 128 d columns); a writer thread of the producer warpgroup adds
//   the fp32 tile into a workspace with cp.reduce.async.bulk in ascending key-block order (per-tile semaphores:
//   bitwise reproducible); attention_bwd_dq_convert_sm90_bf16 writes dq. 5 GEMMs instead of the passes' 7.
// Shared layout: every operand block of R rows × 128 bf16 is stored as two column halves [half][R][128 bytes] with
//   the 16-byte chunk c of row r at ((c ^ (r & 7)) << 4): wgmma's 128-byte swizzle. Blocks start at 1024-byte
//   boundaries. K-major operands: SBO = 1024 bytes between 8-row groups; a k-step of 16 moves the start 32 bytes
//   within a half. MN-major B operands (N = d): LBO = R·128 bytes between the d halves, SBO = 1024 between groups of
//   8 rows; a k-step of 16 rows moves the start 2048 bytes.
// Numerics: as the portable kernels (P and dS rounded to bf16 as GEMM operands, row sums from the fp32 P, fp32
//   accumulation); only the order of fp32 accumulation inside the tensor cores (and the forward's 128-key tiles of
//   the running max, the fused backward's per-128-key partial dQ) differ. Determinism: every output element is
//   accumulated in a fixed order (by one thread, or by the fused backward's ordered adds): bitwise reproducible. Measured on an H200 beside PyTorch's FlashAttention-2:
//   kernels/dev/attention/NOTES.md ("sm90").
#include "wanlora.cuh"

namespace wanlora_attention_sm90 {

constexpr int kHeadDim = 128;
constexpr int kRowsPerConsumer = 64;                           // query rows per consumer warpgroup
constexpr int kBr = 2 * kRowsPerConsumer;                      // query rows per CTA
constexpr int kBc = 128;                                       // keys per tile
constexpr int kThreads = 384;
constexpr int kTileBytes = kBc * kHeadDim * 2;                 // one K or V tile: 32 KiB
constexpr int kQBytes = kBr * kHeadDim * 2;                    // 32 KiB
constexpr float kScale = 0.08838834764831845f;                 // 1/√128
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kScaleLog2 = kScale * kLog2e;
constexpr float kLn2 = 0.6931471805599453f;
// Dynamic shared memory: 1 KiB of alignment slack, Q, kStages × (K, V), 2 mbarriers per stage.
constexpr int smemBytes(int stages) { return 1024 + kQBytes + stages * 2 * kTileBytes + stages * 16; }

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// Byte offset of 16-byte chunk c (0..15) of row r in a tile of `rows` rows (two 128-byte column halves, swizzled).
__device__ __forceinline__ uint32_t swz(int rows, int r, int c) {
  return (c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4);
}

__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(bar) : "memory");
}
// Waits until the phase of `bar` with the given parity has completed.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT_LOOP:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_LOOP;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

// Shared-memory matrix descriptor with 128-byte swizzle: start, leading and stride byte offsets (>> 4 each).
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32) |
         (1ull << 62);
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

// d (64×128 fp32, the warpgroup's accumulator fragment) (+)= A·B, A and B from shared memory (descriptors);
// scaleD = 0 overwrites d. Both operands K-major.
template <int kScaleD>
__device__ __forceinline__ void wgmma_ss_m64n128(float (&d)[64], uint64_t descA, uint64_t descB) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(descA), "l"(descB), "n"(kScaleD));
}

// d (64×128 fp32) += A·B, A (64×16 bf16) from registers (the mma.sync m16n8k16 A fragment per warp), B from
// shared memory, MN-major (transposed).
__device__ __forceinline__ void wgmma_rs_m64n128_tb(float (&d)[64], const uint32_t (&a)[4], uint64_t descB) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
      "}, {%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "n"(1));
}

// d (64×64 fp32) (+)= A·B, A and B from shared memory, both K-major; scaleD = 0 overwrites d.
template <int kScaleD>
__device__ __forceinline__ void wgmma_ss_m64n64(float (&d)[32], uint64_t descA, uint64_t descB) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(descA), "l"(descB), "n"(kScaleD));
}

// cp.async of `rows` rows (128 bf16 each, global row stride `stride` elements) from sequence row row0 into a
// swizzled tile; rows at or past `limit` are zero-filled (source clamped to row 0). 128 producer threads.
template <int ROWS>
__device__ __forceinline__ void load_tile(uint32_t dst, const __nv_bfloat16* base, int row0, int limit, size_t stride,
                                          int tid) {
#pragma unroll 4
  for (int it = 0; it < ROWS * 16 / 128; ++it) {
    const int id = tid + it * 128, r = id >> 4, c = id & 15;
    const bool valid = row0 + r < limit;
    cp_async16(dst + swz(ROWS, r, c), base + (size_t)(valid ? row0 + r : 0) * stride + c * 8, valid);
  }
}

// S = Q·Kᵀ for the warpgroup's 64 rows and a 128-key tile (8 k-steps of 16 over d), issued and committed.
__device__ __forceinline__ void issue_qk(float (&sc)[64], uint32_t qTile, uint32_t kT) {
  wgmma_ss_m64n128<0>(sc, desc_sw128(qTile, 16, 1024), desc_sw128(kT, 16, 1024));
#pragma unroll
  for (int kk = 1; kk < 8; ++kk) {
    wgmma_ss_m64n128<1>(sc, desc_sw128(qTile + (kk >> 2) * (kQBytes / 4) + (kk & 3) * 32, 16, 1024),
                        desc_sw128(kT + (kk >> 2) * (kTileBytes / 2) + (kk & 3) * 32, 16, 1024));
  }
  wgmma_commit();
}

// O += P·V for a 128-key tile (8 k-steps of 16 keys), issued and committed.
__device__ __forceinline__ void issue_pv(float (&o)[64], const uint32_t (&p)[8][4], uint32_t vT) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) wgmma_rs_m64n128_tb(o, p[kk], desc_sw128(vT + kk * 2048, kTileBytes / 2, 1024));
  wgmma_commit();
}

// Online softmax of tile j in place: sc becomes 2^(S·c − m) (fp32) for rows g, g+8 (keys ≥ Lk masked to 0); m and
// l are updated; returns the factors alpha0, alpha1 by which O (relative to the old max) must be rescaled.
__device__ __forceinline__ void softmax_tile(float (&sc)[64], int j, int Lk, int t, float& m0, float& m1, float& l0,
                                             float& l1, float& alpha0, float& alpha1) {
  if ((j + 1) * kBc > Lk) {                                    // ragged last tile: keys ≥ Lk get −∞
#pragma unroll
    for (int n = 0; n < 16; ++n) {
      const int key = j * kBc + n * 8 + 2 * t;
      if (key >= Lk) sc[4 * n] = sc[4 * n + 2] = -INFINITY;
      if (key + 1 >= Lk) sc[4 * n + 1] = sc[4 * n + 3] = -INFINITY;
    }
  }
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int n = 0; n < 16; ++n) {
    mx0 = fmaxf(mx0, fmaxf(sc[4 * n], sc[4 * n + 1]));
    mx1 = fmaxf(mx1, fmaxf(sc[4 * n + 2], sc[4 * n + 3]));
  }
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, 1));
  mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffff, mx0, 2));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, 1));
  mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffff, mx1, 2));
  // Every tile holds at least one key < Lk, so the new max is finite and alpha is 0 on the first tile.
  const float mNew0 = fmaxf(m0, mx0 * kScaleLog2), mNew1 = fmaxf(m1, mx1 * kScaleLog2);
  alpha0 = ex2(m0 - mNew0);
  alpha1 = ex2(m1 - mNew1);
  m0 = mNew0;
  m1 = mNew1;
  float rowSum0 = 0.f, rowSum1 = 0.f;
#pragma unroll
  for (int n = 0; n < 16; ++n) {
    sc[4 * n] = ex2(fmaf(sc[4 * n], kScaleLog2, -mNew0));
    sc[4 * n + 1] = ex2(fmaf(sc[4 * n + 1], kScaleLog2, -mNew0));
    sc[4 * n + 2] = ex2(fmaf(sc[4 * n + 2], kScaleLog2, -mNew1));
    sc[4 * n + 3] = ex2(fmaf(sc[4 * n + 3], kScaleLog2, -mNew1));
    rowSum0 += sc[4 * n] + sc[4 * n + 1];
    rowSum1 += sc[4 * n + 2] + sc[4 * n + 3];
  }
  l0 = l0 * alpha0 + rowSum0;
  l1 = l1 * alpha1 + rowSum1;
}

__device__ __forceinline__ void rescale(float (&o)[64], float alpha0, float alpha1) {
#pragma unroll
  for (int n = 0; n < 16; ++n) {
    o[4 * n] *= alpha0;
    o[4 * n + 1] *= alpha0;
    o[4 * n + 2] *= alpha1;
    o[4 * n + 3] *= alpha1;
  }
}

// P (fp32 accumulator layout, 16 key-tiles of 8) to bf16 A fragments of 8 k-steps of 16 keys (C layout = A layout).
__device__ __forceinline__ void to_bf16_a(uint32_t (&p)[8][4], const float (&sc)[64]) {
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    p[kk][0] = pack_bf16(sc[8 * kk], sc[8 * kk + 1]);
    p[kk][1] = pack_bf16(sc[8 * kk + 2], sc[8 * kk + 3]);
    p[kk][2] = pack_bf16(sc[8 * kk + 4], sc[8 * kk + 5]);
    p[kk][3] = pack_bf16(sc[8 * kk + 6], sc[8 * kk + 7]);
  }
}

// kOverlap = false: per tile S, wait, softmax, P·V, wait (the two consumers overlap each other only).
// kOverlap = true (needs kStages ≥ 3: a consumer holds two stages): S_j and P_{j−1}·V_{j−1} are issued together and
// the softmax of S_j runs while P_{j−1}·V_{j−1} is still in the tensor cores.
// kSkipRescale (dev variant): O is rescaled only when some row of the warp changed its max (alpha ≠ 1; multiplying
// by 1 is exact, so the results are identical).
template <int kStages, bool kOverlap, bool kSkipRescale = false>
__device__ __forceinline__ void forward(__nv_bfloat16* __restrict__ out, float* __restrict__ lse,
                                        const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                                        const __nv_bfloat16* __restrict__ v, int N, int Lq, int Lk) {
  static_assert(!kOverlap || kStages >= 3, "the overlapped schedule holds two stages while the producer fills one");
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t sQ = base;                                    // 2 × (64 rows, two halves): consumer w at w·16 KiB
  const uint32_t sK = sQ + kQBytes;                            // kStages × 32 KiB
  const uint32_t sV = sK + kStages * kTileBytes;               // kStages × 32 KiB
  const uint32_t bars = sV + kStages * kTileBytes;             // full[s] at bars + 8s, empty[s] at bars + 8(kStages + s)
  const int bh = blockIdx.y, b = bh / N, h = bh % N, q0 = blockIdx.x * kBr;
  const size_t stride = (size_t)N * kHeadDim;
  const size_t qOffset = ((size_t)b * Lq * N + h) * kHeadDim, kOffset = ((size_t)b * Lk * N + h) * kHeadDim;
  const int numTiles = (Lk + kBc - 1) / kBc;
  const int wg = threadIdx.x >> 7;

  if (threadIdx.x == 0) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbar_init(bars + 8 * s, 128);
      mbar_init(bars + 8 * (kStages + s), 2 * 128);
    }
  }
  __syncthreads();

  if (wg == 0) {  // producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    const int tid = threadIdx.x;
    for (int j = 0; j <= numTiles; ++j) {
      if (j >= 1) {                                            // tile j−1 landed: publish it to the async proxy
        cp_async_wait_all();
        fence_proxy_async();
        mbar_arrive(bars + 8 * ((j - 1) % kStages));
      }
      if (j == numTiles) break;
      const int s = j % kStages;
      if (j >= kStages) mbar_wait(bars + 8 * (kStages + s), ((j / kStages) + 1) & 1);   // consumers freed stage s
      if (j == 0) {
        load_tile<kRowsPerConsumer>(sQ, q + qOffset, q0, Lq, stride, tid);
        load_tile<kRowsPerConsumer>(sQ + kQBytes / 2, q + qOffset, q0 + kRowsPerConsumer, Lq, stride, tid);
      }
      load_tile<kBc>(sK + s * kTileBytes, k + kOffset, j * kBc, Lk, stride, tid);
      load_tile<kBc>(sV + s * kTileBytes, v + kOffset, j * kBc, Lk, stride, tid);
      cp_async_commit();
    }
  } else {  // consumers
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int c = wg - 1, tid = threadIdx.x & 127, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const uint32_t qTile = sQ + c * (kQBytes / 2);
    float o[64];                                               // O: rows g, g+8 of the warp; 16 d-tiles of 8
#pragma unroll
    for (int i = 0; i < 64; ++i) o[i] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // rows g, g+8: max (log2 domain), partial row sum
    float sc[64];                                              // S, then P in fp32: rows g, g+8; 16 key-tiles of 8
    uint32_t p[8][4];                                          // P as bf16 A fragments
    float alpha0, alpha1;

    if constexpr (!kOverlap) {
      for (int j = 0; j < numTiles; ++j) {
        const int s = j % kStages;
        mbar_wait(bars + 8 * s, (j / kStages) & 1);
        wgmma_fence();
        issue_qk(sc, qTile, sK + s * kTileBytes);
        wgmma_wait<0>();
        softmax_tile(sc, j, Lk, t, m0, m1, l0, l1, alpha0, alpha1);
        if (!kSkipRescale || __any_sync(0xffffffff, alpha0 != 1.f || alpha1 != 1.f)) rescale(o, alpha0, alpha1);
        to_bf16_a(p, sc);
        wgmma_fence();
        issue_pv(o, p, sV + s * kTileBytes);
        wgmma_wait<0>();
        mbar_arrive(bars + 8 * (kStages + s));                 // this thread is done reading stage s
      }
    } else {
      mbar_wait(bars, 0);
      wgmma_fence();
      issue_qk(sc, qTile, sK);
      wgmma_wait<0>();
      softmax_tile(sc, 0, Lk, t, m0, m1, l0, l1, alpha0, alpha1);
      to_bf16_a(p, sc);
      for (int j = 1; j < numTiles; ++j) {
        const int s = j % kStages, prev = (j - 1) % kStages;
        mbar_wait(bars + 8 * s, (j / kStages) & 1);
        wgmma_fence();
        issue_qk(sc, qTile, sK + s * kTileBytes);              // group 1: S_j
        issue_pv(o, p, sV + prev * kTileBytes);                // group 2: O += P_{j−1}·V_{j−1}
        wgmma_wait<1>();                                       // S_j is ready; P·V may still run
        softmax_tile(sc, j, Lk, t, m0, m1, l0, l1, alpha0, alpha1);
        wgmma_wait<0>();
        mbar_arrive(bars + 8 * (kStages + prev));              // done reading stage j−1
        rescale(o, alpha0, alpha1);
        to_bf16_a(p, sc);
      }
      const int last = (numTiles - 1) % kStages;
      wgmma_fence();
      issue_pv(o, p, sV + last * kTileBytes);
      wgmma_wait<0>();
      mbar_arrive(bars + 8 * (kStages + last));
    }

    l0 += __shfl_xor_sync(0xffffffff, l0, 1);
    l0 += __shfl_xor_sync(0xffffffff, l0, 2);
    l1 += __shfl_xor_sync(0xffffffff, l1, 1);
    l1 += __shfl_xor_sync(0xffffffff, l1, 2);
    const float inv0 = 1.f / l0, inv1 = 1.f / l1;
    const int r0 = q0 + c * kRowsPerConsumer + warp * 16 + g;
    __nv_bfloat16* outBase = out + qOffset;
    if (r0 < Lq) {
      uint32_t* row = reinterpret_cast<uint32_t*>(outBase + (size_t)r0 * stride);
#pragma unroll
      for (int n = 0; n < 16; ++n) row[4 * n + t] = pack_bf16(o[4 * n] * inv0, o[4 * n + 1] * inv0);
    }
    if (r0 + 8 < Lq) {
      uint32_t* row = reinterpret_cast<uint32_t*>(outBase + (size_t)(r0 + 8) * stride);
#pragma unroll
      for (int n = 0; n < 16; ++n) row[4 * n + t] = pack_bf16(o[4 * n + 2] * inv1, o[4 * n + 3] * inv1);
    }
    if (t == 0) {
      float* lseRow = lse + (size_t)bh * Lq;
      if (r0 < Lq) lseRow[r0] = (m0 + log2f(l0)) * kLn2;
      if (r0 + 8 < Lq) lseRow[r0 + 8] = (m1 + log2f(l1)) * kLn2;
    }
  }
}


// ------------------------------------------------------------------------------------------------ backward

constexpr int kBwdTile = 64;                                   // keys per dQ tile; queries per dK/dV tile
constexpr int kBlock64Bytes = 64 * kHeadDim * 2;               // 16 KiB: one 64-row operand block
// dQ: 1 KiB slack, Q and dO (128 rows each), kStages × (K, V) tiles of 64 rows, 2 mbarriers per stage.
constexpr int dqSmemBytes(int stages) { return 1024 + 2 * kQBytes + stages * 2 * kBlock64Bytes + stages * 16; }
// dK/dV: 1 KiB slack, K and V (128 rows each), kStages × (Q, dO tiles of 64 rows, lse, delta), 2 mbarriers per stage.
constexpr int dkdvSmemBytes(int stages) {
  return 1024 + 2 * kQBytes + stages * (2 * kBlock64Bytes + 2 * 64 * 4) + stages * 16;
}

// B descriptor of a 64-row K-major tile for k-step kk over d.
__device__ __forceinline__ uint64_t desc_k64(uint32_t tile, int kk) {
  return desc_sw128(tile + (kk >> 2) * (kBlock64Bytes / 2) + (kk & 3) * 32, 16, 1024);
}
// B descriptor of a 64-row tile read MN-major (N = d, K = rows) for k-step kk over the rows.
__device__ __forceinline__ uint64_t desc_mn64(uint32_t tile, int kk) {
  return desc_sw128(tile + kk * 2048, kBlock64Bytes / 2, 1024);
}

// c (64×64) = A·Bᵀ over d = 128 for 64-row K-major blocks A and B (8 k-steps), issued and committed.
__device__ __forceinline__ void issue_ss64(float (&c)[32], uint32_t a, uint32_t b) {
  wgmma_ss_m64n64<0>(c, desc_k64(a, 0), desc_k64(b, 0));
#pragma unroll
  for (int kk = 1; kk < 8; ++kk) wgmma_ss_m64n64<1>(c, desc_k64(a, kk), desc_k64(b, kk));
  wgmma_commit();
}
// acc (64×128) += A·B for A (64×64 bf16 fragments, 4 k-steps) and B a 64-row tile read MN-major; committed.
__device__ __forceinline__ void issue_rs64(float (&acc)[64], const uint32_t (&a)[4][4], uint32_t tile) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) wgmma_rs_m64n128_tb(acc, a[kk], desc_mn64(tile, kk));
  wgmma_commit();
}
__device__ __forceinline__ void to_bf16_a64(uint32_t (&a)[4][4], const float (&c)[32]) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    a[kk][0] = pack_bf16(c[8 * kk], c[8 * kk + 1]);
    a[kk][1] = pack_bf16(c[8 * kk + 2], c[8 * kk + 3]);
    a[kk][2] = pack_bf16(c[8 * kk + 4], c[8 * kk + 5]);
    a[kk][3] = pack_bf16(c[8 * kk + 6], c[8 * kk + 7]);
  }
}
// Stores rows row0 + g, row0 + g + 8 of a warp's 16×128 accumulator slice times `scale` as bf16 (rows ≥ limit
// skipped): 4-byte stores, the 4 threads of a row covering 16 contiguous bytes per d-tile.
__device__ __forceinline__ void store_acc(__nv_bfloat16* base, size_t stride, int row0, int limit,
                                          const float (&acc)[64], float scale, int g, int t) {
  if (row0 + g < limit) {
    uint32_t* row = reinterpret_cast<uint32_t*>(base + (size_t)(row0 + g) * stride);
#pragma unroll
    for (int n = 0; n < 16; ++n) row[4 * n + t] = pack_bf16(acc[4 * n] * scale, acc[4 * n + 1] * scale);
  }
  if (row0 + g + 8 < limit) {
    uint32_t* row = reinterpret_cast<uint32_t*>(base + (size_t)(row0 + g + 8) * stride);
#pragma unroll
    for (int n = 0; n < 16; ++n) row[4 * n + t] = pack_bf16(acc[4 * n + 2] * scale, acc[4 * n + 3] * scale);
  }
}

// dQ pass: the CTA owns 128 query rows (64 per consumer) and streams K/V tiles of 64 keys; per tile S = Q·Kᵀ and
// dP = dO·Vᵀ (wgmma, smem operands), dS = P∘(dP − delta) with P = 2^(S·c − lse·log2 e), dQ += dS·K (dS from
// registers, K MN-major). dq = dQ/√128. Query rows past Lq: q = dO = 0, lse = delta = 0 give dS = 0 (not stored).
template <int kStages>
__device__ __forceinline__ void backward_dq(__nv_bfloat16* __restrict__ dq, const __nv_bfloat16* __restrict__ dOut,
                                            const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                                            const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse,
                                            const float* __restrict__ delta, int N, int Lq, int Lk) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t sQ = base, sDO = sQ + kQBytes;                // 2 blocks of 64 rows each
  const uint32_t sK = sDO + kQBytes;                           // kStages × 16 KiB
  const uint32_t sV = sK + kStages * kBlock64Bytes;            // kStages × 16 KiB
  const uint32_t bars = sV + kStages * kBlock64Bytes;
  const int bh = blockIdx.y, b = bh / N, h = bh % N, q0 = blockIdx.x * kBr;
  const size_t stride = (size_t)N * kHeadDim;
  const size_t qOffset = ((size_t)b * Lq * N + h) * kHeadDim, kOffset = ((size_t)b * Lk * N + h) * kHeadDim;
  const int numTiles = (Lk + kBwdTile - 1) / kBwdTile;
  const int wg = threadIdx.x >> 7;

  if (threadIdx.x == 0) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbar_init(bars + 8 * s, 128);
      mbar_init(bars + 8 * (kStages + s), 2 * 128);
    }
  }
  __syncthreads();

  if (wg == 0) {  // producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    const int tid = threadIdx.x;
    for (int j = 0; j <= numTiles; ++j) {
      if (j >= 1) {
        cp_async_wait_all();
        fence_proxy_async();
        mbar_arrive(bars + 8 * ((j - 1) % kStages));
      }
      if (j == numTiles) break;
      const int s = j % kStages;
      if (j >= kStages) mbar_wait(bars + 8 * (kStages + s), ((j / kStages) + 1) & 1);
      if (j == 0) {
        load_tile<64>(sQ, q + qOffset, q0, Lq, stride, tid);
        load_tile<64>(sQ + kBlock64Bytes, q + qOffset, q0 + 64, Lq, stride, tid);
        load_tile<64>(sDO, dOut + qOffset, q0, Lq, stride, tid);
        load_tile<64>(sDO + kBlock64Bytes, dOut + qOffset, q0 + 64, Lq, stride, tid);
      }
      load_tile<64>(sK + s * kBlock64Bytes, k + kOffset, j * kBwdTile, Lk, stride, tid);
      load_tile<64>(sV + s * kBlock64Bytes, v + kOffset, j * kBwdTile, Lk, stride, tid);
      cp_async_commit();
    }
  } else {  // consumers
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
    const int c = wg - 1, tid = threadIdx.x & 127, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const uint32_t qBlock = sQ + c * kBlock64Bytes, doBlock = sDO + c * kBlock64Bytes;
    const int r0 = q0 + c * 64 + warp * 16 + g;
    const float lse0 = r0 < Lq ? lse[(size_t)bh * Lq + r0] * kLog2e : 0.f;
    const float lse1 = r0 + 8 < Lq ? lse[(size_t)bh * Lq + r0 + 8] * kLog2e : 0.f;
    const float delta0 = r0 < Lq ? delta[(size_t)bh * Lq + r0] : 0.f;
    const float delta1 = r0 + 8 < Lq ? delta[(size_t)bh * Lq + r0 + 8] : 0.f;
    float acc[64];                                             // dQ rows g, g+8 of the warp; 16 d-tiles
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = 0.f;
    for (int j = 0; j < numTiles; ++j) {
      const int s = j % kStages;
      mbar_wait(bars + 8 * s, (j / kStages) & 1);
      const uint32_t kT = sK + s * kBlock64Bytes, vT = sV + s * kBlock64Bytes;
      float sc[32], dp[32];                                    // S and dP: rows g, g+8; 8 key-tiles of 8
      wgmma_fence();
      issue_ss64(sc, qBlock, kT);
      issue_ss64(dp, doBlock, vT);
      wgmma_wait<1>();                                         // S ready; dP may still run
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        sc[4 * n] = ex2(fmaf(sc[4 * n], kScaleLog2, -lse0));
        sc[4 * n + 1] = ex2(fmaf(sc[4 * n + 1], kScaleLog2, -lse0));
        sc[4 * n + 2] = ex2(fmaf(sc[4 * n + 2], kScaleLog2, -lse1));
        sc[4 * n + 3] = ex2(fmaf(sc[4 * n + 3], kScaleLog2, -lse1));
      }
      wgmma_wait<0>();
      const bool ragged = (j + 1) * kBwdTile > Lk;
#pragma unroll
      for (int n = 0; n < 8; ++n) {                            // dS = P∘(dP − delta); keys ≥ Lk contribute 0
        const int key = j * kBwdTile + n * 8 + 2 * t;
        const bool dead0 = ragged && key >= Lk, dead1 = ragged && key + 1 >= Lk;
        sc[4 * n] = dead0 ? 0.f : sc[4 * n] * (dp[4 * n] - delta0);
        sc[4 * n + 1] = dead1 ? 0.f : sc[4 * n + 1] * (dp[4 * n + 1] - delta0);
        sc[4 * n + 2] = dead0 ? 0.f : sc[4 * n + 2] * (dp[4 * n + 2] - delta1);
        sc[4 * n + 3] = dead1 ? 0.f : sc[4 * n + 3] * (dp[4 * n + 3] - delta1);
      }
      uint32_t ds[4][4];
      to_bf16_a64(ds, sc);
      wgmma_fence();
      issue_rs64(acc, ds, kT);                                 // dQ += dS·K
      wgmma_wait<0>();
      mbar_arrive(bars + 8 * (kStages + s));
    }
    store_acc(dq + qOffset, stride, q0 + c * 64 + warp * 16, Lq, acc, kScale, g, t);
  }
}

// dK/dV pass: the CTA owns 128 keys (64 per consumer, K and V blocks resident) and streams Q, dO, lse, delta tiles
// of 64 queries. Keys are the M dimension: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ (smem operands), Pᵀ = 2^(Sᵀ·c − lse·log2 e),
// dV += Pᵀ·dO, dSᵀ = Pᵀ∘(dPᵀ − delta), dK += dSᵀ·Q (Pᵀ, dSᵀ from registers, dO and Q MN-major). dk = dK/√128.
// Query rows past Lq are zero-filled (q, dO, lse, delta = 0): P = 1 but dO = 0 and dP − delta = 0, so they add 0.
// Keys past Lk are zero-filled and their rows are not stored.
template <int kStages>
__device__ __forceinline__ void backward_dkdv(__nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv,
                                              const __nv_bfloat16* __restrict__ dOut,
                                              const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                                              const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse,
                                              const float* __restrict__ delta, int N, int Lq, int Lk) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t sK = base, sV = sK + kQBytes;                 // 2 blocks of 64 keys each
  const uint32_t sQ = sV + kQBytes;                            // kStages × 16 KiB
  const uint32_t sDO = sQ + kStages * kBlock64Bytes;           // kStages × 16 KiB
  const uint32_t sLse = sDO + kStages * kBlock64Bytes;          // kStages × 64 F32
  const uint32_t sDelta = sLse + kStages * 256;                // kStages × 64 F32
  const uint32_t bars = sDelta + kStages * 256;
  const int bh = blockIdx.y, b = bh / N, h = bh % N, k0 = blockIdx.x * kBr;
  const size_t stride = (size_t)N * kHeadDim;
  const size_t qOffset = ((size_t)b * Lq * N + h) * kHeadDim, kOffset = ((size_t)b * Lk * N + h) * kHeadDim;
  const float* lseRow = lse + (size_t)bh * Lq;
  const float* deltaRow = delta + (size_t)bh * Lq;
  const int numTiles = (Lq + kBwdTile - 1) / kBwdTile;
  const int wg = threadIdx.x >> 7;

  if (threadIdx.x == 0) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbar_init(bars + 8 * s, 128);
      mbar_init(bars + 8 * (kStages + s), 2 * 128);
    }
  }
  __syncthreads();

  if (wg == 0) {  // producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");   // 24 + 2 × 240 (two accumulators)
    const int tid = threadIdx.x;
    for (int i = 0; i <= numTiles; ++i) {
      if (i >= 1) {
        cp_async_wait_all();
        fence_proxy_async();
        mbar_arrive(bars + 8 * ((i - 1) % kStages));
      }
      if (i == numTiles) break;
      const int s = i % kStages;
      if (i >= kStages) mbar_wait(bars + 8 * (kStages + s), ((i / kStages) + 1) & 1);
      if (i == 0) {
        load_tile<64>(sK, k + kOffset, k0, Lk, stride, tid);
        load_tile<64>(sK + kBlock64Bytes, k + kOffset, k0 + 64, Lk, stride, tid);
        load_tile<64>(sV, v + kOffset, k0, Lk, stride, tid);
        load_tile<64>(sV + kBlock64Bytes, v + kOffset, k0 + 64, Lk, stride, tid);
      }
      load_tile<64>(sQ + s * kBlock64Bytes, q + qOffset, i * kBwdTile, Lq, stride, tid);
      load_tile<64>(sDO + s * kBlock64Bytes, dOut + qOffset, i * kBwdTile, Lq, stride, tid);
      {
        const int r = tid & 63, row = i * kBwdTile + r;
        const bool valid = row < Lq;
        cp_async4((tid < 64 ? sLse : sDelta) + s * 256 + r * 4, (tid < 64 ? lseRow : deltaRow) + (valid ? row : 0),
                  valid);
      }
      cp_async_commit();
    }
  } else {  // consumers
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    const int c = wg - 1, tid = threadIdx.x & 127, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const uint32_t kBlock = sK + c * kBlock64Bytes, vBlock = sV + c * kBlock64Bytes;
    float dkAcc[64], dvAcc[64];                                // keys g, g+8 of the warp; 16 d-tiles
#pragma unroll
    for (int i = 0; i < 64; ++i) dkAcc[i] = dvAcc[i] = 0.f;
    for (int i = 0; i < numTiles; ++i) {
      const int s = i % kStages;
      mbar_wait(bars + 8 * s, (i / kStages) & 1);
      const uint32_t qT = sQ + s * kBlock64Bytes, doT = sDO + s * kBlock64Bytes;
      const float* lseT = reinterpret_cast<const float*>(smem_raw + (sLse + s * 256 - smem_addr(smem_raw)));
      const float* deltaT = reinterpret_cast<const float*>(smem_raw + (sDelta + s * 256 - smem_addr(smem_raw)));
      float st[32], dpt[32];                                   // Sᵀ and dPᵀ: keys g, g+8; 8 query-tiles of 8
      wgmma_fence();
      issue_ss64(st, kBlock, qT);
      issue_ss64(dpt, vBlock, doT);
      wgmma_wait<1>();                                         // Sᵀ ready
#pragma unroll
      for (int n = 0; n < 8; ++n) {                            // Pᵀ = 2^(Sᵀ·c − lse·log2 e), lse per query column
        const float2 l2 = *reinterpret_cast<const float2*>(lseT + n * 8 + 2 * t);
        st[4 * n] = ex2(fmaf(st[4 * n], kScaleLog2, -l2.x * kLog2e));
        st[4 * n + 1] = ex2(fmaf(st[4 * n + 1], kScaleLog2, -l2.y * kLog2e));
        st[4 * n + 2] = ex2(fmaf(st[4 * n + 2], kScaleLog2, -l2.x * kLog2e));
        st[4 * n + 3] = ex2(fmaf(st[4 * n + 3], kScaleLog2, -l2.y * kLog2e));
      }
      uint32_t pa[4][4];
      to_bf16_a64(pa, st);
      wgmma_fence();
      issue_rs64(dvAcc, pa, doT);                              // dV += Pᵀ·dO
      wgmma_wait<1>();                                         // dPᵀ ready (dV may still run)
#pragma unroll
      for (int n = 0; n < 8; ++n) {                            // dSᵀ = Pᵀ∘(dPᵀ − delta)
        const float2 d2 = *reinterpret_cast<const float2*>(deltaT + n * 8 + 2 * t);
        dpt[4 * n] = st[4 * n] * (dpt[4 * n] - d2.x);
        dpt[4 * n + 1] = st[4 * n + 1] * (dpt[4 * n + 1] - d2.y);
        dpt[4 * n + 2] = st[4 * n + 2] * (dpt[4 * n + 2] - d2.x);
        dpt[4 * n + 3] = st[4 * n + 3] * (dpt[4 * n + 3] - d2.y);
      }
      uint32_t da[4][4];
      to_bf16_a64(da, dpt);
      wgmma_fence();
      issue_rs64(dkAcc, da, qT);                               // dK += dSᵀ·Q
      wgmma_wait<0>();
      mbar_arrive(bars + 8 * (kStages + s));
    }
    const int row0 = k0 + c * 64 + warp * 16;
    store_acc(dk + kOffset, stride, row0, Lk, dkAcc, kScale, g, t);
    store_acc(dv + kOffset, stride, row0, Lk, dvAcc, 1.f, g, t);
  }
}


// ------------------------------------------------------------------------------------------------ fused backward

// One pass over key blocks (the dK/dV pass above) that also produces the dQ contributions: dQ_i += dS_i·K_blk for
// every query tile i, added into an fp32 workspace in a FIXED order (key block 0 stores, key blocks 1, 2, ... add in
// ascending order, each after the previous one's add completed: a per-(head, query tile) semaphore), so the sums are
// bitwise reproducible without the dQ pass's recompute of S and dP (5 GEMMs instead of 7).
// A launch covers the (batch, head) pairs bh0 .. bh0 + gridDim.y − 1 (bh = b·N + h), so that the workspace can be
// bounded by launching a few heads at a time. Workspace (G = gridDim.y pairs, T = ceil(Lq/64) query tiles):
// semaphores int32 [G][T] (zero before the launch) and dqAcc fp32 [G][T][8192] in fragment order (below);
// attention_bwd_dq_convert_sm90_bf16 then writes dq = bf16(dqAcc/√128) of those pairs.
constexpr int kDqTileFloats = 64 * kHeadDim;                  // 8192 floats = 32 KiB per query tile
// Fused: 1 KiB slack, K and V (128 rows each), kStages × (Q, dO, lse, delta), 2 dS buffers (64 queries × 128 keys
// bf16), 2 dQ buffers (64 × 128 fp32), mbarriers: full/empty per stage, dqFull/dqEmpty per dQ buffer.
constexpr int fusedSmemBytes(int stages) {
  return 1024 + 2 * kQBytes + stages * (2 * kBlock64Bytes + 2 * 64 * 4) + 2 * kBlock64Bytes + 2 * kDqTileFloats * 4 +
         (2 * stages + 4) * 8;
}
// Position (in floats) of accumulator element e (0..3) of n-tile n (0..7) of lane `lane` of warp `warp` of consumer
// c in a query tile's dqAcc block: each thread's 4 floats of an n-tile are one float4, a warp's 32 float4 contiguous.
__host__ __device__ __forceinline__ int dq_frag_pos(int c, int warp, int n, int lane) {
  return (((c * 4 + warp) * 8 + n) * 32 + lane) * 4;
}

// d (64×64 fp32) (+)= A·B, A from shared memory K-major, B from shared memory MN-major (transposed).
template <int kScaleD>
__device__ __forceinline__ void wgmma_ss_m64n64_tb(float (&d)[32], uint64_t descA, uint64_t descB) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
      "}, %32, %33, p, 1, 1, 0, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(descA), "l"(descB), "n"(kScaleD));
}

// d (64×128 fp32) += A·B, A and B from shared memory, both MN-major (transposed).
__device__ __forceinline__ void wgmma_ss_m64n128_tab(float (&d)[64], uint64_t descA, uint64_t descB) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
      "}, %64, %65, p, 1, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(descA), "l"(descB), "n"(1));
}

// cp.async of a 64-row operand block by NT producer threads (as load_tile<64>, fewer threads).
template <int NT>
__device__ __forceinline__ void load_block64(uint32_t dst, const __nv_bfloat16* base, int row0, int limit,
                                             size_t stride, int tid) {
#pragma unroll 4
  for (int it = 0; it < 64 * 16 / NT; ++it) {
    const int id = tid + it * NT, r = id >> 4, c = id & 15;
    const bool valid = row0 + r < limit;
    cp_async16(dst + swz(64, r, c), base + (size_t)(valid ? row0 + r : 0) * stride + c * 8, valid);
  }
}

__device__ __forceinline__ void named_barrier_sync(int id, int count) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(count) : "memory");
}

// Four 8×8 bf16 fragments (mma C/A layout: lane holds row lane/4, columns 2(lane%4), +1) stored transposed: matrix j's
// row r goes to the 16-byte address given by lane 8j + r.
__device__ __forceinline__ void stmatrix_x4_trans(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0),
               "r"(r1), "r"(r2), "r"(r3)
               : "memory");
}

__device__ __forceinline__ int ld_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Fused backward. CTA: 128 keys (64 per consumer; K, V resident), streams Q, dO, lse, delta tiles of 64 queries as
// backward_dkdv. Per tile i, after dK/dV's GEMMs: each consumer stores its dSᵀ (its 64 keys × 64 queries, bf16, the
// operand dK used) transposed into the shared dS block of the tile ([64 queries][128 keys], K-major A operand);
// both consumers meet at a named barrier; consumer c computes dQ_i[:, 64c .. 64c+63] = dS·K[:, 64c ..] (wgmma m64n64,
// K MN-major from the resident block) and hands the fp32 tile to the dQ writer through a double-buffered shared
// block (fragment order). The dQ writer (producer warpgroup, warp 2, one thread) waits for the tile's semaphore to
// equal this CTA's key block index (kOrdered; without it the adds race: timing only), stores (key block 0) or
// reduce-adds (cp.reduce.async.bulk .add.f32) the 32 KiB into dqAcc, waits for completion, then increments the
// semaphore. Loads: producer warps 0–1. Keys past Lk: K = V = 0, their dSᵀ rows are zeroed (no contribution).
// kPipe: S_{i+1} is issued right after dQ_i (before waiting for dK_i, dQ_i), and dP_i at the top of tile i, so the
// tensor cores hold queued work of this warpgroup during each of its elementwise phases.
// kDkSmem: dK += dSᵀ·Q takes dSᵀ from the shared dS block (transposed A operand, after the barrier) instead of
// registers, so the bf16 dSᵀ fragments die at the stmatrix (24 registers fewer across the pipelined section).
template <int kStages, bool kOrdered, bool kPipe = true, bool kDkSmem = true>
__device__ __forceinline__ void backward_fused(__nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv,
                                               float* __restrict__ dqAcc, int* __restrict__ sem,
                                               const __nv_bfloat16* __restrict__ dOut,
                                               const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                                               const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse,
                                               const float* __restrict__ delta, int N, int Lq, int Lk, int bh0) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  const uint32_t base = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t sK = base, sV = sK + kQBytes;                 // 2 blocks of 64 keys each
  const uint32_t sQ = sV + kQBytes;                            // kStages × 16 KiB
  const uint32_t sDO = sQ + kStages * kBlock64Bytes;           // kStages × 16 KiB
  const uint32_t sDS = sDO + kStages * kBlock64Bytes;          // 2 × 16 KiB: dS [64 queries][128 keys] bf16
  const uint32_t sDQ = sDS + 2 * kBlock64Bytes;                // 2 × 32 KiB: dQ tile fp32, fragment order
  const uint32_t sLse = sDQ + 2 * kDqTileFloats * 4;           // kStages × 64 F32
  const uint32_t sDelta = sLse + kStages * 256;                // kStages × 64 F32
  const uint32_t bars = sDelta + kStages * 256;                // full[s], empty[s], dqFull[2], dqEmpty[2]
  const uint32_t dqFull = bars + 16 * kStages, dqEmpty = dqFull + 16;
  const int bh = bh0 + blockIdx.y, b = bh / N, h = bh % N, k0 = blockIdx.x * kBr;
  const size_t stride = (size_t)N * kHeadDim;
  const size_t qOffset = ((size_t)b * Lq * N + h) * kHeadDim, kOffset = ((size_t)b * Lk * N + h) * kHeadDim;
  const float* lseRow = lse + (size_t)bh * Lq;
  const float* deltaRow = delta + (size_t)bh * Lq;
  const int numTiles = (Lq + kBwdTile - 1) / kBwdTile;
  const int wg = threadIdx.x >> 7;

  if (threadIdx.x == 0) {
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      mbar_init(bars + 8 * s, 64);
      mbar_init(bars + 8 * (kStages + s), 2 * 128);
    }
    mbar_init(dqFull, 2 * 128);
    mbar_init(dqFull + 8, 2 * 128);
    mbar_init(dqEmpty, 1);
    mbar_init(dqEmpty + 8, 1);
  }
  __syncthreads();

  if (wg == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");   // 24 + 2 × 240
    const int tid = threadIdx.x;
    if (tid < 64) {  // loads
      for (int i = 0; i <= numTiles; ++i) {
        if (i >= 1) {
          cp_async_wait_all();
          fence_proxy_async();
          mbar_arrive(bars + 8 * ((i - 1) % kStages));
        }
        if (i == numTiles) break;
        const int s = i % kStages;
        if (i >= kStages) mbar_wait(bars + 8 * (kStages + s), ((i / kStages) + 1) & 1);
        if (i == 0) {
          load_block64<64>(sK, k + kOffset, k0, Lk, stride, tid);
          load_block64<64>(sK + kBlock64Bytes, k + kOffset, k0 + 64, Lk, stride, tid);
          load_block64<64>(sV, v + kOffset, k0, Lk, stride, tid);
          load_block64<64>(sV + kBlock64Bytes, v + kOffset, k0 + 64, Lk, stride, tid);
        }
        load_block64<64>(sQ + s * kBlock64Bytes, q + qOffset, i * kBwdTile, Lq, stride, tid);
        load_block64<64>(sDO + s * kBlock64Bytes, dOut + qOffset, i * kBwdTile, Lq, stride, tid);
        {
          const int row = i * kBwdTile + tid;
          const bool valid = row < Lq;
          cp_async4(sLse + s * 256 + tid * 4, lseRow + (valid ? row : 0), valid);
          cp_async4(sDelta + s * 256 + tid * 4, deltaRow + (valid ? row : 0), valid);
        }
        cp_async_commit();
      }
    } else if (tid == 64) {  // dQ writer
      const int n = blockIdx.x;
      int* semRow = sem + (size_t)blockIdx.y * numTiles;
      float* accRow = dqAcc + (size_t)blockIdx.y * numTiles * kDqTileFloats;
      for (int i = 0; i < numTiles; ++i) {
        const int buf = i & 1;
        mbar_wait(dqFull + 8 * buf, (i >> 1) & 1);
        if (kOrdered && n > 0) {
#ifdef WANLORA_DEV_SPIN_LIMIT  // dev harness: a wrong ordering assumption traps instead of hanging the device
          for (long long spins = 0; ld_acquire(semRow + i) != n; ++spins) {
            if (spins > WANLORA_DEV_SPIN_LIMIT) __trap();
          }
#else
          while (ld_acquire(semRow + i) != n) {
          }
#endif
          asm volatile("fence.proxy.async.global;\n" ::: "memory");
        }
        const uint32_t src = sDQ + buf * kDqTileFloats * 4;
        float* dst = accRow + (size_t)i * kDqTileFloats;
        if (n == 0) {
          asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(dst), "r"(src),
                       "n"(kDqTileFloats * 4)
                       : "memory");
        } else {
          asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst),
                       "r"(src), "n"(kDqTileFloats * 4)
                       : "memory");
        }
        asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
        asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
        mbar_arrive(dqEmpty + 8 * buf);                        // shared buffer read: the consumers may refill it
        asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
        if (kOrdered) {                                        // the add is complete: release the next key block
          asm volatile("fence.proxy.async.global;\n" ::: "memory");
          __threadfence();
          atomicAdd(semRow + i, 1);
        }
      }
    }
  } else {  // consumers
    asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
    const int c = wg - 1, tid = threadIdx.x & 127, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const uint32_t kBlock = sK + c * kBlock64Bytes, vBlock = sV + c * kBlock64Bytes;
    const int key0 = k0 + c * 64 + warp * 16 + g;              // this thread's keys: key0, key0 + 8
    const bool raggedKeys = k0 + kBr > Lk;
    // stmatrix addresses: lane 8j + r stores row r of matrix j (query 16kk + 8(j>>1) + r, keys 8(j&1) .. +7 of the
    // warp's 16) into the dS block: chunk c·8 + warp·2 + (j&1) of query row q, swizzled.
    const int mj = lane >> 3, mr = lane & 7;
    float dkAcc[64], dvAcc[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) dkAcc[i] = dvAcc[i] = 0.f;
    float st[32];                                              // Sᵀ, then Pᵀ: keys g, g+8; 8 query-tiles of 8
    if (kPipe) {
      mbar_wait(bars, 0);
      wgmma_fence();
      issue_ss64(st, kBlock, sQ);                              // S_0ᵀ
    }
    for (int i = 0; i < numTiles; ++i) {
      const int s = i % kStages, buf = i & 1;
      if (!kPipe) mbar_wait(bars + 8 * s, (i / kStages) & 1);
      const uint32_t qT = sQ + s * kBlock64Bytes, doT = sDO + s * kBlock64Bytes, dsT = sDS + buf * kBlock64Bytes;
      const float* lseT = reinterpret_cast<const float*>(smem_raw + (sLse + s * 256 - smem_addr(smem_raw)));
      const float* deltaT = reinterpret_cast<const float*>(smem_raw + (sDelta + s * 256 - smem_addr(smem_raw)));
      float dpt[32];
      wgmma_fence();
      if (!kPipe) issue_ss64(st, kBlock, qT);
      issue_ss64(dpt, vBlock, doT);
      wgmma_wait<1>();                                         // Sᵀ ready; dPᵀ may run
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        const float2 l2 = *reinterpret_cast<const float2*>(lseT + n * 8 + 2 * t);
        st[4 * n] = ex2(fmaf(st[4 * n], kScaleLog2, -l2.x * kLog2e));
        st[4 * n + 1] = ex2(fmaf(st[4 * n + 1], kScaleLog2, -l2.y * kLog2e));
        st[4 * n + 2] = ex2(fmaf(st[4 * n + 2], kScaleLog2, -l2.x * kLog2e));
        st[4 * n + 3] = ex2(fmaf(st[4 * n + 3], kScaleLog2, -l2.y * kLog2e));
      }
      uint32_t pa[4][4];
      to_bf16_a64(pa, st);
      wgmma_fence();
      issue_rs64(dvAcc, pa, doT);                              // dV += Pᵀ·dO
      wgmma_wait<1>();
      const bool dead0 = raggedKeys && key0 >= Lk, dead1 = raggedKeys && key0 + 8 >= Lk;
#pragma unroll
      for (int n = 0; n < 8; ++n) {                            // dSᵀ = Pᵀ∘(dPᵀ − delta); keys ≥ Lk: 0
        const float2 d2 = *reinterpret_cast<const float2*>(deltaT + n * 8 + 2 * t);
        dpt[4 * n] = dead0 ? 0.f : st[4 * n] * (dpt[4 * n] - d2.x);
        dpt[4 * n + 1] = dead0 ? 0.f : st[4 * n + 1] * (dpt[4 * n + 1] - d2.y);
        dpt[4 * n + 2] = dead1 ? 0.f : st[4 * n + 2] * (dpt[4 * n + 2] - d2.x);
        dpt[4 * n + 3] = dead1 ? 0.f : st[4 * n + 3] * (dpt[4 * n + 3] - d2.y);
      }
      uint32_t da[4][4];
      to_bf16_a64(da, dpt);
      if (!kDkSmem) {
        wgmma_fence();
        issue_rs64(dkAcc, da, qT);                             // dK += dSᵀ·Q
      }
      // dS of the tile into the shared dS block (buffer i&1: the other consumer may still read buffer (i−1)&1).
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const int qrow = 16 * kk + 8 * (mj >> 1) + mr;
        stmatrix_x4_trans(dsT + swz(64, qrow, c * 8 + warp * 2 + (mj & 1)), da[kk][0], da[kk][1], da[kk][2],
                          da[kk][3]);
      }
      fence_proxy_async();
      named_barrier_sync(1, 256);                              // both halves of dS written
      float dq[32];                                            // dQ_i rows g, g+8 of the warp; d 64c + 8n + 2t
      wgmma_fence();
      if (kDkSmem) {                                           // dK += dSᵀ·Q: dSᵀ = the consumer's key half of dS
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          wgmma_ss_m64n128_tab(dkAcc, desc_sw128(dsT + c * (kBlock64Bytes / 2) + kk * 2048, kBlock64Bytes / 2, 1024),
                               desc_mn64(qT, kk));
        }
        wgmma_commit();
      }
      wgmma_ss_m64n64_tb<0>(dq, desc_k64(dsT, 0), desc_mn64(sK + c * (kBlock64Bytes / 2), 0));
#pragma unroll
      for (int kk = 1; kk < 8; ++kk) {
        wgmma_ss_m64n64_tb<1>(dq, desc_k64(dsT, kk),
                              desc_mn64(sK + (kk >> 2) * kBlock64Bytes + c * (kBlock64Bytes / 2), kk & 3));
      }
      wgmma_commit();
      if (kPipe) {  // S_{i+1}ᵀ joins the queue behind dK_i, dQ_i (after the last tile a discarded Sᵀ of stage s,
                    // issued unconditionally so that the compiler sees one wgmma pipeline: no serialisation)
        const bool more = i + 1 < numTiles;
        const int s1 = more ? (i + 1) % kStages : s;
        if (more) mbar_wait(bars + 8 * s1, ((i + 1) / kStages) & 1);
        wgmma_fence();
        issue_ss64(st, kBlock, sQ + s1 * kBlock64Bytes);
        wgmma_wait<1>();
      } else {
        wgmma_wait<0>();
      }
      mbar_arrive(bars + 8 * (kStages + s));                   // Q, dO of stage s read
      if (i >= 2) mbar_wait(dqEmpty + 8 * buf, ((i >> 1) + 1) & 1);
      float* dqT = reinterpret_cast<float*>(smem_raw + (sDQ + buf * kDqTileFloats * 4 - smem_addr(smem_raw)));
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        *reinterpret_cast<float4*>(dqT + dq_frag_pos(c, warp, n, lane)) =
            make_float4(dq[4 * n], dq[4 * n + 1], dq[4 * n + 2], dq[4 * n + 3]);
      }
      fence_proxy_async();
      mbar_arrive(dqFull + 8 * buf);
      // S_{i+1}ᵀ retires inside the iteration: with a wgmma in flight across the loop edge ptxas serialises them all.
      if (kPipe) wgmma_wait<0>();
    }
    wgmma_wait<0>();                                           // nothing pending (explicit for ptxas: Lq ≥ 1)
    const int row0 = k0 + c * 64 + warp * 16;
    store_acc(dk + kOffset, stride, row0, Lk, dkAcc, kScale, g, t);
    store_acc(dv + kOffset, stride, row0, Lk, dvAcc, 1.f, g, t);
  }
}

}  // namespace wanlora_attention_sm90

extern "C" __global__ void __launch_bounds__(wanlora_attention_sm90::kThreads, 1)
    attention_fwd_sm90_bf16(__nv_bfloat16* __restrict__ out, float* __restrict__ lse,
                            const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                            const __nv_bfloat16* __restrict__ v, int N, int Lq, int Lk) {
  wanlora_attention_sm90::forward<2, false>(out, lse, q, k, v, N, Lq, Lk);
}

// Backward kernels (preprocess: attention_bwd_preprocess_bf16 of the portable family computes delta first).
extern "C" __global__ void __launch_bounds__(wanlora_attention_sm90::kThreads, 1)
    attention_bwd_dq_sm90_bf16(__nv_bfloat16* __restrict__ dq, const __nv_bfloat16* __restrict__ dOut,
                               const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                               const __nv_bfloat16* __restrict__ v, const float* __restrict__ lse,
                               const float* __restrict__ delta, int N, int Lq, int Lk) {
  wanlora_attention_sm90::backward_dq<2>(dq, dOut, q, k, v, lse, delta, N, Lq, Lk);
}

extern "C" __global__ void __launch_bounds__(wanlora_attention_sm90::kThreads, 1)
    attention_bwd_dkdv_sm90_bf16(__nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv,
                                 const __nv_bfloat16* __restrict__ dOut, const __nv_bfloat16* __restrict__ q,
                                 const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
                                 const float* __restrict__ lse, const float* __restrict__ delta, int N, int Lq,
                                 int Lk) {
  wanlora_attention_sm90::backward_dkdv<2>(dk, dv, dOut, q, k, v, lse, delta, N, Lq, Lk);
}

// Fused backward (dK, dV and the dQ contributions in one pass; dQ summed in a fixed order): see backward_fused. The
// semaphores [B·N][ceil(Lq/64)] must be zero; then attention_bwd_dq_convert_sm90_bf16.
extern "C" __global__ void __launch_bounds__(wanlora_attention_sm90::kThreads, 1)
    attention_bwd_fused_sm90_bf16(__nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv,
                                  float* __restrict__ dqAcc, int* __restrict__ sem,
                                  const __nv_bfloat16* __restrict__ dOut, const __nv_bfloat16* __restrict__ q,
                                  const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
                                  const float* __restrict__ lse, const float* __restrict__ delta, int N, int Lq,
                                  int Lk, int bh0) {
  wanlora_attention_sm90::backward_fused<2, true>(dk, dv, dqAcc, sem, dOut, q, k, v, lse, delta, N, Lq, Lk, bh0);
}

// dq = bf16(dqAcc / √128) for the `count` (batch, head) pairs bh0 .. bh0 + count − 1 of one fused launch: one thread
// per float4 of dqAcc (count·ceil(Lq/64)·2048 of them, grid-stride), which holds rows r, r+8 × columns d, d+1 of one
// query tile (fragment order of backward_fused); rows ≥ Lq skipped.
extern "C" __global__ void __launch_bounds__(256)
    attention_bwd_dq_convert_sm90_bf16(__nv_bfloat16* __restrict__ dq, const float* __restrict__ dqAcc, int N, int Lq,
                                       int bh0, int count) {
  using namespace wanlora_attention_sm90;
  const int numTiles = (Lq + kBwdTile - 1) / kBwdTile;
  const long long total = (long long)count * numTiles * (kDqTileFloats / 4);
  for (long long id = blockIdx.x * (long long)blockDim.x + threadIdx.x; id < total;
       id += (long long)gridDim.x * blockDim.x) {
    const int p = (int)(id % (kDqTileFloats / 4));
    const long long tile = id / (kDqTileFloats / 4);
    const int i = (int)(tile % numTiles), bh = bh0 + (int)(tile / numTiles), b = bh / N, h = bh % N;
    const int lane = p & 31, n = (p >> 5) & 7, cw = p >> 8, c = cw >> 2, warp = cw & 3;
    const int row = i * kBwdTile + warp * 16 + (lane >> 2), col = c * 64 + n * 8 + 2 * (lane & 3);
    const float4 a = reinterpret_cast<const float4*>(dqAcc)[id];
    const size_t stride = (size_t)N * kHeadDim;
    __nv_bfloat16* base = dq + ((size_t)b * Lq * N + h) * kHeadDim + col;
    if (row < Lq) *reinterpret_cast<uint32_t*>(base + (size_t)row * stride) = pack_bf16(a.x * kScale, a.y * kScale);
    if (row + 8 < Lq)
      *reinterpret_cast<uint32_t*>(base + (size_t)(row + 8) * stride) = pack_bf16(a.z * kScale, a.w * kScale);
  }
}
