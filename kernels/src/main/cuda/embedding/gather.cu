// Row gathers of the umT5 encoder (Backend#embedding, Backend#relativePositionBias).
//   embedding_fwd_<table>_<out>:             out[r, c] = table[ids[r], c]; ids f32 integer ids, out (R, C).
//   relative_position_bias_fwd_<table>_<out>: out[h, i, j] = table[buckets[j − i + Lq − 1], h]; out (N, Lq, Lk).
// Thread mapping: grid-stride, one thread per output element (consecutive threads write consecutive elements).
// Numerics: a copy, rounded to nearest even when out is narrower than table. An id outside [0, V) (or a bucket
// outside [0, numBuckets)) writes NaN (the CPU reference throws). Deterministic.
#include "wanlora.cuh"

#define GATHER(TI, TO, S)                                                                                           \
  extern "C" __global__ void embedding_fwd_##S(TO* out, const TI* table, const float* ids, long long rows,        \
                                                long long cols, long long vocab) {                                 \
    long long n = rows * cols;                                                                                     \
    for (long long e = global_thread(); e < n; e += global_threads()) {                                            \
      float id = ids[e / cols];                                                                                    \
      bool ok = id >= 0.f && id < (float)vocab && id == rintf(id);                                                 \
      out[e] = from_float<TO>(ok ? to_float(table[(long long)id * cols + e % cols]) : __int_as_float(0x7fc00000)); \
    }                                                                                                              \
  }                                                                                                                \
  extern "C" __global__ void relative_position_bias_fwd_##S(TO* out, const TI* table, const float* buckets,       \
                                                             int heads, long long lq, long long lk, int numBuckets) { \
    long long n = (long long)heads * lq * lk;                                                                      \
    for (long long e = global_thread(); e < n; e += global_threads()) {                                            \
      long long j = e % lk, i = (e / lk) % lq;                                                                     \
      int h = (int)(e / (lk * lq));                                                                                \
      float bucket = buckets[j - i + lq - 1];                                                                      \
      bool ok = bucket >= 0.f && bucket < (float)numBuckets && bucket == rintf(bucket);                            \
      out[e] = from_float<TO>(ok ? to_float(table[(long long)bucket * heads + h]) : __int_as_float(0x7fc00000));   \
    }                                                                                                              \
  }

FOR_EACH_IO(GATHER)
