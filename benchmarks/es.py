"""The fast no-grad forward and the ES outer loop (issue 13), each against its reference in the same run.

Parts (``--parts``, default all), every result one JSON line on stdout (``--json``) or a table row:

``forward``  steps/s of the demo network (``snn-stdp`` on ``pattern50``: 50 LIF neurons, plastic recurrent
             pair STDP with per-synapse alpha; its task inputs encoded as the model encodes them):
             Lava's CPU simulator (``to_lava(mode="float")``, one long run, compilation excluded), the
             core ``Network.forward`` under ``no_grad`` (the naive reference), and the fused no-grad forward
             (``spikeplastic.lean.population``, backends ``inplace`` and ``compile``) at B = 1 and B = 64, and
             a population of P members x B episodes. steps/s = episode-steps per second (B episodes of
             T steps in t seconds: B*T/t). Ratios: ``vs_lava``, ``vs_network_same_B_T`` (Network.forward
             on the same inputs), ``vs_network_b64_episode`` (Network.forward on 64 episodes of T = 11).
``train``    episodes/s of an outer step, ES (``outer="es"``: P members x B episodes, forward only) vs
             BPTT (``outer="bptt"``, the lean backward where the model has it) on ``pattern50`` /
             ``snn-stdp`` and ``cue-small`` / ``snn-stdp-mod``, one thread (= per core).
``memory``   peak extra memory of one outer step vs the episode length T (``pattern50`` with longer gaps),
             ES vs BPTT; each configuration in a fresh subprocess with the mmap-per-tensor allocator
             (``_mem.py``; the second step is measured, so compilation is excluded). ``output_mb``: the
             model outputs ``[T, (P,) B, n_out]`` the task's loss reads (float32), ``state_mb = peak_mb -
             output_mb``: what the outer loop itself keeps.

Timing: a warm-up (compiles), then ``--reps`` rounds in which the implementations alternate (same
machine load); best and median reported.

Usage::

    python benchmarks/es.py [--parts forward,train,memory] [--reps 5] [--json] [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _mem import last_json, reset_peak_rss, serve_worker, spawn_worker, status_bytes  # noqa: E402

EMIT_JSON = False


def emit(row: dict[str, Any]) -> None:
    if EMIT_JSON:
        print(json.dumps(row), flush=True)
    else:
        print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              flush=True)


def _demo(seed: int = 0) -> tuple[Any, Any]:
    from spikeplastic.models import make_model
    from spikeplastic.tasks import make_task

    task = make_task("pattern50")
    torch.manual_seed(seed)
    return task, make_model("snn-stdp", task)


def _encoded(task: Any, model: Any, episodes: int, batch: int, seed: int = 1) -> torch.Tensor:
    """``episodes`` task episodes per batch element, back to back, encoded: ``[episodes*T, batch, n_in]``."""
    g = torch.Generator().manual_seed(seed)
    eps = [model._encode_frames(task.sample(batch, g).inputs) for _ in range(episodes)]
    return torch.cat(eps)


def _time(fns: dict[str, Callable[[], Any]], reps: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            out[k].append(time.perf_counter() - t0)
    return out


# ---- forward ------------------------------------------------------------------------------------------------
def part_forward(args: argparse.Namespace) -> None:
    from spikeplastic.lean.population import PopulationRun, network_spec, network_values, nograd_forward, stack_values

    task, model = _demo()
    net = model.network
    T_long = 110 if args.quick else 1100
    x1 = _encoded(task, model, T_long // task.T, 1)              # one long run, B = 1
    x64 = _encoded(task, model, 1, 64)                            # 64 episodes of T = 11
    rows = []
    lava_sps = None
    if not args.no_lava:
        try:
            from spikeplastic.export import to_lava

            lnet = to_lava(net.to_ir(), mode="float")
            lnet.run(x1[:20, 0].double().numpy())  # warm-up (Lava's own compilation of the process models)
            recs = [lnet.run(x1[:, 0].double().numpy()) for _ in range(max(1, args.reps // 2))]
            sps = [r.steps_per_s for r in recs]
            lava_sps = max(sps)
            rows.append({"bench": "forward", "impl": "lava-cpu-float", "B": 1, "P": 1, "T": x1.shape[0],
                         "steps_per_s": lava_sps, "steps_per_s_median": statistics.median(sps),
                         "compile_s": recs[0].compile_s})
        except Exception as e:  # Lava missing or failing: report it and go on
            rows.append({"bench": "forward", "impl": "lava-cpu-float", "error": f"{type(e).__name__}: {e}"[:300]})
    spec = network_spec(net)
    vals = network_values(net, spec)
    P, Bp = (8, 4) if args.quick else (32, 8)
    xp = _encoded(task, model, 1, Bp)
    gen = torch.Generator().manual_seed(2)
    members = []
    for _ in range(P):  # members with perturbed values (as ES makes them)
        members.append(network_values(net, spec))
    pvals = stack_values(members)
    pvals = pvals._replace(proj=tuple(pv._replace(w=pv.w + 0.02 * torch.randn(pv.w.shape, generator=gen))
                                      for pv in pvals.proj))

    def pop_run(backend: str) -> Callable[[], Any]:
        return lambda: PopulationRun(spec, pvals, Bp, backend=backend).run(xp)

    x64l = _encoded(task, model, 10, 64)                          # 64 x 10 episodes back to back
    runs = {  # name: (inputs, members, batch)
        "B=1 T=%d" % x1.shape[0]: x1, "B=64 T=%d" % x64.shape[0]: x64, "B=64 T=%d" % x64l.shape[0]: x64l,
    }
    with torch.no_grad():
        fns: dict[str, tuple[Callable[[], Any], int, int, int]] = {}
        for tag, x in runs.items():
            fns[f"network-forward {tag}"] = (lambda x=x: net(x), x.shape[1], 1, x.shape[0])
            for be in ("inplace", "compile"):
                fns[f"fused-{be} {tag}"] = (lambda x=x, be=be: nograd_forward(net, x, backend=be), x.shape[1], 1,
                                            x.shape[0])
        for be in ("inplace", "compile"):
            fns[f"population-{be} P={P} B={Bp} T={xp.shape[0]}"] = (pop_run(be), Bp, P, xp.shape[0])
        warm = {}
        for k, (f, *_rest) in fns.items():  # warm-up: compile (timed: it is a cost too)
            t0 = time.perf_counter()
            f()
            warm[k] = time.perf_counter() - t0
        times = _time({k: v[0] for k, v in fns.items()}, args.reps)
    base: dict[tuple[int, int], float] = {}
    for k, (_, B, Pm, T) in fns.items():
        best, med = min(times[k]), statistics.median(times[k])
        sps = B * Pm * T / best
        if k.startswith("network-forward"):
            base[(B, T)] = sps
        rows.append({"bench": "forward", "impl": k.split(" ")[0], "B": B, "P": Pm, "T": T, "steps_per_s": sps,
                     "steps_per_s_median": B * Pm * T / med, "us_per_step": best / T * 1e6,
                     "first_call_s": warm[k]})
    b64 = base.get((64, x64.shape[0]))
    for r in rows:
        if "steps_per_s" in r:
            if lava_sps:
                r["vs_lava"] = r["steps_per_s"] / lava_sps
            if (r["B"], r["T"]) in base and r["P"] == 1:
                r["vs_network_same_B_T"] = r["steps_per_s"] / base[(r["B"], r["T"])]
            if b64:
                r["vs_network_b64_episode"] = r["steps_per_s"] / b64
        r["threads"] = torch.get_num_threads()
        emit(r)


# ---- train ---------------------------------------------------------------------------------------------------
def part_train(args: argparse.Namespace) -> None:
    from spikeplastic.meta import TrainConfig, Trainer
    from spikeplastic.meta.config import task_fields

    cases = [("pattern50", "snn-stdp", 8, 8), ("cue-small", "snn-stdp-mod", 16, 16)]
    P = 8 if args.quick else 32
    steps = 2 if args.quick else 5
    for task, model, b_bptt, b_es in cases:
        extra = task_fields(task, model)
        trs = {
            "bptt": Trainer(TrainConfig(task=task, model=model, batch=b_bptt, lr=1e-3, progress=False, **extra)),
            "es": Trainer(TrainConfig(task=task, model=model, batch=b_es, lr=1e-3, progress=False, outer="es",
                                      es_population=P, **extra)),
        }
        eps = {"bptt": b_bptt, "es": P * b_es}
        warm = {}
        for k, tr in trs.items():
            t0 = time.perf_counter()
            tr.step()
            warm[k] = time.perf_counter() - t0
        times = _time({k: (lambda tr=tr: [tr.step() for _ in range(steps)]) for k, tr in trs.items()}, args.reps)
        rate = {k: eps[k] * steps / min(v) for k, v in times.items()}
        for k in trs:
            emit({"bench": "train", "task": task, "model": model, "outer": k, "episodes_per_step": eps[k],
                  "episodes_per_s": rate[k], "episodes_per_s_median": eps[k] * steps / statistics.median(times[k]),
                  "s_per_outer_step": min(times[k]) / steps, "first_step_s": warm[k],
                  "es_vs_bptt": rate["es"] / rate["bptt"], "threads": torch.get_num_threads()})


# ---- memory ---------------------------------------------------------------------------------------------------
def worker_memory(cfg: dict[str, Any]) -> dict[str, Any]:
    from spikeplastic.meta import TrainConfig, Trainer

    kw = dict(task="pattern50", model="snn-stdp", batch=cfg["batch"], lr=1e-3, progress=False, clip=10.0,
              task_kwargs={"gap_steps": cfg["gap"]})
    if cfg["outer"] == "es":
        kw.update(outer="es", es_population=cfg["P"])
    tr = Trainer(TrainConfig(**kw))
    tr.step()  # compile and allocate once
    base = reset_peak_rss()
    tr.step()
    peak = status_bytes("VmHWM") - base
    # the outputs the task's loss reads, [T, (P,) B, n_out] float32: both outer loops hold them
    members = cfg["P"] if cfg["outer"] == "es" else 1
    out_mb = tr.task.T * members * cfg["batch"] * tr.task.n_out * 4 / 2**20
    return {"T": tr.task.T, "peak_mb": peak / 2**20, "output_mb": out_mb}


def part_memory(args: argparse.Namespace) -> None:
    gaps = [1, 48] if args.quick else [1, 48, 498]
    P = 8 if args.quick else 32
    for outer, batch in (("bptt", 8), ("es", 8)):
        for gap in gaps:
            cfg = {"outer": outer, "batch": batch, "gap": gap, "P": P, "threads": 1}
            proc = spawn_worker(__file__, "memory", cfg, 1, exact_alloc=True)
            if proc.returncode != 0:
                emit({"bench": "memory", "outer": outer, "gap": gap, "error": proc.stderr[-300:]})
                continue
            res = last_json(proc.stdout)
            emit({"bench": "memory", "outer": outer, "episodes_per_step": batch * (P if outer == "es" else 1),
                  "T": res["T"], "peak_mb": res["peak_mb"], "output_mb": res["output_mb"],
                  "state_mb": res["peak_mb"] - res["output_mb"]})


def main() -> None:
    global EMIT_JSON
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="forward,train,memory")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--no-lava", action="store_true")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "CFG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        serve_worker(args.worker, {"memory": worker_memory})
        return
    EMIT_JSON = args.json
    torch.set_num_threads(args.threads)
    parts = {"forward": part_forward, "train": part_train, "memory": part_memory}
    for p in args.parts.split(","):
        if not EMIT_JSON:
            print(f"[{p}]", flush=True)
        parts[p](args)


if __name__ == "__main__":
    main()
