"""spikeplastic demo: meta-learn a spiking STDP network, compare it, export it to Lava, verify it.

    make demo                       # ~3 minutes on 2 CPU cores
    python examples/demo.py --quick # a smoke run (CI)

1. Meta-trains ``snn-stdp`` on ``pattern50`` (store two 50-bit patterns in plastic synapses during
   the episode, then complete a copy with half its bits erased): the outer loop learns the fixed
   weights, the per-synapse plasticity coefficients and the STDP rule itself (A+, A-, tau+, tau-,
   decay); the inner loop is STDP. The rule's decay is kept on Lava's literal grid
   (:func:`spikeplastic.quant.lava_literals`), so the trained net is exactly exportable.
2. Compares it with a rate-based plastic net (Miconi et al. 2018) and a non-plastic SNN on the
   same harness (seeds, 95% CIs, learning curves).
3. Exports the trained network to Lava processes (LIF + LearningDense with the learned rule) and
   runs torch and Lava side by side on episodes of the task, encoded as the model encodes them:
   spikes per population on both sides, weight change, spike agreement and max |dW|.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from spikeplastic.meta import TrainConfig, train
from spikeplastic.meta.compare import CompareConfig, compare
from spikeplastic.models import make_model
from spikeplastic.quant import lava_literals
from spikeplastic.tasks import make_task


def _curve(history: list[dict], every: int) -> None:
    recs = [r for r in history if r.get("phase") == "train"]
    print(f"{'episodes':>10} {'loss':>9} {'bit error':>10}")
    for i in range(0, len(recs), every):
        chunk = recs[i: i + every]
        loss = sum(r["loss"] for r in chunk) / len(chunk)
        err = sum(r["metric"] for r in chunk) / len(chunk)
        bar = "#" * int(round(40 * err / 0.5))
        print(f"{chunk[0]['episode']:>4}-{chunk[-1]['episode']:<5} {loss:9.3f} {err:10.3f}  {bar}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run: few episodes, one seed")
    ap.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    ap.add_argument("--no-lava", action="store_true", help="skip the Lava export/verification step")
    ap.add_argument("--overwrite", action="store_true", help="replace the runs that --out already holds")
    args = ap.parse_args(argv)
    out = Path(args.out)
    episodes = 6 if args.quick else 300
    t0 = time.time()

    # 1. meta-train ---------------------------------------------------------------------------
    print(f"[1/3] meta-training snn-stdp on pattern50 ({episodes} outer steps x 8 episodes)", flush=True)
    task = make_task("pattern50")
    torch.manual_seed(0)
    model = make_model("snn-stdp", task)
    lava_literals(model.network)  # keep the learned decay exportable
    cfg = TrainConfig(task="pattern50", model="snn-stdp", episodes=episodes, batch=8, lr=3e-3, seed=0,
                      out=str(out / "snn-stdp"), progress=False, log_every=1)
    res = train(cfg, task=task, model=model, overwrite=args.overwrite)
    _curve(res.history, max(1, episodes // 10))
    rule = res.model.network.projs["hidden_to_hidden"].rule.to_ir()
    print(f"learned rule: A+={rule.a_plus:.4f} A-={rule.a_minus:.4f} tau+={rule.tau_plus:.3f} tau-={rule.tau_minus:.3f}; "
          f"final bit error {res.final_metric:.3f} (chance 0.5; copying the intact half and guessing: ~0.125); "
          f"{res.seconds / episodes:.2f} s per outer step")

    # 2. compare ------------------------------------------------------------------------------
    print("\n[2/3] comparing on pattern50 (spiking plastic vs rate plastic vs spiking static)", flush=True)
    cmp_eps = 4 if args.quick else 120
    compare(CompareConfig(task="pattern50", models=("snn-stdp", "rate-hebb", "snn-static"), episodes=cmp_eps,
                          seeds=1 if args.quick else 3, batch=8, lr=3e-3, out=str(out / "compare"), jobs=2,
                          progress=False, overwrite=args.overwrite, train_overrides={"clip": 10.0},
                          eval_episodes=32 if args.quick else 200))
    print((out / "compare" / "results.md").read_text())
    print(f"learning curves: {out / 'compare' / 'curves.png'}")

    # 3. export + verify ---------------------------------------------------------------------------
    if args.no_lava:
        print("\n[3/3] skipped (--no-lava)")
        return 0
    print("\n[3/3] exporting the trained network to Lava and verifying it (float mode)", flush=True)
    from spikeplastic.export import export_command, verify
    from spikeplastic.export._compat import lava_available

    written = export_command(str(out / "snn-stdp"), str(out / "export"), "float")
    print(f"exported to {out / 'export'}: {', '.join(p.name for p in written.values())}")
    if not lava_available():
        print("lava-nc is not installed: run scripts/setup.sh (WITH_LAVA=1) to verify in Lava")
        return 0
    # default inputs: episodes of the checkpoint's own task (pattern50), encoded exactly as the trained
    # model encodes them, each from a fresh state; ok also needs spikes in every population and a
    # plastic weight change, so a silent network cannot pass
    rep = verify(str(out / "snn-stdp"), mode="float")
    print(rep.summary())
    print(f"\ndone in {time.time() - t0:.0f} s; outputs under {out}/")
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
