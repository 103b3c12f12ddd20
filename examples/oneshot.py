"""One-shot classification, 5-way 1-shot (Miconi et al. 2018, TASKS.md 3).

``rate-oja`` is the paper's conv net with a plastic Oja readout. Without ``--data`` the task uses
scikit-learn's digits (5 train and 5 test classes, drawn by the run's seed); with ``--data`` an
Omniglot folder (``images_background``/``images_evaluation``; 100 test classes drawn by the run's
seed). Metric: query accuracy; results.md shows it on the training batches and held out (1000 test
episodes per run, Wilson binomial CI for one run, t-interval over seeds).

    python examples/oneshot.py --quick
    python examples/oneshot.py --episodes 5000 --data ~/omniglot
    spikeplastic make-omniglot data/synth && python examples/oneshot.py --data data/synth   # synthetic stand-in
"""
from __future__ import annotations

from _common import episodes, eval_episodes, parser

from spikeplastic.meta.compare import CompareConfig, compare


def main() -> None:
    ap = parser(__doc__, episodes=3000, quick_episodes=5, out="runs/oneshot")
    ap.add_argument("--models", default="rate-oja")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--data", default=None, help="Omniglot root folder")
    args = ap.parse_args()
    tk = {"root": args.data} if args.data else {}
    compare(CompareConfig(task="oneshot", models=tuple(args.models.split(",")), episodes=episodes(args),
                          seeds=args.seeds, out=args.out, task_kwargs=tk, progress=not args.no_progress,
                          overwrite=args.overwrite, eval_episodes=eval_episodes(args),
                          train_overrides={"eval_every": max(1, episodes(args) // 20), "eval_batch": 100}))
    print(open(f"{args.out}/results.md").read())


if __name__ == "__main__":
    main()
