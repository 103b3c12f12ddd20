"""One-shot classification, 5-way 1-shot (Miconi et al. 2018, TASKS.md 3): rate and spiking, torch and Lava.

The whole path of issue 12, per seed:

1. train ``rate-oja`` (the paper's conv net with a plastic Oja readout) and ``snn-oneshot`` (the same
   conv features, spike-encoded, into spiking readout neurons whose synapses learn by STDP from
   teaching spikes) with the ``oneshot-cpu`` preset's settings, and ``snn-oneshot`` with a Loihi-legal
   readout (``--model-kw lava=fixed``);
2. evaluate every network on held-out episodes (test alphabets, 1000 episodes, Wilson 95% CI);
3. export the spiking readouts to Lava and evaluate them there on the *same* episodes, features
   computed by torch and streamed in as spikes, plastic weights reset every episode: the float
   export of ``snn-oneshot`` (its spikes compared with torch's, episode by episode) and the
   fixed-point export of the Loihi-legal one (beside its own float export).

Data: ``--data DIR`` (an Omniglot-layout folder, e.g. Omniglot itself or ``spikeplastic
make-omniglot DIR``); without it a small synthetic set is generated in ``OUT/data``. Train/test split:
alphabet-disjoint (``images_background`` / ``images_evaluation``).

    python examples/oneshot.py --quick                                   # CI size, ~2 min
    spikeplastic make-omniglot data/synth
    python examples/oneshot.py --data data/synth --seeds 0,1,2 --episodes 25000 --out runs/oneshot
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from spikeplastic.meta import TrainConfig, evaluate, train
from spikeplastic.meta.config import recommended

#: the runs of one seed: (name, model, model keyword arguments)
RUNS = (("rate-oja", "rate-oja", {}), ("snn-oneshot", "snn-oneshot", {}),
        ("snn-oneshot-fixed", "snn-oneshot", {"lava": "fixed"}))
TASK = "oneshot-cpu"


def _data(args: argparse.Namespace) -> Path:
    if args.data:
        return Path(args.data)
    from spikeplastic.tasks.synth_omniglot import make_synthetic_omniglot

    root = Path(args.out) / "data"
    if not (root / "images_background").is_dir():
        small = dict(n_background_alphabets=4, n_evaluation_alphabets=3, chars_per_alphabet=12, drawers=6, size=40) \
            if args.quick else {}
        make_synthetic_omniglot(root, seed=0, **small)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI size: small generated data, 30 steps, 40 held-out episodes")
    ap.add_argument("--data", default=None, help="Omniglot-layout folder (default: generate one in OUT/data)")
    ap.add_argument("--episodes", type=int, default=None, help="outer steps per run (default 25000; --quick 30)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    ap.add_argument("--eval-episodes", type=int, default=None, help="held-out episodes (default 1000; --quick 40)")
    ap.add_argument("--out", default="runs/oneshot")
    ap.add_argument("--no-lava", action="store_true", help="skip the Lava evaluations")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    steps = args.episodes or (30 if args.quick else 25000)
    n_eval = args.eval_episodes or (40 if args.quick else 1000)
    data = _data(args)
    task_kw = {"root": str(data), "class_split": "alphabet"}
    summary: dict[str, list[dict[str, object]]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, model, model_kw in RUNS:
            out = Path(args.out) / f"{name}_seed{seed}"
            cfg = TrainConfig(task=TASK, model=model, episodes=steps, seed=seed, task_kwargs=task_kw,
                              model_kwargs=model_kw, out=str(out), checkpoint_every=max(1, min(1000, steps)),
                              progress=not args.no_progress, **recommended(TASK, model))
            train(cfg, resume=(out / "checkpoint.pt").is_file())  # a crashed run continues
            res = evaluate(out, episodes=n_eval)
            res.write(out / "held_out.json")
            row: dict[str, object] = {"seed": seed, "torch": res.mean, "ci": [res.ci_low, res.ci_high]}
            print(res.line())
            if model == "snn-oneshot" and not args.no_lava:
                from spikeplastic.export import evaluate_lava

                for mode in ("float", "fixed") if model_kw.get("lava") == "fixed" else ("float",):
                    lres = evaluate_lava(out, episodes=n_eval, mode=mode)
                    print(lres.line())
                    row[f"lava_{mode}"] = lres.accuracy
                    row[f"lava_{mode}_ci"] = [lres.ci_low, lres.ci_high]
                    row[f"lava_{mode}_spikes_identical"] = lres.spikes_identical
                    row[f"lava_{mode}_agree"] = lres.agree
            summary.setdefault(name, []).append(row)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1))
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
