"""The e-prop outer loop (issue 13 item 3) against BPTT in the same run. Every result one JSON line on
stdout (``--json``) or a table row.

Parts (``--parts``, default all):
``train``   episodes/s of an outer step, e-prop (``outer="eprop"``: forward-mode eligibility traces, no
            backward pass through time) vs BPTT (``outer="bptt"``, the lean backward) on ``pattern50`` /
            ``snn-stdp``, batch 8, one thread (= per core).
``memory``  peak extra memory of one outer step vs the episode length T (``pattern50`` with longer gaps:
            ``gap_steps`` 45 / 495 / 4995 -> T = 99 / 999 / 9999), e-prop vs BPTT; each configuration in a
            fresh subprocess with the mmap-per-tensor allocator (``_mem.py``; the second step is
            measured, on an episode sampled before the peak counter is reset, so the task generator's
            transient copies are not counted). ``inputs_mb``: the episode's inputs ``[T, B, n_in]`` (float32;
            both loops, already allocated: only copies of them count); ``output_mb``: the outputs the loss reads (BPTT: all ``[T, B, n_out]``; e-prop: the
            last frame's); ``state_mb = peak_mb - output_mb``: what the outer loop itself keeps;
            ``eligibility_mb`` (e-prop): the bytes of its state between steps
            (:func:`spikeplastic.meta.eprop.eligibility_bytes`).
Timing: a warm-up step, then ``--reps`` rounds in which the two loops alternate (same machine load); best
and median reported.

Usage::

    python benchmarks/eprop.py [--parts train,memory] [--reps 5] [--json] [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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


# ---- train ---------------------------------------------------------------------------------------------------
def part_train(args: argparse.Namespace) -> None:
    from spikeplastic.meta import TrainConfig, Trainer
    from spikeplastic.meta.config import task_fields

    task, model, batch = "pattern50", "snn-stdp", 8
    steps = 2 if args.quick else 5
    extra = task_fields(task, model)
    trs = {k: Trainer(TrainConfig(task=task, model=model, batch=batch, lr=1e-3, progress=False, outer=k, **extra))
           for k in ("bptt", "eprop")}
    warm = {}
    for k, tr in trs.items():
        t0 = time.perf_counter()
        tr.step()
        warm[k] = time.perf_counter() - t0
    times: dict[str, list[float]] = {k: [] for k in trs}
    for _ in range(args.reps):
        for k, tr in trs.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                tr.step()
            times[k].append(time.perf_counter() - t0)
    rate = {k: batch * steps / min(v) for k, v in times.items()}
    for k in trs:
        emit({"bench": "train", "task": task, "model": model, "outer": k, "T": trs[k].task.T,
              "episodes_per_step": batch, "episodes_per_s": rate[k],
              "episodes_per_s_median": batch * steps / statistics.median(times[k]),
              "s_per_outer_step": min(times[k]) / steps, "first_step_s": warm[k],
              "eprop_vs_bptt": rate["eprop"] / rate["bptt"], "threads": torch.get_num_threads()})


# ---- memory ---------------------------------------------------------------------------------------------------
def worker_memory(cfg: dict[str, Any]) -> dict[str, Any]:
    from spikeplastic.meta import TrainConfig, Trainer

    tr = Trainer(TrainConfig(task="pattern50", model="snn-stdp", batch=cfg["batch"], lr=1e-3, progress=False,
                             clip=10.0, task_kwargs={"gap_steps": cfg["gap"]}, outer=cfg["outer"]))
    tr.step()  # allocate once
    # the measured step runs on an episode sampled beforehand: the figure is the outer loop's, not the
    # task generator's (whose sampling makes transient copies of the inputs)
    ep = tr.task.sample(cfg["batch"], tr.task_gen, tr.device)
    tr.task.sample = lambda *a, **k: ep  # type: ignore[method-assign]
    base = reset_peak_rss()
    t0 = time.perf_counter()
    tr.step()
    sec = time.perf_counter() - t0
    peak = status_bytes("VmHWM") - base
    task = tr.task
    inputs_mb = task.T * cfg["batch"] * task.n_in * 4 / 2**20
    # BPTT keeps every output [T, B, n_out] for the loss; e-prop (after a trainer's first step) the last one only
    output_mb = (task.T if cfg["outer"] == "bptt" else 1) * cfg["batch"] * task.n_out * 4 / 2**20
    res = {"T": task.T, "peak_mb": peak / 2**20, "inputs_mb": inputs_mb, "output_mb": output_mb, "step_s": sec}
    if cfg["outer"] == "eprop":
        from spikeplastic.meta.eprop import eprop_run

        seen: list[int] = []
        ep = task.sample(cfg["batch"], torch.Generator().manual_seed(0))
        eprop_run(tr.model, ep.inputs[:3], lambda t, y: None, state_bytes=seen)
        res["eligibility_mb"] = seen[-1] / 2**20
    return res


def part_memory(args: argparse.Namespace) -> None:
    plan = {"eprop": [45, 495] if args.quick else [45, 495, 4995],
            "bptt": [45, 495] if args.quick else [45, 495, 4995]}
    batch = 8
    for outer, gaps in plan.items():
        base = None
        for gap in gaps:
            cfg = {"outer": outer, "batch": batch, "gap": gap, "threads": 1}
            proc = spawn_worker(__file__, "memory", cfg, 1, exact_alloc=True)
            if proc.returncode != 0:
                emit({"bench": "memory", "outer": outer, "gap": gap, "error": proc.stderr[-300:]})
                continue
            res = last_json(proc.stdout)
            row = {"bench": "memory", "outer": outer, "batch": batch, **res,
                   "state_mb": res["peak_mb"] - res["output_mb"]}
            if base is None:
                base = row
            else:
                row["peak_vs_first"] = row["peak_mb"] / base["peak_mb"]
                row["state_vs_first"] = row["state_mb"] / base["state_mb"]
            emit(row)


def main() -> None:
    global EMIT_JSON
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="train,memory")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "CFG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        serve_worker(args.worker, {"memory": worker_memory})
        return
    EMIT_JSON = args.json
    torch.set_num_threads(args.threads)
    parts = {"train": part_train, "memory": part_memory}
    for p in args.parts.split(","):
        if not EMIT_JSON:
            print(f"[{p}]", flush=True)
        parts[p](args)


if __name__ == "__main__":
    main()
