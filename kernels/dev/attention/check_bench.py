"""Checks and times kernels/src/main/cuda/attention/flash_attention.cu through the dev harness (libattn.so).

Usage: python3 check_bench.py path/to/libattn.so [--checks=full|quick|none] [--bench=3744,512,...] [--fwd=N] [--bwd=M]
       [--variants=F.B:checks,...] (several fwd.bwd variants in one process, each with its checks and the bench)
(--fwd: the harness's forward variant, fa_set_fwd: 0 portable v3, 1 sm_90a shipped, 2 and 3 sm_90a dev variants;
 --bwd: fa_set_bwd: 0 portable v3, 1 sm_90a dQ pass, 2 sm_90a dK/dV pass, 3 both, 4 sm_90a fused (ordered dQ),
 5 fused with racy dQ adds: timing only, fails the checks by design)
Layout everywhere: q, out (B, Lq, N*D), k, v (B, Lk, N*D) bf16 row-major, lse (B, N, Lq) f32 natural log.

Checks (fresh random bf16 inputs, outputs poisoned with NaN first) against a float64 reference computed per head from
the same bf16 inputs; the reference works on row chunks so that no L x L matrix of a whole head set is held. Bounds:
- out relL2 <= 5e-3: the output is rounded to bf16 (unit roundoff u = 2^-8; rms relative rounding error of a bf16
  value ~ u/sqrt(3) ~ 2.3e-3 at most) and P is rounded to bf16 before P.V (errors of ~u per term, uncorrelated, shrink
  as 1/sqrt(#keys) in the weighted sum); FlashAttention-2 itself is printed alongside and lands at the same level.
- lse max |err| <= 1e-3: fp32 running max/sum, ex2.approx (rel 2^-22), no bf16 rounding at all; expect ~1e-5.
- dq, dk, dv relL2 <= 1e-2: P and dS are rounded to bf16 as GEMM operands (each ~u relative) and the outputs to
  bf16 (~2.3e-3); dS = P (dP - delta) suffers cancellation, so expect ~3-5e-3, again next to FlashAttention-2's own.
- determinism: a second backward on the same inputs must be bitwise identical.
"""
import ctypes
import math
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

D = 128
SCALE = 1.0 / math.sqrt(D)
lib = ctypes.CDLL(sys.argv[1])
ARGS = sys.argv[2:]
CHECKS = next((a.split("=")[1] for a in ARGS if a.startswith("--checks=")), "full")   # full | quick | none
BENCH = next((a.split("=")[1] for a in ARGS if a.startswith("--bench=")), "3744,512,32760").split(",")
TAG = next((a.split("=")[1] for a in ARGS if a.startswith("--tag=")), "")
vp, ci = ctypes.c_void_p, ctypes.c_int
lib.fa_fwd.argtypes = [vp] * 5 + [ci] * 4 + [vp]
lib.fa_bwd_workspace_bytes.argtypes = [ci] * 4
lib.fa_bwd_workspace_bytes.restype = ctypes.c_size_t
lib.fa_bwd.argtypes = [vp] * 10 + [ci] * 4 + [vp]
lib.fa_set_config.argtypes = [ci] * 3
FWD = int(next((a.split("=")[1] for a in ARGS if a.startswith("--fwd=")), "0"))   # harness fa_set_fwd variant
lib.fa_set_fwd.argtypes = [ci]
BWD = int(next((a.split("=")[1] for a in ARGS if a.startswith("--bwd=")), "0"))   # harness fa_set_bwd variant
lib.fa_set_bwd.argtypes = [ci]
CONFIGS = next((a.split("=")[1] for a in ARGS if a.startswith("--configs=")), "4.4.4").split(",")
torch.backends.cuda.matmul.allow_tf32 = False
dev = torch.device("cuda")
workspaces = {}


def stream():
    return vp(torch.cuda.current_stream().cuda_stream)


def ours_fwd(q, k, v, N, out=None, lse=None):
    B, Lq, _ = q.shape
    Lk = k.shape[1]
    out = torch.empty_like(q) if out is None else out
    lse = torch.empty(B, N, Lq, device=dev, dtype=torch.float32) if lse is None else lse
    rc = lib.fa_fwd(out.data_ptr(), lse.data_ptr(), q.data_ptr(), k.data_ptr(), v.data_ptr(), B, N, Lq, Lk, stream())
    assert rc == 0, f"fa_fwd cudaError {rc}"
    return out, lse


