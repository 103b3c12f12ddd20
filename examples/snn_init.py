"""Spiking models from the tuned and from the generic initialisation (docs/STABILITY.md), several
seeds, with a held-out evaluation of each run's final network.

Training goes through ``compare`` (one comparison per initialisation, resumable); then every run's
final checkpoint is evaluated with :func:`spikeplastic.meta.evaluate` on ``--eval-episodes``
episodes (default 512) of the task's test split (images: the held-out test images), drawn 64 at a
time from a generator that training never used, seeded 10**6 + run seed (the stream of this
example's earlier results; the library's default is run seed + 3_000_017). On the pattern tasks
every episode holds fresh random patterns, so these are patterns the network has never seen.

    python examples/snn_init.py                                   # pattern50, snn-stdp, 3000 outer steps x 3 seeds
    python examples/snn_init.py --task cue-small --model snn-stdp-mod --episodes 10000 --batch 16 --lr 1e-3
    python examples/snn_init.py --task images --task-kw patch_size=16 --episodes 3000 --batch 4 --lr 1e-3
    python examples/snn_init.py --quick
"""
from __future__ import annotations

import json
from pathlib import Path
from statistics import mean, median

from _common import episodes, parser

from spikeplastic.cli import parse_overrides
from spikeplastic.meta import evaluate
from spikeplastic.meta.compare import CompareConfig, compare, t_interval

HELD_OUT_SEED = 10**6
HELD_OUT_BATCH = 64


def held_out(ckpt: Path, n: int, seed: int, *, untrained: bool = False) -> float:
    """Mean metric of the run's final network on ``n`` held-out episodes (module docstring)
    (``untrained``: of the same run's initial network, as the trainer builds it from the seed)."""
    return evaluate(ckpt, episodes=n, seed=HELD_OUT_SEED + seed, batch=HELD_OUT_BATCH, untrained=untrained).mean


def grad_summary(run: Path) -> dict[str, float | int]:
    """Gradient norms (before clipping) over a run's logged outer steps, from its ``metrics.jsonl``."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    g = [float(r["grad_norm"]) for r in rows if r.get("phase", "train") == "train" and "grad_norm" in r]
    return {"steps": len(g), "median": median(g), "max": max(g), "above_1e3": sum(x > 1e3 for x in g),
            "above_1e4": sum(x > 1e4 for x in g), "above_1e6": sum(x > 1e6 for x in g),
            "skipped": sum(bool(r.get("skipped")) for r in rows)}


def main() -> None:
    ap = parser(__doc__, episodes=3000, quick_episodes=5, out="runs/snn_init")
    ap.add_argument("--task", default="pattern50")
    ap.add_argument("--model", default="snn-stdp")
    ap.add_argument("--inits", default="tuned,generic")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--lr-decay", type=float, default=1.0, help="lr factor every --lr-decay-every steps")
    ap.add_argument("--lr-decay-every", type=int, default=0, help="outer steps between lr decays (0: constant lr)")
    ap.add_argument("--resume", action="store_true", help="continue each comparison from its checkpoints")
    ap.add_argument("--task-kw", action="append", default=[], metavar="KEY=VALUE",
                    help="task config override, e.g. patch_size=16 (repeatable; values read as by the CLI)")
    args = ap.parse_args()
    task_kw = parse_overrides(args.task_kw, "--task-kw")
    n_eval = args.eval_episodes if args.eval_episodes is not None else 16 if args.quick else 512
    seeds = 1 if args.quick else args.seeds
    summary = {"task": args.task, "model": args.model, "episodes": episodes(args), "batch": args.batch,
               "lr": args.lr, "lr_decay": args.lr_decay, "lr_decay_every": args.lr_decay_every, "seeds": seeds, "held_out_episodes": n_eval, "task_kw": task_kw, "inits": {}}
    for init in args.inits.split(","):
        out = Path(args.out) / init
        compare(CompareConfig(task=args.task, models=(args.model,), episodes=episodes(args), seeds=seeds,
                              lr=args.lr, batch=args.batch, out=str(out), jobs=args.jobs, task_kwargs=task_kw,
                              model_kwargs={args.model: {"init": init}}, progress=not args.no_progress,
                              resume=args.resume, overwrite=args.overwrite, eval_episodes=0,
                              train_overrides={"lr_decay": args.lr_decay, "lr_decay_every": args.lr_decay_every}
                              if args.lr_decay_every else {}))
        ckpts = [out / "runs" / args.model / f"seed{s}" / "checkpoint.pt" for s in range(seeds)]
        per_seed = [held_out(c, n_eval, s) for s, c in enumerate(ckpts)]
        untrained = [held_out(c, n_eval, s, untrained=True) for s, c in enumerate(ckpts)]
        _, ci = t_interval(per_seed)  # Student-t 95% half-width over seeds (NaN for one seed)
        summary["inits"][init] = {"held_out_per_seed": per_seed, "mean": mean(per_seed), "ci95": ci,
                                  "ci_method": "student t over seeds",
                                  "median": median(per_seed), "untrained_per_seed": untrained,
                                  "untrained_mean": mean(untrained),
                                  "grad_norm_per_seed": [grad_summary(c.parent) for c in ckpts]}
        print(f"{args.model} on {args.task}, init={init}: held-out metric {mean(per_seed):.4f} +- {ci:.4f} (t95) "
              f"(per seed {', '.join(f'{v:.4f}' for v in per_seed)}); untrained {mean(untrained):.4f}", flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "held_out.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
