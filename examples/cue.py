"""Cue-reward association (Backpropamine, TASKS.md 5): modulated vs non-modulated plasticity (A2C).

Default comparison: ``backpropamine`` (retroactive neuromodulation) vs ``backpropamine-none``
(the same clipped Hebbian plasticity without a modulator) and ``rnn``, over 3 seeds. The paper's
setting (200 hidden units, batch 30, 120-step episodes) costs ~1 s per outer step on a 2-core
CPU and needs many thousands of steps; the defaults here are a reduced budget (``--hidden``,
``--batch``, ``--steps`` to change). Metric: total reward per episode (higher is better).
As in the original runs (``sr/srbatch.py``): gradient-norm clip 2.0, and the plastic models'
``eta`` starts at 0.1.

    python examples/cue.py                    # 32 hidden, batch 8, 40-step episodes, 800 episodes x 3 seeds
    python examples/cue.py --models snn-stdp-mod,snn-stdp
    python examples/cue.py --quick
"""
from __future__ import annotations

from _common import episodes, parser

from spikeplastic.meta.compare import CompareConfig, compare

#: the original cue-reward runs initialise eta / etaet at 0.1 (the models' default is 0.01)
_ETA = {"backpropamine": {"eta_init": 0.1}, "backpropamine-none": {"eta_init": 0.1}}


def main() -> None:
    ap = parser(__doc__, episodes=800, quick_episodes=10, out="runs/cue")
    ap.add_argument("--models", default="backpropamine,backpropamine-none,rnn")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=40, help="episode length (paper: 120)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    models = tuple(args.models.split(","))
    compare(CompareConfig(task="cue", models=models, episodes=episodes(args), seeds=1 if args.quick else args.seeds,
                          lr=args.lr, batch=args.batch, out=args.out, jobs=args.jobs,
                          task_kwargs={"episode_steps": args.steps, "success_threshold": args.steps / 6.5 * 0.8},
                          model_kwargs={m: {"n_hidden": args.hidden, **_ETA.get(m, {})} for m in models},
                          train_overrides={"clip": 2.0},
                          progress=not args.no_progress))
    print(open(f"{args.out}/results.md").read())


if __name__ == "__main__":
    main()