def ours_bwd(dout, q, k, v, out, lse, N, grads=None):
    B, Lq, _ = q.shape
    Lk = k.shape[1]
    key = (B, N, Lq, Lk)
    if key not in workspaces:
        workspaces[key] = torch.empty(lib.fa_bwd_workspace_bytes(B, N, Lq, Lk), device=dev, dtype=torch.uint8)
    dq, dk, dv = (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)) if grads is None else grads
    rc = lib.fa_bwd(dq.data_ptr(), dk.data_ptr(), dv.data_ptr(), dout.data_ptr(), q.data_ptr(), k.data_ptr(),
                    v.data_ptr(), out.data_ptr(), lse.data_ptr(), workspaces[key].data_ptr(), B, N, Lq, Lk, stream())
    assert rc == 0, f"fa_bwd cudaError {rc}"
    return dq, dk, dv


def heads_view(x, N):  # (B, L, N*D) -> (B, N, L, D) view, same memory
    B, L, _ = x.shape
    return x.view(B, L, N, D).transpose(1, 2)


def sdpa_fwd_bwd(q, k, v, dout, N):
    qv, kv, vv = (heads_view(t, N).detach().requires_grad_(True) for t in (q, k, v))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        o = F.scaled_dot_product_attention(qv, kv, vv)
    g = torch.autograd.grad(o, (qv, kv, vv), heads_view(dout, N))
    return o, g


def ref_head(qh, kh, vh, doh, rows, keys, chunk=2048):
    """float64 reference for one head: qh (Lq, D), kh/vh (Lk, D), doh (Lq, D) float64. rows/keys: index tensors.
    Returns out[rows], lse[rows], dq[rows], dk[keys], dv[keys]."""
    Lq = qh.shape[0]
    lse = torch.empty(Lq, dtype=torch.float64, device=dev)
    delta = torch.empty(Lq, dtype=torch.float64, device=dev)
    for s in range(0, Lq, chunk):
        S = (qh[s:s + chunk] @ kh.T) * SCALE
        l = torch.logsumexp(S, dim=1)
        o = torch.exp(S - l[:, None]) @ vh
        lse[s:s + chunk] = l
        delta[s:s + chunk] = (o * doh[s:s + chunk]).sum(1)
    S = (qh[rows] @ kh.T) * SCALE
    P = torch.exp(S - lse[rows, None])
    out = P @ vh
    dS = P * (doh[rows] @ vh.T - delta[rows, None])
    dq = dS @ kh * SCALE
    dk = torch.zeros(len(keys), D, dtype=torch.float64, device=dev)
    dv = torch.zeros_like(dk)
    for s in range(0, Lq, chunk):
        P = torch.exp((qh[s:s + chunk] @ kh[keys].T) * SCALE - lse[s:s + chunk, None])
        dv += P.T @ doh[s:s + chunk]
        dS = P * (doh[s:s + chunk] @ vh[keys].T - delta[s:s + chunk, None])
        dk += dS.T @ qh[s:s + chunk] * SCALE
    return out, lse[rows], dq, dk, dv


def rel_l2(a, b):
    return (torch.linalg.vector_norm((a.double() - b).flatten()) / torch.linalg.vector_norm(b.flatten())).item()


