"""Natural-image memorisation and completion (Miconi et al. 2018, TASKS.md 2).

Episodes of 3 grayscale 32x32 patches (scikit-image's bundled images; ``--data`` for CIFAR-10),
each shown 3 times; then one with its top or bottom half zeroed. ``rate-hebb`` is the paper's
1025-unit plastic net with clamped inputs. Metric: relative squared error on the occluded half.

    python examples/images.py --quick
    python examples/images.py --episodes 2000 --models rate-hebb,rnn
"""
from __future__ import annotations

from _common import episodes, eval_episodes, parser

from spikeplastic.meta.compare import CompareConfig, compare


def main() -> None:
    ap = parser(__doc__, episodes=2000, quick_episodes=3, out="runs/images")
    ap.add_argument("--models", default="rate-hebb")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--data", default=None, help="CIFAR-10 folder (cifar-10-batches-py)")
    args = ap.parse_args()
    tk = {"cifar_root": args.data} if args.data else {}
    if args.quick:
        tk.update(patch_size=16, present_steps=4)
    compare(CompareConfig(task="images", models=tuple(args.models.split(",")), episodes=episodes(args),
                          seeds=args.seeds, out=args.out, task_kwargs=tk, progress=not args.no_progress,
                          overwrite=args.overwrite, eval_episodes=eval_episodes(args)))
    print(open(f"{args.out}/results.md").read())


if __name__ == "__main__":
    main()
