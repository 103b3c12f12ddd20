"""Maze exploration (Miconi et al. 2018 / Backpropamine, TASKS.md 4), trained with A2C.

Default: ``rate-oja`` vs ``rnn`` on the 9x9 maze (250-step episodes, batch 30, 200 hidden units),
which takes hours on a CPU; ``--quick`` runs a 5-episode smoke test. Metric: total reward per
episode (higher is better).

    python examples/maze.py --quick
    python examples/maze.py --models backpropamine,rnn --task maze13 --episodes 2000 --seeds 3
"""
from __future__ import annotations

from _common import episodes, eval_episodes, parser

from spikeplastic.meta.compare import CompareConfig, compare


def main() -> None:
    ap = parser(__doc__, episodes=3000, quick_episodes=5, out="runs/maze")
    ap.add_argument("--task", default="maze", choices=["maze", "maze13"])
    ap.add_argument("--models", default="rate-oja,rnn")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=200)
    args = ap.parse_args()
    models = tuple(args.models.split(","))
    quick = {"episode_steps": 50} if args.quick else {}
    compare(CompareConfig(task=args.task, models=models, episodes=episodes(args),
                          seeds=1 if args.quick else args.seeds, batch=4 if args.quick else args.batch,
                          out=args.out, task_kwargs=quick,
                          model_kwargs={m: {"n_hidden": 16 if args.quick else args.hidden} for m in models},
                          progress=not args.no_progress, overwrite=args.overwrite, eval_episodes=eval_episodes(args)))
    print(open(f"{args.out}/results.md").read())


if __name__ == "__main__":
    main()
