"""Cue-reward association (Backpropamine, TASKS.md 5): modulated vs non-modulated plasticity (A2C).

Default: the reduced task ``cue-small`` (2 cues of 10 bits, 1 per trial, 60-step episodes,
32 hidden units, batch 16, lr 1e-3) that a 2-core CPU can meta-train: ``backpropamine``
(retroactive neuromodulation) and ``backpropamine-simple`` vs ``backpropamine-none`` (the same
clipped Hebbian plasticity without a modulator) and ``rnn`` (no plasticity), 7000 outer steps
x 3 seeds (45 minutes with ``--jobs 2`` on 2 cores). ``--task cue`` is the paper's task (4 cues,
2 per trial, 120 steps, 200 hidden units, batch 30, lr 1e-4, Simpson penalty): the original
trains it for 200 000 outer steps, at ~1-12 s each on this CPU. Metric: total reward per
episode (higher is better; chance 0).

    python examples/cue.py --jobs 2
    python examples/cue.py --jobs 2 --models backpropamine,backpropamine-none,rnn --episodes 14000 --resume
    python examples/cue.py --task cue --episodes 200000 --device cuda
    python examples/cue.py --quick
    python examples/cue.py --task cue-cpu --models backpropamine,backpropamine-none,rnn --episodes 5000

``cue-cpu`` (4 cues of 10 bits, 2 per trial, 80 steps, 32 units, the paper's loss settings) keeps
what ``cue-small`` removes: evidence from several trials must be combined.
"""
from __future__ import annotations

from _common import episodes, eval_episodes, parser

from spikeplastic.meta.compare import CompareConfig, compare


def main() -> None:
    ap = parser(__doc__, episodes=7000, quick_episodes=10, out="runs/cue")
    ap.add_argument("--task", default="cue-small", choices=["cue-small", "cue-cpu", "cue"])
    ap.add_argument("--models", default="backpropamine,backpropamine-simple,backpropamine-none,rnn")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=None, help="hidden units (default: 32 on cue-small and cue-cpu, 200 on cue)")
    ap.add_argument("--batch", type=int, default=None, help="episodes per outer step (default: per task)")
    ap.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: per task)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--resume", action="store_true", help="continue the runs under --out from their checkpoints")
    args = ap.parse_args()
    models = tuple(args.models.split(","))
    hidden = 8 if args.quick else args.hidden
    compare(CompareConfig(task=args.task, models=models, episodes=episodes(args), seeds=1 if args.quick else args.seeds,
                          lr=args.lr, batch=4 if args.quick else args.batch, out=args.out, jobs=args.jobs,
                          device=args.device, task_kwargs={"episode_steps": 20} if args.quick else {},
                          model_kwargs={m: {"n_hidden": hidden} for m in models} if hidden else {},
                          resume=args.resume, overwrite=args.overwrite, eval_episodes=eval_episodes(args),
                          progress=not args.no_progress))
    print(open(f"{args.out}/results.md").read())


if __name__ == "__main__":
    main()
