// adamw8bit_fwd_f32: one 8-bit AdamW step (bitsandbytes' kOptimizerStatic8bit2StateBlockwise for ADAM with weight
// decay, block-wise dynamic quantization), mirroring the CPU reference dev.wanlora.engine.cpu.CpuAdamW8bit operation
// for operation in float32:
//   g = grad·gradScale; v = udynamic[vCode]·absmax2·β2 + (1−β2)·g·g; m = dynamic[mCode]·absmax1·β1 + (1−β1)·g
//   absmax1 = max|m|, absmax2 = max|v| over the block (the last, partial block also counts the padding element's
//   m = dynamic[128]·absmax1·β1); p = p + stepSize·m/(√v + c2·eps), then p·(1 − lr·wd) when wd > 0;
//   mCode = quantize_2D(m/absmax1) with the sign fix, vCode = quantize_2D(v/absmax2). A non-finite gradient element
//   gets m = v = 0 and keeps its p. stepSize = −lr·c2/c1 and c2 come from the host exactly as the CPU forms them.
// Thread mapping: one block of BLOCK (256, AdamW8bit.BLOCK_SIZE) threads per quantization block, one element per
// thread; the two 256-entry maps are staged in shared memory; the block maxima are a shared-memory tree.
// Numerics: every float operation is a correctly rounded intrinsic (no FMA contraction), so the result equals the
// CPU's bit for bit. Deterministic.
#include "wanlora.cuh"

#define BLOCK 256

// java.lang.Math.max(float, float) for the non-negative values here: NaN wins.
__device__ __forceinline__ float java_max(float a, float b) { return a != a ? a : (b != b ? b : (a >= b ? a : b)); }

// DynamicQuantization.quantize: a 7-step binary walk from pivot 127, then the midpoint rule.
__device__ __forceinline__ int quantize_2d(const float* map, float x, bool isSigned) {
  int pivot = 127, upperPivot = 255, lowerPivot = 0;
  float lower = isSigned ? -1.0f : 0.0f, upper = 1.0f, val = map[pivot];
  for (int i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = map[pivot];
  }
  if (x > val) {
    float midpoint = __fmul_rn(__fadd_rn(upper, val), 0.5f);
    return x > midpoint ? upperPivot : pivot;
  }
  float midpoint = __fmul_rn(__fadd_rn(lower, val), 0.5f);
  return x < midpoint ? lowerPivot : pivot;
}

extern "C" __global__ void __launch_bounds__(BLOCK) adamw8bit_fwd_f32(
    float* p, const float* grad, uint8_t* mCodes, float* mAbsMax, uint8_t* vCodes, float* vAbsMax,
    const float* gradScale, const float* signedMap, const float* unsignedMap, float beta1, float beta2, float eps,
    float lr, float wd, float correction2, float stepSize, long long n) {
  __shared__ float smap[256], umap[256], max1[BLOCK], max2[BLOCK];
  smap[threadIdx.x] = signedMap[threadIdx.x];
  umap[threadIdx.x] = unsignedMap[threadIdx.x];
  __syncthreads();
  long long b = blockIdx.x, i = b * BLOCK + threadIdx.x;
  bool valid = i < n;
  float oldAbsMax1 = mAbsMax[b], oldAbsMax2 = vAbsMax[b];
  float m = 0.f, v = 0.f, g = valid ? grad[i] : 0.f;
  bool finite = valid && isfinite(g);
  if (finite) {
    g = __fmul_rn(g, gradScale[0]);
    float s2 = __fmul_rn(umap[vCodes[i]], oldAbsMax2);
    v = __fadd_rn(__fmul_rn(s2, beta2), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, beta2), g), g));
    float s1 = __fmul_rn(smap[mCodes[i]], oldAbsMax1);
    m = __fadd_rn(__fmul_rn(s1, beta1), __fmul_rn(__fsub_rn(1.0f, beta1), g));
  } else if (!valid) {
    // padding of the last block: g = 0 and mCode 128, so m = dynamic[128]·absmax1·β1 + 0 (v = 0)
    m = __fadd_rn(__fmul_rn(__fmul_rn(smap[128], oldAbsMax1), beta1), 0.0f);
  }
  max1[threadIdx.x] = fabsf(m);
  max2[threadIdx.x] = fabsf(v);
  __syncthreads();
  for (int s = BLOCK / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      max1[threadIdx.x] = java_max(max1[threadIdx.x], max1[threadIdx.x + s]);
      max2[threadIdx.x] = java_max(max2[threadIdx.x], max2[threadIdx.x + s]);
    }
    __syncthreads();
  }
  // the CPU starts both maxima at 0
  float newAbsMax1 = java_max(0.f, max1[0]), newAbsMax2 = java_max(0.f, max2[0]);
  __syncthreads();
  if (threadIdx.x == 0) {
    mAbsMax[b] = newAbsMax1;
    vAbsMax[b] = newAbsMax2;
  }
  if (!valid) return;
  if (finite) {
    float q = __fadd_rn(p[i], __fmul_rn(stepSize, __fdiv_rn(m, __fadd_rn(__fsqrt_rn(v), __fmul_rn(correction2, eps)))));
    if (wd > 0.0f) q = __fmul_rn(q, __fsub_rn(1.0f, __fmul_rn(lr, wd)));
    p[i] = q;
  }
  int mc = quantize_2d(smap, __fdiv_rn(m, newAbsMax1), true);
  // the sign fix: step one code toward m's sign when the chosen code's value has the other sign bit
  if (signbit(smap[mc]) != signbit(m)) mc = m > 0.f ? mc + 1 : mc - 1;
  mCodes[i] = (uint8_t)(mc & 0xff);
  vCodes[i] = (uint8_t)quantize_2d(umap, __fdiv_rn(v, newAbsMax2), false);
}
