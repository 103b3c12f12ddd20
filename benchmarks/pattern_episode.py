"""``rate-hebb`` on the 1000-bit pattern task: the lean path against the naive formulation.

Model: ``PlasticRNN(1000, bias_unit=True)`` (N = 1001 units, plain Hebb with learned eta,
per-synapse alpha), task ``PATTERN`` (T = 106), Adam lr 3e-4, one episode per step -- the
settings of docs/TASKS.md. The naive formulation is the model's own ``forward`` with
``lean="off"`` (plain per-step autograd); the lean one is ``spikeplastic.baselines.lean_rnn.LeanPlasticRNN`` around an identically initialised
copy. Both train on the same episodes (same seed). Reported:

    s_per_episode        forward + backward + Adam step, best of the timed episodes (wall clock)
    peak_mb              peak extra memory of one training episode (same method as plastic_step.py:
                         fresh subprocess, mmap-per-tensor allocator, reset peak RSS, VmHWM - VmRSS)
    loss curves          per-episode loss of both runs and their largest relative difference

Usage::

    python benchmarks/pattern_episode.py [--episodes 8] [--json] [--threads K] [--backend auto]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from typing import Any

import torch
from _mem import last_json, reset_peak_rss, serve_worker, spawn_worker, status_bytes


def _setup(kind: str, backend: str, seed: int = 0):
    from spikeplastic.baselines import lean_rnn
    from spikeplastic.baselines import PlasticRNN
    from spikeplastic.tasks.pattern import PATTERN, PatternTask

    torch.manual_seed(seed)
    model = PlasticRNN(PATTERN.n_bits, bias_unit=True)  # N = 1001 with the bias unit
    model.lean = "off"  # the naive formulation: the per-step loop (the default "auto" would dispatch to lean)
    run = model if kind == "naive" else lean_rnn.LeanPlasticRNN(copy.deepcopy(model), backend=backend)
    opt = torch.optim.Adam(run.parameters(), lr=3e-4)
    return PatternTask(PATTERN), run, opt


def _episode(task, run, opt, gen) -> float:
    ep = task.sample(1, gen)
    opt.zero_grad(set_to_none=False)
    out, _ = run(ep.inputs)
    loss = task.loss(out, ep)
    loss.backward()
    opt.step()
    return float(loss.detach())


def worker_train(cfg: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for kind in ("lean", "naive"):
        task, run, opt = _setup(kind, cfg["backend"])
        gen = torch.Generator().manual_seed(1)
        losses, times = [], []
        for _ in range(cfg["episodes"]):
            t0 = time.perf_counter()
            losses.append(_episode(task, run, opt, gen))
            times.append(time.perf_counter() - t0)
        res[kind] = {"losses": losses, "times": times[1:]}  # the first episode compiles / warms up
    return res


def worker_mem(cfg: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for kind in ("lean", "naive"):
        task, run, opt = _setup(kind, cfg["backend"])
        gen = torch.Generator().manual_seed(1)
        _episode(task, run, opt, gen)  # warm-up: compiles, creates Adam state and .grad buffers
        base = reset_peak_rss()
        _episode(task, run, opt, gen)
        out[kind] = (status_bytes("VmHWM") - base) / 2**20
        del task, run, opt
    return out


def _spawn(kind: str, cfg: dict[str, Any], threads: int | None) -> dict[str, Any]:
    r = spawn_worker(__file__, kind, cfg, threads, exact_alloc=kind == "mem")
    if r.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{r.stderr[-3000:]}")
    return last_json(r.stdout)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=8, help="training episodes per path (first one is warm-up)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        serve_worker(a.worker, {"train": worker_train, "mem": worker_mem})
        return
    if a.episodes < 2:
        raise SystemExit("--episodes must be >= 2 (the first one is a warm-up)")
    cfg = {"episodes": a.episodes, "backend": a.backend, "threads": a.threads}
    load = os.getloadavg()[0]
    tr = _spawn("train", cfg, a.threads)
    mem = _spawn("mem", cfg, a.threads)
    ll, ln = tr["lean"]["losses"], tr["naive"]["losses"]
    rel = [abs(x - y) / max(abs(y), 1e-12) for x, y in zip(ll, ln)]
    res = {
        "task": "pattern (1000 bits, T=106)", "model": "rate-hebb PlasticRNN(1000, bias_unit=True)",
        "backend": a.backend, "threads": a.threads or torch.get_num_threads(), "load_avg_1min": load,
        "s_per_episode": min(tr["lean"]["times"]), "naive_s_per_episode": min(tr["naive"]["times"]),
        "s_per_episode_median": statistics.median(tr["lean"]["times"]),
        "naive_s_per_episode_median": statistics.median(tr["naive"]["times"]),
        "peak_mb": mem["lean"], "naive_peak_mb": mem["naive"],
        "losses": ll, "naive_losses": ln, "max_loss_rel_diff": max(rel),
        "episode_s": tr["lean"]["times"], "naive_episode_s": tr["naive"]["times"],
    }
    res["time_ratio"] = res["s_per_episode"] / res["naive_s_per_episode"]
    res["mem_ratio"] = res["peak_mb"] / res["naive_peak_mb"]
    if a.json:
        print(json.dumps(res))
        return
    print(f"# {res['model']} on {res['task']}; backend {a.backend}, threads {res['threads']}, load {load:.2f}")
    print(f"{'':8s} {'s/episode':>10s} {'median':>8s} {'peak MB':>9s}")
    print(f"{'lean':8s} {res['s_per_episode']:>10.3f} {res['s_per_episode_median']:>8.3f} {res['peak_mb']:>9.1f}")
    print(f"{'naive':8s} {res['naive_s_per_episode']:>10.3f} {res['naive_s_per_episode_median']:>8.3f} "
          f"{res['naive_peak_mb']:>9.1f}")
    print(f"time ratio {res['time_ratio']:.2f}   memory ratio {res['mem_ratio']:.3f}")
    print("loss per episode  lean : " + " ".join(f"{v:.4f}" for v in ll))
    print("                  naive: " + " ".join(f"{v:.4f}" for v in ln))
    print(f"largest relative loss difference {res['max_loss_rel_diff']:.2e}")


if __name__ == "__main__":
    main()
