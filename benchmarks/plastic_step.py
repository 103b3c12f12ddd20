"""Per-sample plastic spiking layer: the lean path (``spikeplastic.lean``) against plain autograd.

Layer: ``N`` input spikes -> plastic pair-STDP projection (per-synapse alpha, per-sample ``H``
``[B, N, N]``) -> ``N`` CUBA LIF neurons, ``T`` steps, Lava timing. Both paths get identical
inputs and parameters; the loss reads the spike counts. For every configuration it reports::

    ms_per_step        lean forward+backward, per time step (best of --reps, wall clock)
    naive_ms_per_step  the naive reference below (plain per-step autograd), same inputs
    peak_mb            peak extra memory of one forward+backward (inputs and parameters excluded)
    output_mb          of which the episode's output: the spike train ``[T, B, N]`` float32 that
                       the layer returns (both paths return it; it grows with T by definition)
    state_peak_mb      peak_mb - output_mb: what the path itself keeps for the backward
    roofline_fraction  the fused no-grad forward step at this size: bytes it must move per step
                       (read + write H, read alpha and w) / its time / copy bandwidth (probe)

Timing: lean and naive alternate (--reps rounds, best reported), after a lean warm-up that
compiles its kernels; the timing subprocess uses the default allocator and a watchdog that stops
it if its RSS passes the cap (glibc's caching makes the naive path's RSS ~2.6x its live tensors);
it is then re-run with the exact (mmap) allocator for both paths, which costs the naive path page
faults, and the row says so (``timing_allocator``).

Peak memory (CPU): each configuration runs in a fresh subprocess with ``MALLOC_MMAP_THRESHOLD_=65536``
(so every tensor over 64 KiB is its own mmap and goes back to the OS when freed: RSS follows live
tensor memory, not the C allocator's caches); the kernel's peak-RSS counter is reset
(``/proc/self/clear_refs``) after the inputs exist and the kernels are compiled, and ``VmHWM - VmRSS``
after one forward+backward is the figure. Timings run in a separate subprocess with the default
allocator. GPU: ``torch.cuda.max_memory_allocated`` (untested here).

Usage::

    python benchmarks/plastic_step.py [--quick] [--json] [--threads K] [--backend auto]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import torch
from _mem import last_json, reset_peak_rss, serve_worker, spawn_worker, status_bytes

FULL = {"n": [128, 256, 512, 1024], "t": [100, 1000], "b": [1, 16]}
QUICK = {"n": [256], "t": [100, 1000], "b": [16]}
# naive autograd keeps one [B, N, N] float32 tensor per step alive (H[t], saved for d alpha);
# measured: 4.2 MiB per step at N=256, B=16 with exact (mmap) allocation
NAIVE_H_PER_STEP = 1.05


# ------------------------------------------------------------------------------------------------
# the naive reference: plain per-step autograd, per-sample plastic weights
# ------------------------------------------------------------------------------------------------
def naive_layer(x: torch.Tensor, p: dict[str, torch.Tensor], spike_fn: Any) -> torch.Tensor:
    T, B, n_in = x.shape
    w, alpha = p["w"], p["alpha"]
    N = w.shape[0]
    dp, dm = torch.exp(-1.0 / p["tau_plus"]), torch.exp(-1.0 / p["tau_minus"])
    H = x.new_zeros(B, N, n_in)
    X, Y = x.new_zeros(B, n_in), x.new_zeros(B, N)
    u = v = s = x.new_zeros(B, N)
    x_prev = x.new_zeros(B, n_in)
    out = []
    for t in range(T):
        a = x_prev @ w.t() + torch.bmm(alpha * H, x_prev.unsqueeze(-1)).squeeze(-1)
        X = X * dp + p["a_plus"] * x_prev
        Y = Y * dm + p["a_minus"] * s
        H = H + s.unsqueeze(-1) * X.unsqueeze(-2) - Y.unsqueeze(-1) * x_prev.unsqueeze(-2)
        u = u * (1 - p["du"]) + a
        v = v * (1 - p["dv"]) + u
        s = spike_fn(v - p["vth"])
        v = v * (1 - s.detach())
        out.append(s)
        x_prev = x[t]
    return torch.stack(out)


def lean_layer(x: torch.Tensor, p: dict[str, torch.Tensor], spike_fn: Any, backend: str) -> torch.Tensor:
    from spikeplastic import lean

    proj = lean.LeanProjection(p["w"], lean.STDPParams(p["a_plus"], p["a_minus"], p["tau_plus"], p["tau_minus"]),
                               alpha=p["alpha"])
    lif = lean.LeanLIF(p["du"], p["dv"], p["vth"], torch.zeros((), dtype=x.dtype, device=x.device), spike_fn)
    out, _ = lean.plastic_lif_layer(x, proj, lif, backend=backend)
    return out.spikes


def make_problem(n: int, t: int, b: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.full((t, b, n), 0.1), generator=g).to(device)
    bound = 2.0 / n ** 0.5
    p = {
        "w": (torch.rand(n, n, generator=g) * 2 - 1) * bound,
        "alpha": torch.randn(n, n, generator=g) * 0.5,
        "a_plus": torch.tensor(0.01), "a_minus": torch.tensor(0.012),
        "tau_plus": torch.tensor(20.0), "tau_minus": torch.tensor(20.0),
        "du": torch.tensor(0.5), "dv": torch.tensor(0.1), "vth": torch.tensor(1.0),
    }
    p = {k: v.to(device).requires_grad_(True) for k, v in p.items()}
    readout = torch.randn(n, 10, generator=g).to(device)
    target = torch.randn(b, 10, generator=g).to(device)
    return x, p, readout, target


def fwd_bwd(run, x, p, readout, target) -> torch.Tensor:
    for v in p.values():
        v.grad = None
    S = run(x, p)
    loss = _loss(S, readout, target)
    loss.backward()
    return S.detach()


def _loss(S: torch.Tensor, readout: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # spike counts -> linear readout -> MSE. sum(0)/T rather than mean(0): the same value, but its
    # backward is an expanded view instead of a materialised [T, B, N] gradient
    return ((S.sum(0) / S.shape[0] @ readout - target) ** 2).mean()


# ------------------------------------------------------------------------------------------------
# measurements (each in a fresh subprocess)
# ------------------------------------------------------------------------------------------------
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def copy_bandwidth(device: str, mbytes: int = 256, reps: int = 7) -> float:
    """Large-tensor copy bandwidth in GB/s, counting read + write (STREAM convention), best of ``reps``."""
    a = torch.ones(mbytes * 2**20 // 4, device=device)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        b.copy_(a)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.numel() * 4 / best / 1e9


def fused_step_time(n: int, b: int, device: str, backend: str, reps: int = 5) -> tuple[float, int]:
    """Best time (s) of one no-grad fused forward step at this size, and the bytes it must move."""
    from spikeplastic import lean
    from spikeplastic.surrogate import ATan  # noqa: F401  (import cost outside the timing)

    x, p, _, _ = make_problem(n, 2, b, device)
    with torch.no_grad():
        pd = {k: v.detach() for k, v in p.items()}
        proj = lean.LeanProjection(pd["w"], lean.STDPParams(pd["a_plus"], pd["a_minus"], pd["tau_plus"], pd["tau_minus"]),
                                   alpha=pd["alpha"])
        H = torch.randn(b, n, n, device=device) * 0.01
        s_pre, s_post = x[0], x[1]
        tx, ty = torch.rand(b, n, device=device), torch.rand(b, n, device=device)
        inner = max(3, int(2e8 // (b * n * n * 8)))  # ~0.2 GB moved per timing
        for _ in range(3):
            lean.fused_stdp_step(H, s_pre, s_post, tx, ty, proj, backend=backend)
        best = float("inf")
        for _ in range(reps):
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(inner):
                lean.fused_stdp_step(H, s_pre, s_post, tx, ty, proj, backend=backend)
            _sync(device)
            best = min(best, (time.perf_counter() - t0) / inner)
    el = 4
    moved = 2 * b * n * n * el + 2 * n * n * el + 6 * b * n * el  # H r+w, alpha, w, vectors
    return best, moved


def _watchdog(cap_bytes: float) -> None:
    """Stop this process (exit code 3) if its RSS passes ``cap_bytes``: protects a shared machine."""
    import threading

    def run() -> None:
        while True:
            if status_bytes("VmRSS") > cap_bytes:
                print(json.dumps({"aborted": f"RSS passed {cap_bytes / 1e9:.1f} GB"}), flush=True)
                os._exit(3)
            time.sleep(0.1)

    threading.Thread(target=run, daemon=True).start()


def worker_time(cfg: dict[str, Any]) -> dict[str, Any]:
    from spikeplastic.surrogate import ATan

    n, t, b, dev, be = cfg["n"], cfg["t"], cfg["b"], cfg["device"], cfg["backend"]
    if dev == "cpu":
        _watchdog(cfg["cap_bytes"])
    spike = ATan()
    x, p, readout, target = make_problem(n, t, b, dev)
    lean_run = lambda x, p: lean_layer(x, p, spike, be)  # noqa: E731
    naive_run = lambda x, p: naive_layer(x, p, spike)  # noqa: E731
    res: dict[str, Any] = {}
    fwd_bwd(lean_run, x, p, readout, target)  # warm-up (compiles)
    runs = {"lean": lean_run} if cfg["skip_naive"] else {"lean": lean_run, "naive": naive_run}
    times: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    outs: dict[str, tuple] = {}
    for r in range(cfg["reps"]):  # interleaved, so both see the same machine load
        for k, f in runs.items():
            _sync(dev)
            w0, c0 = time.perf_counter(), time.process_time()
            S = fwd_bwd(f, x, p, readout, target)
            _sync(dev)
            times[k].append((time.perf_counter() - w0) / t * 1e3)
            cpu[k].append((time.process_time() - c0) / t * 1e3)
            if r == 0:
                outs[k] = (S, p["w"].grad.clone())
    if "naive" in outs:
        (Sl, gl), (Sn, gn) = outs["lean"], outs["naive"]
        res["spike_mismatch_fraction"] = float((Sl != Sn).float().mean())
        res["grad_w_rel_err"] = float((gl - gn).abs().max() / gn.abs().max())
    res["spike_rate"] = float(outs["lean"][0].mean())
    del outs
    for k in runs:
        pre = "" if k == "lean" else "naive_"
        res[pre + "ms_per_step"] = min(times[k])
        res[pre + "ms_per_step_median"] = statistics.median(times[k])
        res[pre + "cpu_ms_per_step"] = min(cpu[k])
    res["copy_gbps"] = copy_bandwidth(dev)
    ft, moved = fused_step_time(n, b, dev, be)
    res["fused_step_ms"] = ft * 1e3
    res["fused_step_bytes"] = moved
    res["roofline_fraction"] = moved / ft / (res["copy_gbps"] * 1e9)
    return res


def worker_mem(cfg: dict[str, Any]) -> dict[str, Any]:
    from spikeplastic.surrogate import ATan

    n, t, b, dev, be = cfg["n"], cfg["t"], cfg["b"], cfg["device"], cfg["backend"]
    if dev == "cpu":
        _watchdog(cfg["cap_bytes"])
    spike = ATan()
    out: dict[str, Any] = {}
    runs = [("lean", lambda x, p: lean_layer(x, p, spike, be))]
    if not cfg["skip_naive"]:
        runs.append(("naive", lambda x, p: naive_layer(x, p, spike)))
    # warm-up before measuring: the lean path on the full episode (compiles every kernel and shape
    # it will use, so no compiler memory lands in the figure), the naive one on a short episode
    x, p, readout, target = make_problem(n, t, b, dev)
    fwd_bwd(runs[0][1], x, p, readout, target)
    if len(runs) > 1:
        xw, pw, rw, tw = make_problem(n, 3, b, dev)
        fwd_bwd(runs[1][1], xw, pw, rw, tw)
        del xw, pw, rw, tw
    for v in p.values():
        v.grad = torch.zeros_like(v)  # gradient buffers exist before the baseline
    for k, f in runs:
        if dev == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fwd_bwd_keep_grads(f, x, p, readout, target)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
        else:
            base = reset_peak_rss()
            fwd_bwd_keep_grads(f, x, p, readout, target)
            peak = status_bytes("VmHWM") - base
        out[("" if k == "lean" else "naive_") + "peak_mb"] = peak / 2**20
    out["output_mb"] = t * b * n * 4 / 2**20  # the returned spike train, float32
    out["state_peak_mb"] = out["peak_mb"] - out["output_mb"]
    return out


def fwd_bwd_keep_grads(run, x, p, readout, target) -> None:
    for v in p.values():
        v.grad.zero_()
    S = run(x, p)
    loss = _loss(S, readout, target)
    del S
    loss.backward()


# ------------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------------
def _spawn(kind: str, cfg: dict[str, Any], threads: int | None, exact_alloc: bool = False) -> dict[str, Any]:
    r = spawn_worker(__file__, kind, cfg, threads, exact_alloc=kind == "mem" or exact_alloc)
    if r.returncode == 3 and kind == "time" and not exact_alloc:
        res = _spawn(kind, cfg, threads, exact_alloc=True)
        res["timing_allocator"] = "exact (mmap per tensor): the default allocator passed the RSS cap"
        return res
    if r.returncode == 3:
        return {"aborted": last_json(r.stdout)["aborted"]}
    if r.returncode != 0:
        raise RuntimeError(f"{kind} worker failed for {cfg}:\n{r.stderr[-3000:]}")
    return last_json(r.stdout)


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=256, B=16, T in {100, 1000}")
    ap.add_argument("--json", action="store_true", help="one JSON object per configuration")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--backend", default="auto", help="lean backend: auto | reference | inplace | compile")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per path (best is reported)")
    ap.add_argument("--mem-cap-gb", type=float, default=12.0,
                    help="skip the naive path where it would need more than this (or 60%% of MemAvailable)")
    ap.add_argument("--n", help="comma-separated N values (overrides the grid)")
    ap.add_argument("--t", help="comma-separated T values (overrides the grid)")
    ap.add_argument("--b", help="comma-separated B values (overrides the grid)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        serve_worker(a.worker, {"time": worker_time, "mem": worker_mem})
        return
    grid = dict(QUICK if a.quick else FULL)
    for key in ("n", "t", "b"):
        if getattr(a, key):
            grid[key] = [int(v) for v in getattr(a, key).split(",")]
    cap = min(a.mem_cap_gb * 1e9, 0.6 * _mem_available()) if a.device == "cpu" else a.mem_cap_gb * 1e9
    load = os.getloadavg()
    if not a.json:
        print(f"# {os.cpu_count()} CPUs, torch {torch.__version__}, threads {a.threads or torch.get_num_threads()}, "
              f"device {a.device}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, naive cap {cap / 1e9:.1f} GB")
        print(f"{'N':>5} {'T':>5} {'B':>3} | {'lean ms/step':>12} {'naive':>8} {'speedup':>7} | "
              f"{'lean MB':>8} {'naive MB':>9} {'ratio':>6} | {'fused ms':>8} {'roofline':>8}")
    for n in grid["n"]:
        for t in grid["t"]:
            for b in grid["b"]:
                est = NAIVE_H_PER_STEP * t * b * n * n * 4
                skip = est > cap
                cfg = {"n": n, "t": t, "b": b, "device": a.device, "backend": a.backend, "reps": a.reps,
                       "skip_naive": skip, "threads": a.threads, "cap_bytes": cap + 1.5e9}
                res = {"n": n, "t": t, "b": b, "backend": a.backend, "device": a.device,
                       "threads": a.threads or torch.get_num_threads(), "load_avg_1min": os.getloadavg()[0]}
                res["timing_allocator"] = "default"
                res.update(_spawn("time", cfg, a.threads))
                mem = _spawn("mem", cfg, a.threads)
                if "aborted" in mem:
                    raise RuntimeError(f"memory worker stopped for {cfg}: {mem['aborted']}")
                res.update(mem)
                if skip:
                    res.update(naive_ms_per_step=None, naive_peak_mb=None, speedup=None, mem_ratio=None,
                               naive_skipped=f"estimated {est / 1e9:.1f} GB > cap {cap / 1e9:.1f} GB")
                else:
                    res["speedup"] = res["naive_ms_per_step"] / res["ms_per_step"]
                    # below ~0.5 MiB the RSS method (4 KiB pages, allocator slack) cannot resolve the lean peak
                    res["mem_ratio"] = res["naive_peak_mb"] / res["peak_mb"] if res["peak_mb"] >= 0.5 else None
                if a.json:
                    print(json.dumps(res), flush=True)
                else:
                    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
                    print(f"{n:>5} {t:>5} {b:>3} | {res['ms_per_step']:>12.3f} {f(res['naive_ms_per_step'], '8.3f')} "
                          f"{f(res['speedup'], '7.1f')} | {res['peak_mb']:>8.1f} {f(res['naive_peak_mb'], '9.1f')} "
                          f"{f(res['mem_ratio'], '6.1f')} | {res['fused_step_ms']:>8.3f} {res['roofline_fraction']:>8.2f}",
                          flush=True)


if __name__ == "__main__":
    main()
