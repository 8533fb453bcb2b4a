// Prodigy (prodigyopt.Prodigy), mirroring the CPU reference (CpuProdigy) pass for pass; one step is
//   prodigy_accumulate_fwd_f32 over each parameter, then prodigy_accumulate_reduce_f32 (its sums into the state),
//   prodigy_adapt_f32 once, then prodigy_update_f32 over each parameter.
// State (8) f32: {d, d_max, d_numerator, k, numerator sum, denominator sum, dlr, skip} (Backend.prodigyAccumulate).
//   prodigy_accumulate_fwd_f32: g = f32(grad·gradScale) (+ wd·p when coupled); p0 = p when k = 0;
//     m = β1·m + d(1−β1)·g; v = β2·v + d²(1−β2)·g²; s = β3·s + sCoef·g; partial[b] = Σ g·(p0 − p),
//     partial[blocks + b] = Σ |s| over the elements block b's threads visit.
//   prodigy_accumulate_reduce_f32: one block of 1024 threads adds the partials in index order (float64) and adds
//     (d/d0)·dlr·Σnum to state[4] and Σden to state[5], each rounded once to f32.
//   prodigy_adapt_f32: one thread: the d update of CpuProdigy.adapt.
//   prodigy_update_f32: p −= wd·dlr·p (decoupled), p −= dlr·m/(sqrt(v) + d·eps) (β1 = 0: dlr·d·g/(…)); nothing when skip.
// Thread mapping: the partial kernel runs a FIXED grid (the launcher uses 1024 blocks × 256 threads), element i visited
// by thread i mod 262144 in increasing order, per-thread sums float64, block tree float64, so the sums depend only on
// n. The elementwise float64 arithmetic is written with correctly rounded intrinsics (no FMA contraction) as the
// CPU's; only the order of the two sums differs from the CPU's chunked sums. Deterministic, no atomics.
#include "wanlora.cuh"

#define PRODIGY_D 0
#define PRODIGY_D_MAX 1
#define PRODIGY_D_NUMERATOR 2
#define PRODIGY_K 3
#define PRODIGY_NUMERATOR_SUM 4
#define PRODIGY_DENOMINATOR_SUM 5
#define PRODIGY_DLR 6
#define PRODIGY_SKIP 7

__device__ __forceinline__ double prodigy_bias_correction(int use, double b1, double b2, double k) {
  if (!use) return 1.0;
  return __ddiv_rn(__dsqrt_rn(__dadd_rn(1.0, -pow(b2, k + 1.0))), __dadd_rn(1.0, -pow(b1, k + 1.0)));
}

__device__ __forceinline__ double prodigy_dlr(const float* state, double lr, int useBc, double b1, double b2) {
  double d = state[PRODIGY_D];
  return __dmul_rn(__dmul_rn(d, lr), prodigy_bias_correction(useBc, b1, b2, state[PRODIGY_K]));
}

extern "C" __global__ void prodigy_accumulate_fwd_f32(const float* p, const float* grad, float* p0, float* m, float* v,
                                                      float* s, const float* gradScale, const float* state,
                                                      double* partial, double lr, double b1, double b2, double b3,
                                                      double wd, int coupled, int safeguard, int useBc, double d0,
                                                      long long n) {
  __shared__ double scratch[32];
  double clip = gradScale[0];
  double d = state[PRODIGY_D];
  int isFirstStep = state[PRODIGY_K] == 0.f;
  double dlr = prodigy_dlr(state, lr, useBc, b1, b2);
  double sCoef = __dmul_rn(__ddiv_rn(d, d0), safeguard ? d : dlr);
  double mCoef = __dmul_rn(d, __dadd_rn(1.0, -b1));
  double vCoef = __dmul_rn(__dmul_rn(d, d), __dadd_rn(1.0, -b2));
  double num = 0.0, den = 0.0;
  for (long long i = global_thread(); i < n; i += global_threads()) {
    double pi = p[i];
    double g = (float)__dmul_rn(grad[i], clip);
    if (coupled) g = (float)__dadd_rn(g, __dmul_rn(wd, pi));
    if (isFirstStep) p0[i] = (float)pi;
    num = __dadd_rn(num, __dmul_rn(g, __dadd_rn(p0[i], -pi)));
    m[i] = (float)__dadd_rn(__dmul_rn(b1, m[i]), __dmul_rn(mCoef, g));
    v[i] = (float)__dadd_rn(__dmul_rn(b2, v[i]), __dmul_rn(__dmul_rn(vCoef, g), g));
    float si = (float)__dadd_rn(__dmul_rn(b3, s[i]), __dmul_rn(sCoef, g));
    s[i] = si;
    den = __dadd_rn(den, fabs((double)si));
  }
  num = block_sum(num, scratch);
  den = block_sum(den, scratch);
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = num;
    partial[gridDim.x + blockIdx.x] = den;
  }
}

