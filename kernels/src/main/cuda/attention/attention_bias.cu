// attention_bias_fwd_<t>: T5 attention (Backend#attentionWithBias). For batch b, head h, query i:
//   s_j = q_i·k_j + bias[h, i, j] for keyMask[b, j] != 0 (no 1/√D scaling), out_i = Σ_j softmax(s)_j · v_j.
// q, out (B, Lq, N·D); k, v (B, Lk, N·D), all of type t (f32 or bf16); bias (N, Lq, Lk) f32 or bf16 (biasType, see
// ParamType); keyMask (B, Lk) f32.
// Thread mapping: one warp per (b, h, i) query row, grid-stride over rows; 4 warps per block. Each warp keeps the
// query row (D floats) and the row's Lk scores in shared memory (dynamic: 4·(Lk + D) floats per warp). Scores: lane
// l computes keys j ≡ l (mod 32), a full D-long dot product each; output: lane l accumulates dims e ≡ l (mod 32),
// reading v rows coalesced. Requirements: 1 ≤ D ≤ 128 (lanes beyond D idle in the output loop).
// Numerics: fp32 dot products, max-subtracted fp32 softmax, fp32 accumulation; out rounded once. Masked keys get
// weight exactly 0; a row with no unmasked key gets zeros. Deterministic (fixed summation order per lane, then a
// fixed shuffle tree).
// This is the simple correct kernel: every warp re-reads its head's K and V (from L2). A tiled version is future work.
#include "wanlora.cuh"

__device__ __forceinline__ float warp_max_f(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

template <typename T>
__device__ void attention_bias(T* out, const T* q, const T* k, const T* v, const void* bias, int biasType,
                               const float* keyMask, int B, int Lq, int Lk, int N, int D) {
  extern __shared__ float smem[];
  const int warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* qs = smem + (long long)warp * (Lk + D);  // (D) the query row
  float* p = qs + D;                               // (Lk) scores, then probabilities
  const long long rows = (long long)B * N * Lq, width = (long long)N * D;
  for (long long row = (long long)blockIdx.x * warps + warp; row < rows; row += (long long)gridDim.x * warps) {
    const int b = (int)(row / ((long long)N * Lq)), h = (int)((row / Lq) % N), i = (int)(row % Lq);
    const T* qr = q + ((long long)b * Lq + i) * width + (long long)h * D;
    for (int e = lane; e < D; e += 32) qs[e] = to_float(qr[e]);
    __syncwarp();
    float mx = -INFINITY;
    for (int j = lane; j < Lk; j += 32) {
      float s = -INFINITY;
      if (keyMask[(long long)b * Lk + j] != 0.f) {
        const T* kr = k + ((long long)b * Lk + j) * width + (long long)h * D;
        float acc = 0.f;
        for (int e = 0; e < D; e++) acc += qs[e] * to_float(kr[e]);
        s = acc + load_param(bias, biasType, ((long long)h * Lq + i) * Lk + j);
      }
      p[j] = s;
      mx = fmaxf(mx, s);
    }
    mx = warp_max_f(mx);
    float sum = 0.f;
    for (int j = lane; j < Lk; j += 32) {
      float e = p[j] == -INFINITY ? 0.f : expf(p[j] - mx);
      p[j] = e;
      sum += e;
    }
    sum = warp_sum(sum);
    __syncwarp();
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    T* orow = out + ((long long)b * Lq + i) * width + (long long)h * D;
    for (int e = lane; e < D; e += 32) {
      float acc = 0.f;
      for (int j = 0; j < Lk; j++) {
        const float pj = p[j];
        if (pj != 0.f) acc += pj * to_float(v[((long long)b * Lk + j) * width + (long long)h * D + e]);
      }
      orow[e] = from_float<T>(acc * inv);
    }
    __syncwarp();
  }
}

extern "C" __global__ void attention_bias_fwd_f32(float* out, const float* q, const float* k, const float* v,
                                                  const void* bias, int biasType, const float* keyMask, int B, int Lq,
                                                  int Lk, int N, int D) {
  attention_bias<float>(out, q, k, v, bias, biasType, keyMask, B, Lq, Lk, N, D);
}

extern "C" __global__ void attention_bias_fwd_bf16(bf16* out, const bf16* q, const bf16* k, const bf16* v,
                                                   const void* bias, int biasType, const float* keyMask, int B, int Lq,
                                                   int Lk, int N, int D) {
  attention_bias<bf16>(out, q, k, v, bias, biasType, keyMask, B, Lq, Lk, N, D);
}
