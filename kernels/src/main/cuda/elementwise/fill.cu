// fill_f32: out[i] = value for i < n. One thread per element, grid-stride loop; no alignment requirement.
// The smallest kernel of the library: it keeps the nvcc -> fatbin -> KernelLibrary path exercised.
#include "wanlora.cuh"

extern "C" __global__ void fill_fwd_f32(float* out, float value, long long n) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    out[i] = value;
  }
}