def check(B, N, Lq, Lk, heads=None, rows=None, keys=None, with_sdpa=True):
    g = torch.Generator(device=dev).manual_seed(Lq * 131 + Lk)
    q, k, v = (torch.randn(B, L, N * D, device=dev, generator=g).to(torch.bfloat16) for L in (Lq, Lk, Lk))
    dout = torch.randn(B, Lq, N * D, device=dev, generator=g).to(torch.bfloat16)
    out = torch.full_like(q, float("nan"))
    lse = torch.full((B, N, Lq), float("nan"), device=dev)
    ours_fwd(q, k, v, N, out, lse)
    grads = tuple(torch.full_like(t, float("nan")) for t in (q, k, v))
    ours_bwd(dout, q, k, v, out, lse, N, grads)
    dq, dk, dv = grads
    grads2 = ours_bwd(dout, q, k, v, out, lse, N)
    deterministic = all(torch.equal(a.view(torch.int16), b.view(torch.int16)) for a, b in zip(grads, grads2))
    torch.cuda.synchronize()
    if with_sdpa:
        so, sg = sdpa_fwd_bwd(q, k, v, dout, N)
    heads = range(N) if heads is None else heads
    rows = torch.arange(Lq, device=dev) if rows is None else rows
    keys = torch.arange(Lk, device=dev) if keys is None else keys
    acc = {name: [[], []] for name in ("out", "dq", "dk", "dv")}   # ours-ref pieces, ref pieces
    acc_sdpa = {name: [] for name in acc}
    lse_err = 0.0
    for b in range(B):
        for h in heads:
            sl = slice(h * D, (h + 1) * D)
            r = ref_head(q[b, :, sl].double(), k[b, :, sl].double(), v[b, :, sl].double(), dout[b, :, sl].double(),
                         rows, keys)
            mine = (out[b, rows, sl], dq[b, rows, sl], dk[b, keys, sl], dv[b, keys, sl])
            for name, m, ref in zip(acc, mine, (r[0], r[2], r[3], r[4])):
                acc[name][0].append((m.double() - ref).flatten())
                acc[name][1].append(ref.flatten())
            lse_err = max(lse_err, (lse[b, h, rows].double() - r[1]).abs().max().item())
            if with_sdpa:
                theirs = (so[b, h, rows], sg[0][b, h, rows], sg[1][b, h, keys], sg[2][b, h, keys])
                for name, m, ref in zip(acc, theirs, (r[0], r[2], r[3], r[4])):
                    acc_sdpa[name].append((m.double() - ref).flatten())
    res = {}
    for name, (diffs, refs) in acc.items():
        ref_norm = torch.linalg.vector_norm(torch.cat(refs))
        res[name] = (torch.linalg.vector_norm(torch.cat(diffs)) / ref_norm).item()
        res[name + "_sdpa"] = ((torch.linalg.vector_norm(torch.cat(acc_sdpa[name])) / ref_norm).item()
                               if with_sdpa else float("nan"))
    ok = (res["out"] <= 5e-3 and lse_err <= 1e-3 and all(res[n] <= 1e-2 for n in ("dq", "dk", "dv"))
          and deterministic)
    print(f"check B={B} N={N} Lq={Lq} Lk={Lk} heads={len(heads)} rows={len(rows)} keys={len(keys)}: "
          f"out {res['out']:.2e} (sdpa {res['out_sdpa']:.2e}) lse maxAbs {lse_err:.1e} "
          f"dq {res['dq']:.2e} ({res['dq_sdpa']:.2e}) dk {res['dk']:.2e} ({res['dk_sdpa']:.2e}) "
          f"dv {res['dv']:.2e} ({res['dv_sdpa']:.2e}) deterministic={deterministic} {'OK' if ok else 'FAIL'}",
          flush=True)
    return ok


def time_ms(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    return statistics.median(ts)


def bench(B, N, Lq, Lk, reps):
    g = torch.Generator(device=dev).manual_seed(7)
    q, k, v = (torch.randn(B, L, N * D, device=dev, generator=g).to(torch.bfloat16) for L in (Lq, Lk, Lk))
    dout = torch.randn(B, Lq, N * D, device=dev, generator=g).to(torch.bfloat16)
    out, lse = ours_fwd(q, k, v, N)
    grads = (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v))
    t_of = time_ms(lambda: ours_fwd(q, k, v, N, out, lse), reps)
    t_ob = time_ms(lambda: ours_bwd(dout, q, k, v, out, lse, N, grads), reps)
    t_ofb = time_ms(lambda: (ours_fwd(q, k, v, N, out, lse), ours_bwd(dout, q, k, v, out, lse, N, grads)), reps)
    qv, kv, vv = (heads_view(t, N).detach().requires_grad_(True) for t in (q, k, v))
    dov = heads_view(dout, N)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        with torch.no_grad():
            t_sf = time_ms(lambda: F.scaled_dot_product_attention(qv, kv, vv), reps)

        def fb():
            o = F.scaled_dot_product_attention(qv, kv, vv)
            torch.autograd.grad(o, (qv, kv, vv), dov)
        t_sfb = time_ms(fb, reps)
    t_sb = t_sfb - t_sf
    flops = 4.0 * B * N * Lq * Lk * D
    tf = lambda ms, mult: flops * mult / ms / 1e9
    print(f"{TAG} {B}x{Lq}x{Lk}x{N}h | fwd ours {t_of:8.3f} ms {tf(t_of, 1):5.0f} TF  sdpa {t_sf:8.3f} ms {tf(t_sf, 1):5.0f} TF "
          f"ratio {t_sf / t_of:5.2f} | bwd ours {t_ob:8.3f} {tf(t_ob, 2.5):5.0f} TF  sdpa {t_sb:8.3f} "
          f"{tf(t_sb, 2.5):5.0f} TF ratio {t_sb / t_ob:5.2f} | fwd+bwd ours {t_ofb:8.3f} sdpa {t_sfb:8.3f} "
          f"ratio {t_sfb / t_ofb:5.2f}", flush=True)


