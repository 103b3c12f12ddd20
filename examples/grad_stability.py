"""Why ``snn-stdp``'s BPTT exploded on long episodes, measured (docs/STABILITY.md).

One outer step (gradient norm before clipping, seed 0) of ``snn-stdp`` with the exact surrogate
gradient through the STDP update (``rule_input_grad=True``, the old default) and with the rule's
inputs treated as constants in the backward pass (``rule_input_grad=False``, the new default):

1. against episode length on ``cue`` (the loop compounds with every step);
2. with the loop cut or weakened in other ways at a fixed length (what the cause is);
3. on the presets of the long tasks (``cue``, ``maze``, ``images``);
4. the cosine between the two gradients where the exact one is finite (what cutting costs).

    python examples/grad_stability.py [--out examples/results/grad_stability] [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from spikeplastic.meta.config import TrainConfig, recommended
from spikeplastic.meta.trainer import Trainer
from spikeplastic.surrogate import surrogate


def grads(task: str, *, batch: int, task_kw: dict[str, Any] | None = None, model_kw: dict[str, Any] | None = None,
          spike_fn: Any = None, seed: int = 0) -> dict[str, torch.Tensor]:
    rec = recommended(task)
    rec.pop("lr", None)
    rec["batch"] = batch
    cfg = TrainConfig(task=task, model="snn-stdp", episodes=1, seed=seed, task_kwargs=task_kw or {},
                      model_kwargs=model_kw or {}, progress=False, **rec)  # type: ignore[arg-type]
    tr = Trainer(cfg)
    if spike_fn is not None:
        tr.model.network.pops["hidden"].spike_fn = spike_fn
    res = tr._run_batch(cfg.batch, tr.task_gen, tr.action_gen, None)
    res.loss.backward()
    return {n: p.grad.detach().clone() for n, p in tr.model.named_parameters() if p.grad is not None}


def norm(g: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(v.double().pow(2).sum()) for v in g.values()))


def cosine(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    fa = torch.cat([a[k].flatten().double() for k in a])
    fb = torch.cat([b[k].flatten().double() for k in a])
    return float(torch.nn.functional.cosine_similarity(fa, fb, 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="examples/results/grad_stability")
    ap.add_argument("--quick", action="store_true", help="short episodes only (CI)")
    ap.add_argument("--no-progress", action="store_true", help="(accepted for the examples' common flags; nothing to show)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []

    def row(section: str, label: str, **kw: Any) -> None:
        t0 = time.perf_counter()
        mk = kw.pop("model_kw", {})
        full = norm(grads(model_kw=dict(mk, rule_input_grad=True), **kw))
        cut = norm(grads(model_kw=dict(mk, rule_input_grad=False), **kw))
        r = {"section": section, "case": label, "exact": full, "rule_input_grad_false": cut,
             "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(r)
        print(f"{section:8s} {label:42s} exact {full:10.3e}   cut {cut:10.3e}", flush=True)

    lengths = (15, 30) if args.quick else (15, 30, 60, 120)
    for T in lengths:
        row("length", f"cue, T={T} task steps ({2 * T} spiking)", task="cue", batch=4, task_kw={"episode_steps": T})
    T = 30 if args.quick else 60
    base = {"task": "cue", "batch": 4, "task_kw": {"episode_steps": T}}
    causes = [
        ("decay 0.01 -> 0.2 (shorter plastic memory)", {"model_kw": {"decay": 0.2}}),
        ("alpha_init 0.05 -> 0.005", {"model_kw": {"alpha_init": 0.005}}),
        ("surrogate atan(alpha=2) -> atan(alpha=0.6), wider", {"spike_fn": surrogate("atan", alpha=0.6)}),
        ("surrogate atan -> fast_sigmoid(25), narrow", {"spike_fn": surrogate("fast_sigmoid")}),
    ]
    for label, extra in causes[:1] if args.quick else causes:
        row("cause", f"cue T={T}: {label}", **base, **extra)
    if not args.quick:
        for task, batch in (("cue", 30), ("maze", 30), ("images", 1)):
            row("preset", f"{task} preset (batch {batch})", task=task, batch=batch)
    cos = []
    cos_tasks = (("pattern50", {}), ("cue", {"episode_steps": 15}), ("cue-small", {}))
    for task, kw in cos_tasks[:1] if args.quick else cos_tasks:
        a = grads(task, batch=4, task_kw=kw, model_kw={"rule_input_grad": True}, seed=1)
        b = grads(task, batch=4, task_kw=kw, model_kw={"rule_input_grad": False}, seed=1)
        c = {"task": task, "task_kw": kw, "cosine": cosine(a, b), "exact": norm(a), "rule_input_grad_false": norm(b)}
        cos.append(c)
        print(f"cosine   {task:10s} {json.dumps(kw):24s} {c['cosine']:.3f}  (|exact| {c['exact']:.3g}, |cut| {c['rule_input_grad_false']:.3g})", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("results_quick.json" if args.quick else "results.json")).write_text(
        json.dumps({"rows": rows, "cosine": cos, "torch": torch.__version__}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
