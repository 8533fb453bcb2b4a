// adamw_fwd_f32: one torch.optim.AdamW step per element, mirroring the CPU reference (CpuOptim.adamw) operation for
// operation in float64 with f32 state:
//   g = f32(grad·gradScale[0]); m = f32(β1·m + (1−β1)·g); v = f32(β2·v + (1−β2)·g²);
//   p = f32(p·(1 − lr·wd) − stepSize·m / (sqrt(v)/bc2Sqrt + eps)),
// stepSize = lr/(1−β1^t) and bc2Sqrt = sqrt(1−β2^t) computed on the host in double. The hyper-parameters arrive as
// doubles widened from their float values, as the CPU widens them.
// Thread mapping: grid-stride, one element per step. Deterministic; matches the CPU bit for bit: every float64 +, ·, /
// and sqrt is written as a correctly rounded intrinsic so the compiler cannot contract a·b + c into an FMA (Java
// never does).
#include "wanlora.cuh"

extern "C" __global__ void adamw_fwd_f32(float* p, const float* grad, float* m, float* v, const float* gradScale,
                                         double lr, double b1, double b2, double eps, double wd, double stepSize,
                                         double bc2Sqrt, long long n) {
  double clip = gradScale[0];
  for (long long i = global_thread(); i < n; i += global_threads()) {
    double g = (float)__dmul_rn(grad[i], clip);
    float mi = (float)__dadd_rn(__dmul_rn(b1, m[i]), __dmul_rn(__dadd_rn(1.0, -b1), g));
    float vi = (float)__dadd_rn(__dmul_rn(b2, v[i]), __dmul_rn(__dmul_rn(__dadd_rn(1.0, -b2), g), g));
    m[i] = mi;
    v[i] = vi;
    double denom = __dadd_rn(__ddiv_rn(__dsqrt_rn(vi), bc2Sqrt), eps);
    double decayed = __dmul_rn(p[i], __dadd_rn(1.0, -__dmul_rn(lr, wd)));
    p[i] = (float)__dadd_rn(decayed, -__ddiv_rn(__dmul_rn(stepSize, mi), denom));
  }
}