extern "C" __global__ void prodigy_accumulate_reduce_f32(float* state, const double* partial, int count, double lr,
                                                         int useBc, double b1, double b2, double d0) {
  __shared__ double scratch[32];
  double num = 0.0, den = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    num += partial[i];
    den += partial[count + i];
  }
  num = block_sum(num, scratch);
  den = block_sum(den, scratch);
  if (threadIdx.x == 0) {
    double d = state[PRODIGY_D];
    double scaled = __dmul_rn(__dmul_rn(__ddiv_rn(d, d0), prodigy_dlr(state, lr, useBc, b1, b2)), num);
    state[PRODIGY_NUMERATOR_SUM] = (float)__dadd_rn(state[PRODIGY_NUMERATOR_SUM], scaled);
    state[PRODIGY_DENOMINATOR_SUM] = (float)__dadd_rn(state[PRODIGY_DENOMINATOR_SUM], den);
  }
}

extern "C" __global__ void prodigy_adapt_f32(float* state, double lr, int useBc, double b1, double b2, double b3,
                                             float d0, double dCoef, double growthRate) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double d = state[PRODIGY_D], dMax = state[PRODIGY_D_MAX], k = state[PRODIGY_K];
  state[PRODIGY_DLR] = (float)prodigy_dlr(state, lr, useBc, b1, b2);
  double denominator = state[PRODIGY_DENOMINATOR_SUM];
  double numerator = __dadd_rn(__dmul_rn(b3, state[PRODIGY_D_NUMERATOR]), state[PRODIGY_NUMERATOR_SUM]);
  state[PRODIGY_NUMERATOR_SUM] = 0.f;
  state[PRODIGY_DENOMINATOR_SUM] = 0.f;
  if (denominator == 0.0 || lr == 0.0) {
    state[PRODIGY_SKIP] = 1.f;
    return;
  }
  double dHat = __ddiv_rn(__dmul_rn(dCoef, numerator), denominator);
  if (d == (double)d0) d = fmax(d, dHat);
  dMax = fmax(dMax, dHat);
  d = fmin(dMax, __dmul_rn(d, growthRate));
  state[PRODIGY_D] = (float)d;
  state[PRODIGY_D_MAX] = (float)dMax;
  state[PRODIGY_D_NUMERATOR] = (float)numerator;
  state[PRODIGY_K] = (float)__dadd_rn(k, 1.0);
  state[PRODIGY_SKIP] = 0.f;
}

extern "C" __global__ void prodigy_update_f32(float* p, const float* grad, const float* m, const float* v,
                                              const float* gradScale, const float* state, double eps, double wd,
                                              int decoupled, int coupled, int hasFirstMoment, long long n) {
  if (state[PRODIGY_SKIP] != 0.f) return;
  double d = state[PRODIGY_D], dlr = state[PRODIGY_DLR], clip = gradScale[0];
  double dEps = __dmul_rn(d, eps);
  for (long long i = global_thread(); i < n; i += global_threads()) {
    double denom = __dadd_rn(__dsqrt_rn((double)v[i]), dEps);
    double pi = p[i];
    if (decoupled) pi = (float)__dadd_rn(pi, -__dmul_rn(__dmul_rn(wd, dlr), pi));
    if (hasFirstMoment) {
      pi = (float)__dadd_rn(pi, -__ddiv_rn(__dmul_rn(dlr, m[i]), denom));
    } else {
      double g = (float)__dmul_rn(grad[i], clip);
      if (coupled) g = (float)__dadd_rn(g, __dmul_rn(wd, pi));
      pi = (float)__dadd_rn(pi, -__ddiv_rn(__dmul_rn(__dmul_rn(dlr, d), g), denom));
    }
    p[i] = (float)pi;
  }
}
