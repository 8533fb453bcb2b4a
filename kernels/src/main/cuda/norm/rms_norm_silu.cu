// RMSNorm then SiLU in one pass (Backend.rmsNormSilu), the Wan VAE's RMS_norm → SiLU pair (every residual block and
// the heads): the unfused chain rms_norm_fwd_bf16 + silu_fwd_bf16 computed without the bf16 round trip through memory.
//   rms_norm_silu_fwd_bf16(out, rstd, x, w, pType, R, C, L, eps): rs = 1/sqrt(mean(x²) + eps); rstd[r] = rs;
//     n = round(round(x·rs)·round(w)) (rms_norm_fwd's two roundings); out = round(n / (1 + expf(−n))) (silu_fwd's).
//     x, out bf16 (R, C); w f32 or bf16 (pType, see ParamType) (C); rstd f32 (R). out may be x.
// Thread mapping: L lanes of a warp per row (L = the power of two ≥ C/8, at most 32; an argument), so one warp holds
//   32/L rows: the VAE's C = 96 uses 16 lanes, 192 and 384 the whole warp. Lane l owns the 8-column groups
//   l, l + L, … (at most 4), loaded once with 16-byte accesses and kept in registers; the sum of squares is reduced by
//   shuffles within the L lanes. 256 threads a block, grid-stride over rows.
// Requirements (checked by the launcher, which otherwise runs the unfused chain): C % 8 == 0, C ≤ 1024, x, out and
//   w 16-byte aligned. Numerics: fp32 (sum of squares in a fixed shuffle tree), roundings as the unfused chain, so the
//   output equals it except where rs differs in its last bit (summation order). Deterministic.
#include "row.cuh"

#define RMS_SILU_MAX_GROUPS 4  // 8-column groups per lane: C <= 32 · 4 · 8

extern "C" __global__ void __launch_bounds__(256) rms_norm_silu_fwd_bf16(bf16* out, float* rstd, const bf16* x,
                                                                         const void* w, int pType, long long R, int C,
                                                                         int L, float eps) {
  constexpr int MAX_GROUPS = RMS_SILU_MAX_GROUPS;
  const int ROWS_PER_WARP = 32 / L;
  const int lane = threadIdx.x % 32, sub = lane % L;
  const long long warps = (long long)gridDim.x * (blockDim.x / 32);
  const long long warp = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  const int groups = C / 8;
  for (long long r0 = warp * ROWS_PER_WARP; r0 < R; r0 += warps * ROWS_PER_WARP) {
    long long r = r0 + lane / L;
    bool rowValid = r < R;  // every lane stays for the shuffles
    float v[MAX_GROUPS][8];
    float sq = 0.f;
#pragma unroll
    for (int j = 0; j < MAX_GROUPS; j++) {
      int g = sub + j * L;
      if (rowValid && g < groups) {
        load8(x + r * C + g * 8, v[j]);
#pragma unroll
        for (int k = 0; k < 8; k++) sq += v[j][k] * v[j][k];
      }
    }
    for (int off = L / 2; off > 0; off /= 2) sq += __shfl_xor_sync(0xffffffffu, sq, off);
    if (!rowValid) continue;
    float rs = 1.f / sqrtf(sq / C + eps);
#pragma unroll
    for (int j = 0; j < MAX_GROUPS; j++) {
      int g = sub + j * L;
      if (g < groups) {
        float wv[8], o[8];
        load_param_vec<8>(w, pType, g * 8, wv);
#pragma unroll
        for (int k = 0; k < 8; k++) {
          float n = round_to<bf16>(round_to<bf16>(v[j][k] * rs) * round_to<bf16>(wv[k]));
          o[k] = n / (1.f + expf(-n));
        }
        store8(out + r * C + g * 8, o);
      }
    }
    if (sub == 0) rstd[r] = rs;
  }
}
