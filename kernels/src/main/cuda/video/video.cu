// The Wan VAE's other video ops: nearest 2× upsampling of channels-last frames and the row softmax of its
// single-head spatial attention.
//   upsample_nearest2x_fwd_<t>(out, x, T, H, W, C): out (T, 2H, 2W, C)[t, 2h+a, 2w+b, c] = x (T, H, W, C)[t, h, w, c].
//     Grid-stride loop, one thread per output element. Exact (a copy).
//   softmax_fwd_<in>[_<out>](out, x, scale, R, C): out[r, :] = softmax(scale·x[r, :]) over C. One block per row
//     (blockDim a multiple of 32), three passes over the row: max, Σ exp (fixed block_sum tree), normalise; out may
//     be x (each element is read and then written by the same thread). fp32 math with expf, one rounding on store.
// Deterministic: no atomics.
#include "wanlora.cuh"

template <typename T>
__device__ void upsample_nearest2x(T* out, const T* x, long long T_, int H, int W, int C) {
  long long n = T_ * 2 * H * 2 * W * C;
  for (long long e = global_thread(); e < n; e += global_threads()) {
    int c = (int)(e % C);
    long long p = e / C;
    int ow = (int)(p % (2 * W));
    p /= 2 * W;
    int oh = (int)(p % (2 * H));
    long long t = p / (2 * H);
    out[e] = x[((t * H + oh / 2) * W + ow / 2) * C + c];
  }
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < warps ? scratch[lane] : -INFINITY;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) t = fmaxf(t, __shfl_xor_sync(0xffffffffu, t, o));
  return t;
}

template <typename TI, typename TO>
__device__ void softmax_fwd(TO* out, const TI* x, float scale, long long R, int C) {
  __shared__ float scratch[32];
  long long r = blockIdx.x;
  const TI* xr = x + r * C;
  TO* orow = out + r * C;
  float m = -INFINITY;
  for (int c = threadIdx.x; c < C; c += blockDim.x) m = fmaxf(m, scale * to_float(xr[c]));
  m = block_max(m, scratch);
  float s = 0.f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += expf(scale * to_float(xr[c]) - m);
  float inv = 1.f / block_sum(s, scratch);
  for (int c = threadIdx.x; c < C; c += blockDim.x) orow[c] = from_float<TO>(expf(scale * to_float(xr[c]) - m) * inv);
}

#define UPSAMPLE(T, S)                                                                                             \
  extern "C" __global__ void upsample_nearest2x_fwd_##S(T* out, const T* x, long long frames, int H, int W, int C) { \
    upsample_nearest2x<T>(out, x, frames, H, W, C);                                                                \
  }
UPSAMPLE(f32, f32)
UPSAMPLE(bf16, bf16)

#define SOFTMAX(TI, TO, S)                                                                                         \
  extern "C" __global__ void softmax_fwd_##S(TO* out, const TI* x, float scale, long long R, int C) {              \
    softmax_fwd<TI, TO>(out, x, scale, R, C);                                                                      \
  }
FOR_EACH_IO(SOFTMAX)
