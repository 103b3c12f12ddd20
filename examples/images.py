"""Natural-image memorisation and completion (Miconi et al. 2018, TASKS.md 2).

Episodes of 3 grayscale patches (scikit-image's bundled images, test images held out by source;
``--data`` for CIFAR-10), each shown 3 times; then one with its top or bottom half zeroed.
``rate-hebb`` is the paper's plastic net with clamped inputs (per-synapse alpha),
``rate-hebb-shared`` its shared-alpha control, ``rnn`` the same net with plasticity off. Default
task ``images-cpu`` (16x16 patches, lr 1e-3: the CPU reduction); ``--task images`` is the paper's
(32x32, lr 1e-4). Metric: squared error on the occluded half relative to the image's energy
(outputting 0 there: about 1).

    python examples/images.py --quick
    python examples/images.py --episodes 2000            # examples/results/images/
"""
from __future__ import annotations

from _common import episodes, eval_episodes, parser

from spikeplastic.meta.compare import CompareConfig, compare


def main() -> None:
    ap = parser(__doc__, episodes=2000, quick_episodes=3, out="runs/images")
    ap.add_argument("--task", default="images-cpu", choices=["images-cpu", "images"])
    ap.add_argument("--models", default="rate-hebb,rate-hebb-shared,rnn")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data", default=None, help="CIFAR-10 folder (cifar-10-batches-py)")
    args = ap.parse_args()
    tk = {"cifar_root": args.data} if args.data else {}
    if args.quick:
        tk.update(patch_size=8, present_steps=4)
    compare(CompareConfig(task=args.task, models=tuple(args.models.split(",")), episodes=episodes(args),
                          seeds=1 if args.quick else args.seeds, out=args.out, task_kwargs=tk, progress=not args.no_progress,
                          overwrite=args.overwrite, eval_episodes=eval_episodes(args)))
    print(open(f"{args.out}/results.md").read())


if __name__ == "__main__":
    main()
