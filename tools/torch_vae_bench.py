#!/usr/bin/env python3
"""PyTorch's time for the Wan 2.1 VAE decode VaeBench measures (issue 9's ratio criterion), on the same GPU in the
same run: a [16,12,48,48] latent -> 384x384x45 pixels in bf16 with random weights of the release shapes (d = 96).

The decoder is written here from spec section 12 (../shared/spec/wan-musubi.md) and testdata/golden/vae-tiny/README.md,
not copied from musubi: channels-first [B, C, T, H, W] like musubi, one latent frame at a time, every 3x3x3
CausalConv3d fed concat(2-frame cache, chunk) (the cache concatenated as musubi does), the upsample3d frame-0 rule,
RMS_norm as F.normalize * sqrt(C) * gamma, single-head attention per frame through F.scaled_dot_product_attention.
Timing as VaeBench: from the latent on the host to the float32 video on the host, 3 warm-ups, median of 5; then the
conv3d alone at VaeBench's four shapes (cache concatenated, as musubi's CausalConv3d does). Both with cuDNN's
default algorithm choice (musubi's setting) and with torch.backends.cudnn.benchmark = True.

Run on the GPU machine: python3 tools/torch_vae_bench.py
"""
import math
import statistics
import time

import torch
import torch.nn.functional as F

DIM, Z = 96, 16
MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]
DEV, DT = "cuda", torch.bfloat16
gen = torch.Generator(device=DEV).manual_seed(2026)


def conv_weight(cout, cin, *k):
    fan_in = cin * math.prod(k)
    w = torch.randn(cout, cin, *k, device=DEV, generator=gen) / math.sqrt(fan_in)
    return w.to(DT), (0.02 * torch.randn(cout, device=DEV, generator=gen)).to(DT)


def gamma(c):
    return (1 + 0.1 * torch.randn(c, device=DEV, generator=gen)).to(DT)


def rms(x, g):  # RMS_norm over channels (dim 1): x / max(|x|, 1e-12) * sqrt(C) * gamma
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return F.normalize(x, dim=1) * math.sqrt(x.shape[1]) * g.view(shape)


class Causal3:
    """A 3x3x3 (or (3,1,1)) CausalConv3d with its 2-frame cache, spatial padding p."""

    def __init__(self, cout, cin, kh=3):
        self.w, self.b = conv_weight(cout, cin, 3, kh, kh)
        self.p = (kh - 1) // 2
        self.cache = None

    def reset(self):
        self.cache = None

    def __call__(self, x):
        prev = self.cache
        stream = x if prev is None else torch.cat([prev, x], dim=2)
        self.cache = stream[:, :, -2:].clone()
        front = 2 - (0 if prev is None else prev.shape[2])
        stream = F.pad(stream, (self.p, self.p, self.p, self.p, front, 0))
        return F.conv3d(stream, self.w, self.b)


class Conv1:
    def __init__(self, cout, cin):
        self.w, self.b = conv_weight(cout, cin, 1, 1, 1)

    def __call__(self, x):
        return F.conv3d(x, self.w, self.b)


class ResBlock:
    def __init__(self, cin, cout):
        self.g1, self.c1, self.g2, self.c2 = gamma(cin), Causal3(cout, cin), gamma(cout), Causal3(cout, cout)
        self.short = Conv1(cout, cin) if cin != cout else None

    def convs(self):
        return [self.c1, self.c2]

    def __call__(self, x):
        h = self.c1(F.silu(rms(x, self.g1)))
        h = self.c2(F.silu(rms(h, self.g2)))
        return h + (self.short(x) if self.short else x)


class Attention:
    def __init__(self, c):
        self.g = gamma(c)
        self.qkv_w, self.qkv_b = conv_weight(3 * c, c, 1, 1)
        self.proj_w, self.proj_b = conv_weight(c, c, 1, 1)

    def convs(self):
        return []

    def __call__(self, x):
        b, c, t, h, w = x.shape
        f = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        qkv = F.conv2d(rms(f, self.g), self.qkv_w, self.qkv_b)
        q, k, v = qkv.reshape(b * t, 1, 3 * c, h * w).permute(0, 1, 3, 2).chunk(3, dim=-1)
        o = F.scaled_dot_product_attention(q, k, v)
        o = o.squeeze(1).permute(0, 2, 1).reshape(b * t, c, h, w)
        o = F.conv2d(o, self.proj_w, self.proj_b)
        return x + o.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


