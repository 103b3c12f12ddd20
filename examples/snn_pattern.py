"""Spiking pattern completion: an LIF network whose recurrent synapses learn by meta-learned STDP.

Task ``pattern50`` (50-bit +-1 patterns, 2 per episode, then a copy with half its bits zeroed).
``snn-stdp``: 50 LIF neurons, one per bit (a +1 bit drives its neuron to spike, a -1 bit
inhibits it), plastic recurrent synapses ``w + alpha*H`` with pair STDP; the output reads a
low-pass trace of the spikes. ``snn-static`` is the same network without plasticity. Chance is
50% bit error; copying the intact bits and answering -1 elsewhere gives ~12.5%.

    python examples/snn_pattern.py              # snn-stdp vs snn-static, 600 episodes x 3 seeds, batch 8
    python examples/snn_pattern.py --quick
"""
from __future__ import annotations

from _common import episodes, eval_episodes, parser

from spikeplastic.meta.compare import CompareConfig, compare


def main() -> None:
    ap = parser(__doc__, episodes=600, quick_episodes=20, out="runs/snn_pattern")
    ap.add_argument("--models", default="snn-stdp,snn-static")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--task", default="pattern50")
    args = ap.parse_args()
    compare(CompareConfig(task=args.task, models=tuple(args.models.split(",")), episodes=episodes(args),
                          seeds=1 if args.quick else args.seeds, lr=args.lr, batch=args.batch, out=args.out,
                          progress=not args.no_progress, overwrite=args.overwrite,
                          eval_episodes=eval_episodes(args)))
    print(open(f"{args.out}/results.md").read())


if __name__ == "__main__":
    main()
