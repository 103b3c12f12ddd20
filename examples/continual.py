"""Continual learning on digits (issue 14): finetune, EWC, joint training and plastic learners.

Every method learns a sequence of tasks one after another and is scored on every task's test split after
each (accuracy matrix R, ACC, BWT, forgetting; ``spikeplastic.continual``). Writes results.json and
results.md into ``--out``.

    python examples/continual.py --quick                       # CI-sized: 3 tasks, 1 seed (< 30 s)
    python examples/continual.py                               # permuted digits, all methods, 3 seeds
    python examples/continual.py --task continual-digits --methods finetune ewc
"""
from __future__ import annotations

import argparse
import sys
import time

from spikeplastic.continual import CONTINUAL_TASKS, METHODS, QUICK, ContinualConfig, run_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="continual-permuted-digits", choices=list(CONTINUAL_TASKS))
    ap.add_argument("--methods", nargs="+", default=["all"], help=f"method ids {list(METHODS)} or all")
    ap.add_argument("--seeds", nargs="+", type=int, default=None, help="default 0 1 2 (--quick: 0)")
    ap.add_argument("--quick", action="store_true", help="CI-sized settings, one seed")
    ap.add_argument("--out", default="runs/continual")
    args = ap.parse_args()
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    methods = args.methods
    if args.quick and methods == ["all"]:
        methods = ["finetune", "ewc", "multitask", "rate-oja", "snn-stdp"]
    cfg = ContinualConfig(task=args.task, **(dict(QUICK) if args.quick else {}))
    t0 = time.perf_counter()
    res = run_benchmark(cfg, methods, seeds, args.out, log=lambda m: print(m, file=sys.stderr))
    for m, s in res["summary"].items():
        print(f"{m:16s} ACC {100 * s['acc']:5.1f}  forgetting {100 * s['forgetting']:5.1f}  params {s['params']}")
    print(f"{time.perf_counter() - t0:.1f} s; results in {args.out}")


if __name__ == "__main__":
    main()
