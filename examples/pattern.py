"""Binary pattern memorisation and completion (Miconi et al. 2018): 1000-bit patterns.

Trains ``rate-hebb`` (the paper's 1001-unit plastic RNN) on ``pattern`` and reports the first
episode whose trailing 10-episode mean bit error is below 1% (an earlier clean-room
re-implementation measured ~250-450 episodes at ~0.7 s/episode on a 2-core CPU: a measurement,
not the paper's figure; ours: examples/results/pattern/README.md).

    python examples/pattern.py                    # 500 episodes, seed 0 (~5 min on 2 free cores)
    python examples/pattern.py --quick            # 20 episodes
    python examples/pattern.py --model snn-stdp   # any registry id
"""
from __future__ import annotations

import time

from _common import episodes, parser, save_summary, trailing_first_below

from spikeplastic.meta import TrainConfig, train


def main() -> None:
    ap = parser(__doc__, episodes=500, quick_episodes=20, out="runs/pattern")
    ap.add_argument("--model", default="rate-hebb")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-4)
    args = ap.parse_args()
    n = episodes(args)
    cfg = TrainConfig(task="pattern", model=args.model, episodes=n, batch=1, lr=args.lr, seed=args.seed,
                      out=f"{args.out}/{args.model}-s{args.seed}", checkpoint_every=50, progress=not args.no_progress)
    t0 = time.perf_counter()
    res = train(cfg, overwrite=args.overwrite)
    secs = [r["seconds"] for r in res.history if r["phase"] == "train"]
    save_summary(cfg.out or args.out, {
        "task": "pattern", "model": args.model, "seed": args.seed, "episodes": n, "n_params": res.n_params,
        "first_episode_below_1pct_trailing10": trailing_first_below(res.history, 0.01),
        "final_bit_error_last10": res.final_metric, "seconds_per_episode": sum(secs) / len(secs),
        "wall_seconds": time.perf_counter() - t0,
    })


if __name__ == "__main__":
    main()
