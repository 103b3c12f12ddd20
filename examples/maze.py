"""Maze exploration (Miconi et al. 2018 / Backpropamine, TASKS.md 4), trained with A2C.

Default: ``rate-oja`` vs ``rnn`` on the 2018 9x9 maze with its preset (250-step episodes, batch 1,
200 hidden units; docs/REPRODUCTION.md), which takes hours on a CPU; ``--quick`` runs a 5-episode
smoke test. ``--task maze13`` is the Backpropamine maze (parameter-matched nets, batch 30: a GPU
task); ``maze-cpu`` / ``maze13-cpu`` are their CPU reductions. Batch and sizes are the task's unless
``--batch`` / ``--hidden`` are given. Metric: total reward per episode (higher is better).

    python examples/maze.py --quick
    python examples/maze.py --models backpropamine,backpropamine-none,rnn --task maze13-cpu --episodes 2000
"""
from __future__ import annotations

from _common import episodes, eval_episodes, parser

from spikeplastic.meta.compare import CompareConfig, compare


def main() -> None:
    ap = parser(__doc__, episodes=3000, quick_episodes=5, out="runs/maze")
    ap.add_argument("--task", default="maze", choices=["maze", "maze13", "maze-cpu", "maze13-cpu"])
    ap.add_argument("--models", default="rate-oja,rnn")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="episodes per outer step (default: the task's)")
    ap.add_argument("--hidden", type=int, default=None, help="hidden units of every model (default: the task's)")
    args = ap.parse_args()
    models = tuple(args.models.split(","))
    quick = {"episode_steps": 50} if args.quick else {}
    hidden = 16 if args.quick else args.hidden
    compare(CompareConfig(task=args.task, models=models, episodes=episodes(args),
                          seeds=1 if args.quick else args.seeds, batch=4 if args.quick else args.batch,
                          out=args.out, task_kwargs=quick,
                          model_kwargs={m: {"n_hidden": hidden} for m in models} if hidden else {},
                          progress=not args.no_progress, overwrite=args.overwrite, eval_episodes=eval_episodes(args)))
    print(open(f"{args.out}/results.md").read())


if __name__ == "__main__":
    main()
