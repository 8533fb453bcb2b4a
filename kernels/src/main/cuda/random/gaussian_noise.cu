// gaussian_noise_fwd_<out>: out[i] = normal(seed, offset + i), the definition of dev.wanlora.engine.random.CounterRng
// reproduced exactly: Philox4x32-10 with key (seed lo, seed hi) and counter (c lo, c hi, 0, 0), c = offset + i;
// u1 = (r0 + 0.5)/2^32, u2 = (r1 + 0.5)/2^32; z = sqrt(−2 ln u1)·cos(2π u2) in float64; stored as (float) z, then
// rounded to out's dtype (double → float → bf16, as the CPU reference stores it).
// Thread mapping: one element per thread step, grid-stride. CUDA's float64 log/cos are within 1 ulp of the Java
// reference (StrictMath), so a stored value can differ only when z lies within a few double ulps of a float rounding
// boundary (about 2^-27 per element). Deterministic: a pure function of (seed, offset + i).
#include "wanlora.cuh"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

__device__ __forceinline__ void philox4x32_10(uint32_t (&c)[4], uint32_t k0, uint32_t k1) {
#pragma unroll
  for (int round = 0; round < 10; round++) {
    uint32_t hi0 = __umulhi(PHILOX_M0, c[0]), lo0 = PHILOX_M0 * c[0];
    uint32_t hi1 = __umulhi(PHILOX_M1, c[2]), lo1 = PHILOX_M1 * c[2];
    uint32_t c1 = c[1], c3 = c[3];
    c[0] = hi1 ^ c1 ^ k0;
    c[1] = lo1;
    c[2] = hi0 ^ c3 ^ k1;
    c[3] = lo0;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
}

template <typename T>
__device__ void gaussian_noise(T* out, unsigned long long seed, unsigned long long offset, long long n) {
  const double twoPow32 = 4294967296.0, twoPi = 6.283185307179586;  // 2·Math.PI, the double nearest 2π
  for (long long i = global_thread(); i < n; i += global_threads()) {
    unsigned long long ctr = offset + (unsigned long long)i;
    uint32_t c[4] = {(uint32_t)ctr, (uint32_t)(ctr >> 32), 0u, 0u};
    philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    double u1 = ((double)c[0] + 0.5) / twoPow32, u2 = ((double)c[1] + 0.5) / twoPow32;
    double z = sqrt(-2.0 * log(u1)) * cos(twoPi * u2);
    out[i] = from_float<T>((float)z);
  }
}

extern "C" __global__ void gaussian_noise_fwd_f32(f32* out, unsigned long long seed, unsigned long long offset, long long n) { gaussian_noise(out, seed, offset, n); }
extern "C" __global__ void gaussian_noise_fwd_bf16(bf16* out, unsigned long long seed, unsigned long long offset, long long n) { gaussian_noise(out, seed, offset, n); }
extern "C" __global__ void gaussian_noise_fwd_f16(f16* out, unsigned long long seed, unsigned long long offset, long long n) { gaussian_noise(out, seed, offset, n); }
