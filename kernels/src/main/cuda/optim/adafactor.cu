// Adafactor (transformers.optimization.Adafactor) on one parameter, mirroring the CPU reference (CpuAdafactor). One
// step is, in order (scratch: float64 partials and scalars, see CudaOptim.adafactor):
//   adafactor_square_sum_f32: partial[b] = Σ p² over the elements block b's threads visit (for RMS(p)).
//   adafactor_lines_f32 (2-D only, twice): one block per line; sums[line] = Σ (g² + eps1) over the line's elements
//     (rows: stride 1 within a row; columns: stride C), g = f32(grad·gradScale).
//   adafactor_factors_f32: one block of 1024 threads: RMS(p) from the partials, lr = (scale ? max(eps2, RMS) : 1)·
//     relStep; for 2-D row_i = β2t·row_i + (1−β2t)·rowSum_i/C, col_j likewise with /R, then mean(row);
//     scalars = {lr, mean(row), –}.
//   adafactor_norm_f32: u = g/sqrt(row_i/mean(row))/sqrt(col_j) (2-D) or, after v = β2t·v + (1−β2t)(g² + eps1),
//     u = g/sqrt(v) (1-D); partial[b] = Σ u².
//   adafactor_clip_f32: one block: scalars[2] = max(1, sqrt(Σu²/n)/clipThreshold).
//   adafactor_apply_f32: u recomputed from the stored state, update = u/scalars[2]·lr; m = β1·m + (1−β1)·update and
//     update = m when m is given; p −= wd·lr·p; p −= update.
// Thread mapping: partial kernels run a FIXED grid (1024 blocks × 256 threads, element i visited by thread
// i mod 262144 in increasing order); line sums one block of 256 threads per line; per-thread and block sums float64,
// so every sum depends only on the shape. Elementwise float64 arithmetic uses correctly rounded intrinsics (no FMA
// contraction) in the CPU's order; the sums' order differs from the CPU's index order. Deterministic, no atomics.
#include "wanlora.cuh"

#define ADAFACTOR_LR 0
#define ADAFACTOR_ROW_MEAN 1
#define ADAFACTOR_DIVISOR 2

extern "C" __global__ void adafactor_square_sum_f32(double* partial, const float* x, long long n) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (long long i = global_thread(); i < n; i += global_threads()) s = __dadd_rn(s, __dmul_rn((double)x[i], (double)x[i]));
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

extern "C" __global__ void adafactor_lines_f32(double* sums, const float* grad, const float* gradScale, double eps1,
                                               long long lineStride, long long elementStride, long long length) {
  __shared__ double scratch[32];
  double clip = gradScale[0];
  const float* line = grad + blockIdx.x * lineStride;
  double s = 0.0;
  for (long long e = threadIdx.x; e < length; e += blockDim.x) {
    double g = (float)__dmul_rn(line[e * elementStride], clip);
    s = __dadd_rn(s, __dadd_rn(__dmul_rn(g, g), eps1));
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) sums[blockIdx.x] = s;
}

extern "C" __global__ void adafactor_factors_f32(float* row, float* col, double* scalars, const double* rowSums,
                                                 const double* colSums, const double* partial, int count, long long rows,
                                                 long long cols, long long n, double beta2t, int scaleParameter,
                                                 double eps2, double relStep) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s, scratch);
  double rms = __dsqrt_rn(__ddiv_rn(s, (double)n));
  double oneMinus = __dadd_rn(1.0, -beta2t);
  double rowSum = 0.0;
  if (row != nullptr) {
    for (long long r = threadIdx.x; r < rows; r += blockDim.x) {
      float ri = (float)__dadd_rn(__dmul_rn(beta2t, row[r]), __dmul_rn(oneMinus, __ddiv_rn(rowSums[r], (double)cols)));
      row[r] = ri;
      rowSum += ri;
    }
    for (long long c = threadIdx.x; c < cols; c += blockDim.x) {
      col[c] = (float)__dadd_rn(__dmul_rn(beta2t, col[c]), __dmul_rn(oneMinus, __ddiv_rn(colSums[c], (double)rows)));
    }
  }
  rowSum = block_sum(rowSum, scratch);
  if (threadIdx.x == 0) {
    double scale = scaleParameter ? fmax(eps2, rms) : 1.0;
    scalars[ADAFACTOR_LR] = __dmul_rn(scale, relStep);
    scalars[ADAFACTOR_ROW_MEAN] = __ddiv_rn(rowSum, (double)rows);
  }
}

// u before clipping and scaling; v (1-D) must already hold this step's value
__device__ __forceinline__ double adafactor_u(double g, long long i, const float* v, const float* row, const float* col,
                                              double rowMean, long long cols) {
  if (row == nullptr) return __ddiv_rn(g, __dsqrt_rn((double)v[i]));
  double r = __dsqrt_rn(__ddiv_rn((double)row[i / cols], rowMean));
  return __ddiv_rn(__ddiv_rn(g, r), __dsqrt_rn((double)col[i % cols]));
}

extern "C" __global__ void adafactor_norm_f32(double* partial, const float* grad, const float* gradScale, float* v,
                                              const float* row, const float* col, const double* scalars, long long cols,
                                              long long n, double beta2t, double eps1) {
  __shared__ double scratch[32];
  double clip = gradScale[0], rowMean = scalars[ADAFACTOR_ROW_MEAN];
  double oneMinus = __dadd_rn(1.0, -beta2t);
  double s = 0.0;
  for (long long i = global_thread(); i < n; i += global_threads()) {
    double g = (float)__dmul_rn(grad[i], clip);
    if (row == nullptr) v[i] = (float)__dadd_rn(__dmul_rn(beta2t, v[i]), __dmul_rn(oneMinus, __dadd_rn(__dmul_rn(g, g), eps1)));
    double u = adafactor_u(g, i, v, row, col, rowMean, cols);
    s = __dadd_rn(s, __dmul_rn(u, u));
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

extern "C" __global__ void adafactor_clip_f32(double* scalars, const double* partial, int count, long long n,
                                              double clipThreshold) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) scalars[ADAFACTOR_DIVISOR] = fmax(1.0, __ddiv_rn(__dsqrt_rn(__ddiv_rn(s, (double)n)), clipThreshold));
}

extern "C" __global__ void adafactor_apply_f32(float* p, const float* grad, const float* gradScale, float* m,
                                               const float* v, const float* row, const float* col,
                                               const double* scalars, long long cols, long long n, double beta1,
                                               double wd) {
  double clip = gradScale[0], lr = scalars[ADAFACTOR_LR], rowMean = scalars[ADAFACTOR_ROW_MEAN];
  double divisor = scalars[ADAFACTOR_DIVISOR];
  double wdLr = __dmul_rn(wd, lr), oneMinusBeta1 = __dadd_rn(1.0, -beta1);
  for (long long i = global_thread(); i < n; i += global_threads()) {
    double g = (float)__dmul_rn(grad[i], clip);
    double update = __dmul_rn(__ddiv_rn(adafactor_u(g, i, v, row, col, rowMean, cols), divisor), lr);
    if (m != nullptr) {
      float mi = (float)__dadd_rn(__dmul_rn(beta1, m[i]), __dmul_rn(oneMinusBeta1, update));
      m[i] = mi;
      update = mi;
    }
    double pi = p[i];
    if (wd != 0.0) pi = (float)__dadd_rn(pi, -__dmul_rn(wdLr, pi));
    p[i] = (float)__dadd_rn(pi, -update);
  }
}