def profile_ours(B, N, Lq, Lk):
    q, k, v, dout = (torch.randn(B, L, N * D, device=dev).to(torch.bfloat16) for L in (Lq, Lk, Lk, Lq))
    out, lse = ours_fwd(q, k, v, N)
    ours_bwd(dout, q, k, v, out, lse, N)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            ours_fwd(q, k, v, N, out, lse)
            ours_bwd(dout, q, k, v, out, lse, N)
        torch.cuda.synchronize()
    for e in prof.key_averages():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            print(f"{TAG}   kernel {e.key[:40]:40s} {e.device_time / 1000:8.3f} ms avg x{e.count}", flush=True)


if __name__ == "__main__":
    print(torch.cuda.get_device_name(), torch.__version__, TAG, flush=True)
    shapes = {"3744": (1, 40, 3744, 3744, 30), "512": (1, 40, 3744, 512, 30), "32760": (1, 40, 32760, 32760, 5),
              "16384": (1, 40, 16384, 16384, 10),
              "6912": (1, 40, 6912, 6912, 20)}
    all_ok = True
    # --variants=F.B:checks,... (one process, several fwd/bwd variants in turn, e.g. 1.3:none,1.4:full); else --configs
    VARIANTS = next((a.split("=")[1] for a in ARGS if a.startswith("--variants=")), "")
    runs = ([("4.4.4",) + tuple(v.split(":")) for v in VARIANTS.split(",")] if VARIANTS
            else [(c, "%d.%d" % (FWD, BWD), CHECKS) for c in CONFIGS])
    for config, fb, CHECKS in runs:
        FWD, BWD = map(int, fb.split("."))
        TAG = "fwd%sw/dkdv%sw/dq%sw" % tuple(config.split("."))
        assert lib.fa_set_config(*map(int, config.split("."))) == 0
        if FWD or BWD:
            TAG = "fwd-%s/dkdv-%s/dq-%s" % ("sm90-v%d" % FWD if FWD else "v3", "sm90" if BWD & 2 else "v3",
                                           "sm90" if BWD & 1 else "v3")
            if BWD >= 4:
                TAG = "fwd-%s/bwd-fused%s" % ("sm90-v%d" % FWD if FWD else "v3", "" if BWD == 4 else "-racy")
        assert lib.fa_set_fwd(FWD) == 0
        assert lib.fa_set_bwd(BWD) == 0
        ok = True
        if CHECKS != "none":
            ok &= check(1, 2, 77, 77)
            ok &= check(1, 2, 77, 13)
            ok &= check(2, 3, 200, 333)
            ok &= check(1, 40, 3744, 3744)
            ok &= check(1, 40, 3744, 512)
        if CHECKS == "full":
            ok &= check(1, 40, 32760, 32760, heads=[0, 39])
            sub = lambda L: torch.randperm(L, device=dev)[:1024].sort().values
            ok &= check(1, 40, 80000, 80000, heads=[0, 39], rows=sub(80000), keys=sub(80000), with_sdpa=False)
        if CHECKS != "none":
            print(TAG, "CHECKS", "OK" if ok else "FAIL", flush=True)
        all_ok &= ok
        for name in BENCH:
            if name:
                bench(*shapes[name])
        if "--profile" in ARGS:
            profile_ours(1, 40, 3744, 3744)
    sys.exit(0 if all_ok else 1)
