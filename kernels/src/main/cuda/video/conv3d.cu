// Convolution over channels-last frames (Backend.conv3d): the Wan VAE's CausalConv3d / Conv2d with its frame cache.
//   conv3d_fwd_<t>(out, cache, x, w, bias, biasType, ...): in = concat(cache, x) along frames (cache may be null,
//   Tc = 0); out[t,h,w,o] = bias[o] + Σ w[o,dt,dh,dw,i]·in[t·st+dt, h·ss+dh−pb, w·ss+dw−pb, i], zero outside the
//   image. x, cache, w, out share t (f32 or bf16); bias is f32 or bf16 (biasType, see ParamType) or null.
// Thread mapping: an implicit GEMM out(M = To·Ho·Wo, N = Cout) = A(M, K)·Wᵀ(K, N), K = KT·KH·KW·Cin in the weight's
//   order (tap-major, Cin fastest), A gathered on the fly (im2col, never stored). One CTA of 256 threads owns a 64×64
//   output tile and walks K in steps of 16 through shared memory (fp32); each thread accumulates a 4×4 sub-tile.
//   Loads put 16 consecutive threads on 16 consecutive k (= channels of one input pixel), so they coalesce.
// Requirements: none on sizes or alignment (every access is bounds-checked); M·Cout and frame sizes < 2⁶³.
// Numerics: products and sums in fp32 (FMA), bias added last, one rounding on store. Deterministic: fixed K order.
// This is the simple correct kernel (CUDA cores, no tensor cores); KernelBench times it against its FLOPs.
#include "wanlora.cuh"

#define CONV_BM 64
#define CONV_BN 64
#define CONV_BK 16

template <typename T>
__device__ void conv3d_fwd(T* out, const T* cache, const T* x, const T* w, const void* bias, int biasType, int Tc,
                           int H, int W, int Cin, int KT, int KH, int KW, int To, int Ho, int Wo, int Cout, int st,
                           int ss, int pb) {
  __shared__ float As[CONV_BK][CONV_BM + 4];
  __shared__ float Bs[CONV_BK][CONV_BN + 4];
  const long long M = (long long)To * Ho * Wo;
  const int K = KT * KH * KW * Cin;
  const long long frame = (long long)H * W * Cin;
  const long long m0 = (long long)blockIdx.x * CONV_BM;
  const int n0 = blockIdx.y * CONV_BN;
  const int tid = threadIdx.x, lk = tid % CONV_BK, lr = tid / CONV_BK;  // load mapping: k fastest
  // The 4 output positions this thread gathers for A (rows lr + 16j of the tile), decoded once.
  int pt[4], ph[4], pw[4];
  bool pValid[4];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    long long m = m0 + lr + 16 * j;
    pValid[j] = m < M;
    long long mm = pValid[j] ? m : 0;
    pw[j] = (int)(mm % Wo);
    long long r = mm / Wo;
    ph[j] = (int)(r % Ho);
    pt[j] = (int)(r / Ho);
  }
  const int tx = tid % 16, ty = tid / 16;  // compute mapping: rows ty·4.., cols tx·4..
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) acc[i][j] = 0.f;

  for (int k0 = 0; k0 < K; k0 += CONV_BK) {
    const int k = k0 + lk;
    const bool kValid = k < K;
    int tap = kValid ? k / Cin : 0, ci = k - tap * Cin;
    int dw = tap % KW, dh = (tap / KW) % KH, dt = tap / (KW * KH);
#pragma unroll
    for (int j = 0; j < 4; j++) {
      float a = 0.f;
      if (kValid && pValid[j]) {
        int ti = pt[j] * st + dt, ih = ph[j] * ss + dh - pb, iw = pw[j] * ss + dw - pb;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
          const T* src = ti < Tc ? cache + (long long)ti * frame : x + (long long)(ti - Tc) * frame;
          a = to_float(src[((long long)ih * W + iw) * Cin + ci]);
        }
      }
      As[lk][lr + 16 * j] = a;
      int n = n0 + lr + 16 * j;
      Bs[lk][lr + 16 * j] = kValid && n < Cout ? to_float(w[(long long)n * K + k]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < CONV_BK; kk++) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; i++) av[i] = As[kk][ty * 4 + i], bv[i] = Bs[kk][tx * 4 + i];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    long long m = m0 + ty * 4 + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      int n = n0 + tx * 4 + j;
      if (n < Cout) out[m * Cout + n] = from_float<T>(acc[i][j] + (bias ? load_param(bias, biasType, n) : 0.f));
    }
  }
}

#define CONV3D(T, S)                                                                                               \
  extern "C" __global__ void __launch_bounds__(256)                                                                \
      conv3d_fwd_##S(T* out, const T* cache, const T* x, const T* w, const void* bias, int biasType, int Tc, int H, \
                     int W, int Cin, int KT, int KH, int KW, int To, int Ho, int Wo, int Cout, int st, int ss,      \
                     int pb) {                                                                                     \
    conv3d_fwd<T>(out, cache, x, w, bias, biasType, Tc, H, W, Cin, KT, KH, KW, To, Ho, Wo, Cout, st, ss, pb);      \
  }

CONV3D(f32, f32)
CONV3D(bf16, bf16)