class Upsample:
    """upsample3d (time_conv C -> 2C, frame-0 rule) or upsample2d; then nearest 2x and Conv2d 3x3 C -> C/2."""

    def __init__(self, c, temporal):
        self.time = Causal3(2 * c, c, kh=1) if temporal else None
        self.rw, self.rb = conv_weight(c // 2, c, 3, 3)
        self.started = False

    def convs(self):
        return [self.time] if self.time else []

    def __call__(self, x):
        b, c, t, h, w = x.shape
        if self.time is not None:
            if not self.started:  # latent frame 0: no time_conv; its cache stays empty (two zero frames)
                self.started = True
            else:
                y = self.time(x).reshape(b, 2, c, t, h, w)
                x = torch.stack((y[:, 0], y[:, 1]), dim=3).reshape(b, c, 2 * t, h, w)
                t = 2 * t
        f = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        f = F.interpolate(f.float(), scale_factor=2.0, mode="nearest-exact").to(DT)
        f = F.conv2d(f, self.rw, self.rb, padding=1)
        return f.reshape(b, t, c // 2, 2 * h, 2 * w).permute(0, 2, 1, 3, 4)


class Decoder:
    def __init__(self):
        d = DIM
        self.conv2 = Conv1(Z, Z)
        self.conv1 = Causal3(4 * d, Z)
        self.middle = [ResBlock(4 * d, 4 * d), Attention(4 * d), ResBlock(4 * d, 4 * d)]
        ups = []
        dims = [4 * d, 4 * d, 4 * d, 2 * d, d]
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            cin = cin // 2 if i in (1, 2, 3) else cin  # after an upsample the channels are halved
            for _ in range(3):
                ups.append(ResBlock(cin, cout))
                cin = cout
            if i < 3:
                ups.append(Upsample(cout, temporal=i < 2))
        self.ups = ups
        self.head_g = gamma(d)
        self.head = Causal3(3, d)

    def layers(self):
        return self.middle + self.ups

    def reset(self):
        self.conv1.reset()
        self.head.reset()
        for layer in self.layers():
            for conv in layer.convs():
                conv.reset()
            if isinstance(layer, Upsample):
                layer.started = False

    def decode(self, latent):  # latent (16, T, h, w) float32 on the host
        self.reset()
        z = latent.to(DEV).unsqueeze(0)
        mean = torch.tensor(MEAN, device=DEV).view(1, Z, 1, 1, 1)
        inv_std = 1 / torch.tensor(STD, device=DEV).view(1, Z, 1, 1, 1)
        z = (z / inv_std + mean).to(DT)
        z = self.conv2(z)
        out = []
        for t in range(z.shape[2]):
            x = self.conv1(z[:, :, t:t + 1])
            for layer in self.layers():
                x = layer(x)
            out.append(self.head(F.silu(rms(x, self.head_g))))
        return torch.cat(out, dim=2).float().clamp_(-1, 1).cpu()


def median_seconds(fn, warm=3, reps=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def conv_bench():
    shapes = [(1, 48, 48, 384, 384), (2, 96, 96, 384, 384), (4, 192, 192, 192, 192), (4, 384, 384, 96, 96)]
    for f, h, w, cin, cout in shapes:
        cache = torch.randn(1, cin, 2, h, w, device=DEV, dtype=DT)
        x = torch.randn(1, cin, f, h, w, device=DEV, dtype=DT)
        wt = (torch.randn(cout, cin, 3, 3, 3, device=DEV) / math.sqrt(27 * cin)).to(DT)
        run = lambda: F.conv3d(F.pad(torch.cat([cache, x], 2), (1, 1, 1, 1, 0, 0)), wt)
        for _ in range(3):
            run()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(10):
            run()
        stop.record()
        stop.synchronize()
        s = start.elapsed_time(stop) / 1e3 / 10
        flops = 2.0 * f * h * w * cout * 27 * cin
        print(f"  torch conv3d 3x3x3 x=({f},{h},{w},{cin}) Cout {cout} (with cat + pad): {s * 1e6:.1f} us, "
              f"{flops / s / 1e12:.1f} TFLOP/s")


def main():
    torch.manual_seed(1)
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, {torch.cuda.get_device_name()}")
    with torch.no_grad():
        dec = Decoder()
        latent = torch.randn(Z, 12, 48, 48)
        video = dec.decode(latent)
        assert video.shape == (1, 3, 45, 384, 384), video.shape
        for benchmark in (False, True):
            torch.backends.cudnn.benchmark = benchmark
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            s = median_seconds(lambda: dec.decode(latent))
            peak = torch.cuda.max_memory_allocated() - base
            print(f"torch decode [16,12,48,48] -> 384x384x45 bf16, cudnn.benchmark={benchmark}: {s:.3f} s "
                  f"(median of 5), peak working memory {peak / 2**20:.1f} MiB")
            conv_bench()


if __name__ == "__main__":
    main()
