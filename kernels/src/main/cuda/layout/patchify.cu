// Patch layouts of Wan's (1,2,2) patch embedding and head. Pure data movement: T is any 2- or 4-byte type
// (symbols _bf16 move 2-byte elements, _f32 4-byte ones).
//   patchify_fwd:       latents (B, C, F, H, W) -> out (B, F·H2·W2, C·4), token (f·H2 + h)·W2 + w, feature c·4 + kh·2 + kw
//   unpatchify_fwd:     tokens (B, L, 4·C), feature ph·2·C + pw·C + c -> out (B, C, F, H, W) at (c, f, 2h+ph, 2w+pw)
//   unpatchify_bwd:     dTokens[b, l, feature] = dOut at the same position (the gather in the other direction)
// H2 = H/2, W2 = W/2 (H, W even). Thread mapping: one thread per output element, grid-stride; writes are coalesced,
// reads are strided (these tensors are small: 16 channels). Deterministic.
#include "wanlora.cuh"

template <typename T>
__device__ void patchify(T* out, const T* lat, int B, int C, int F, int H, int W) {
  int H2 = H / 2, W2 = W / 2;
  long long L = (long long)F * H2 * W2, feats = 4LL * C, total = B * L * feats;
  for (long long o = global_thread(); o < total; o += global_threads()) {
    long long e = o % feats, tk = (o / feats) % L, b = o / (feats * L);
    int c = (int)(e / 4), kh = (int)(e / 2) % 2, kw = (int)e % 2;
    int w = (int)(tk % W2), h = (int)((tk / W2) % H2), f = (int)(tk / ((long long)W2 * H2));
    out[o] = lat[(((b * C + c) * F + f) * H + 2 * h + kh) * (long long)W + 2 * w + kw];
  }
}

template <typename T>
__device__ void unpatchify(T* out, const T* tok, int B, int C, int F, int H, int W) {
  int H2 = H / 2, W2 = W / 2;
  long long L = (long long)F * H2 * W2, total = (long long)B * C * F * H * W;
  for (long long o = global_thread(); o < total; o += global_threads()) {
    int x = (int)(o % W), y = (int)((o / W) % H), f = (int)((o / ((long long)W * H)) % F);
    long long bc = o / ((long long)W * H * F);
    int c = (int)(bc % C);
    long long b = bc / C;
    long long tk = ((long long)f * H2 + y / 2) * W2 + x / 2;
    int feat = (y % 2) * 2 * C + (x % 2) * C + c;
    out[o] = tok[(b * L + tk) * 4 * C + feat];
  }
}

template <typename T>
__device__ void unpatchify_bwd(T* dTok, const T* dOut, int B, int C, int F, int H, int W) {
  int H2 = H / 2, W2 = W / 2;
  long long L = (long long)F * H2 * W2, feats = 4LL * C, total = B * L * feats;
  for (long long o = global_thread(); o < total; o += global_threads()) {
    int feat = (int)(o % feats);
    long long tk = (o / feats) % L, b = o / (feats * L);
    int ph = feat / (2 * C), pw = (feat / C) % 2, c = feat % C;
    int w = (int)(tk % W2), h = (int)((tk / W2) % H2), f = (int)(tk / ((long long)W2 * H2));
    dTok[o] = dOut[(((b * C + c) * F + f) * H + 2 * h + ph) * (long long)W + 2 * w + pw];
  }
}

#define LAYOUT(T, S)                                                                                                  \
  extern "C" __global__ void patchify_fwd_##S(T* out, const T* lat, int B, int C, int F, int H, int W) {              \
    patchify<T>(out, lat, B, C, F, H, W);                                                                             \
  }                                                                                                                   \
  extern "C" __global__ void unpatchify_fwd_##S(T* out, const T* tok, int B, int C, int F, int H, int W) {            \
    unpatchify<T>(out, tok, B, C, F, H, W);                                                                           \
  }                                                                                                                   \
  extern "C" __global__ void unpatchify_bwd_##S(T* dTok, const T* dOut, int B, int C, int F, int H, int W) {          \
    unpatchify_bwd<T>(dTok, dOut, B, C, F, H, W);                                                                     \
  }

LAYOUT(uint16_t, bf16)
LAYOUT(float, f32)
