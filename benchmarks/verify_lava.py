"""Long verification runs of the Lava exporter (issue #4: identical spikes and weights over >= 1000 steps).

    .venv/bin/python benchmarks/verify_lava.py [--steps 1000] [--json results.json] [--quick]

For each network: spikeplastic.simulate (torch float64) vs the Lava export on the same random inputs
(``spikeplastic.export.verify(..., random_inputs=RATE)``: these hand-built nets have no task). Float
mode must give identical spikes and max |dW| <= 1e-12 of the weight scale; fixed mode must be
bit-exact with ``simulate_fixed`` and reports its agreement with the float reference (over spike
events) and the learning engine's error in weight LSBs. Either way every population must spike and
every plastic projection must change (the spike counts and weight changes are printed). Exit status
1 if a promise fails.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

import spikeplastic as sp
from spikeplastic.export import verify


def _lin(a: int, b: int, scale: float = 2.0, **kw) -> sp.PlasticLinear:
    return sp.PlasticLinear(a, b, weight_scale=scale, **kw)


def _stdp(ap: float, am: float, tp: float, tm: float) -> sp.STDP:
    return sp.STDP(ap, am, tp, tm, learn=False)


def nets(quick: bool) -> dict[str, tuple[sp.ir.NetworkIR, tuple[str, ...]]]:
    """name -> (IR, modes)."""
    out = {}
    n_in, n_h, n_out = (30, 20, 8) if quick else (100, 100, 10)
    torch.manual_seed(0)
    out["static_100-100-10"] = (sp.Network.feedforward(
        [n_in, n_h, n_out], lif={"dv": 0.2, "vth": 1.0, "du": 0.6}, linear={"weight_scale": 3.0}).to_ir(), ("float", "fixed"))
    torch.manual_seed(1)
    out["stdp_ff_100-100-10"] = (sp.Network.feedforward(
        [n_in, n_h, n_out], rule=lambda: _stdp(0.01, 0.012, 15.3, 21.7), lif={"dv": 0.2, "vth": 0.5, "du": 0.6},
        linear={"weight_scale": 3.0, "alpha": "none"}).to_ir(), ("float", "fixed"))
    torch.manual_seed(2)
    alpha = torch.empty(24, 16).uniform_(-1.0, 1.0)
    l1 = sp.LIF(24, du=0.7, dv=0.15, vth=0.8)
    l2 = sp.LIF(6, dv=torch.linspace(0.1, 0.3, 6), vth=torch.linspace(0.5, 0.9, 6), bias=0.01)
    out["stdp_recurrent_alpha_decay"] = (sp.Network(16, {"l1": l1, "l2": l2}, [
        ("in", "l1", _lin(16, 24, rule=_stdp(0.03, 0.035, 7.3, 11.1), alpha_init=alpha, decay=2**-6)),
        ("l1", "l2", _lin(24, 6, rule=_stdp(0.02, 0.025, 5.0, 9.0), alpha="shared", alpha_init=0.7, decay=3 * 2**-7)),
        ("l1", "l1", _lin(24, 24, scale=1.0, rule=_stdp(0.01, 0.012, 4.0, 6.0), alpha="none")),
    ]).to_ir(), ("float", "fixed"))
    torch.manual_seed(3)
    l1 = sp.LIF(24, du=0.7, dv=0.15, vth=0.8)
    l2 = sp.LIF(6, dv=0.2, vth=0.7)
    out["three_factor_stdp"] = (sp.Network(16, {"l1": l1, "l2": l2}, [
        ("in", "l1", _lin(16, 24, rule=_stdp(0.03, 0.035, 7.3, 11.1), modulation=sp.Neuromodulation("simple", None))),
        ("l1", "l2", _lin(24, 6, rule=_stdp(0.02, 0.025, 5.0, 9.0), modulation=sp.Neuromodulation("simple", "in", per_neuron=True))),
        ("l1", "l1", _lin(24, 24, scale=1.0, rule=_stdp(0.05, 0.06, 4.0, 6.0),
                          modulation=sp.Neuromodulation("retroactive", "l2", eta_e=2**-3, learn_eta=False))),
    ]).to_ir(), ("float",))
    torch.manual_seed(4)
    l1 = sp.LIF(24, du=1.0, dv=0.2, vth=0.6)
    l2 = sp.LIF(6, dv=0.2, vth=0.6, reset="subtract")
    out["hebb_oja_subtract"] = (sp.Network(16, {"l1": l1, "l2": l2}, [
        ("in", "l1", _lin(16, 24, rule=sp.Hebb(2**-4, learn=False), decay=2**-6)),
        ("l1", "l2", _lin(24, 6, rule=sp.Oja(3 * 2**-5, learn=False), modulation=sp.Neuromodulation("simple", "l1"))),
    ]).to_ir(), ("float",))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write all reports to this file")
    ap.add_argument("--quick", action="store_true", help="smaller networks")
    args = ap.parse_args()
    results = {}
    failed = False
    head = (f"{'network':30s} {'mode':5s} {'ok':3s} {'spike agr %':>11s} {'1st div':>7s} {'max|dW|':>9s} "
            f"{'rel dW':>9s} {'LSB':>7s} {'replay LSB':>10s} {'lava st/s':>9s} {'torch st/s':>10s}")
    print(head)
    print("-" * len(head))
    for name, (net_ir, modes) in nets(args.quick).items():
        for mode in modes:
            t0 = time.perf_counter()
            rep = verify(net_ir, steps=args.steps, mode=mode, seed=args.seed, random_inputs=args.rate, timeout=1800)
            lsb = max((q.max_dw_lsb or 0.0 for q in rep.projections.values()), default=0.0)
            rlsb = max((q.rule_replay_max_lsb or 0.0 for q in rep.projections.values()), default=0.0)
            agr = float("nan") if rep.spike_agreement_pct is None else rep.spike_agreement_pct
            spikes = ", ".join(f"{k} {p.spikes_reference}/{p.spikes_lava}" for k, p in rep.populations.items())
            change = max((min(q.max_weight_change, q.max_weight_change_lava) for q in rep.projections.values()),
                         default=float("nan"))
            print(f"{name:30s} {mode:5s} {'yes' if rep.ok else 'NO':3s} {agr:11.4f} "
                  f"{str(rep.first_divergent_step):>7s} {rep.max_abs_dw:9.2e} {rep.max_rel_dw:9.2e} "
                  f"{lsb if mode == 'fixed' else float('nan'):7.1f} {rlsb if mode == 'fixed' else float('nan'):10.1f} "
                  f"{rep.lava_steps_per_s:9.0f} {rep.torch_steps_per_s:10.0f}   (spikes ref/Lava: {spikes}; "
                  f"max weight change {change:.3g}; {time.perf_counter() - t0:.0f} s)", flush=True)
            for r in rep.reasons:
                print(f"    FAILED: {r}")
            results[f"{name}/{mode}"] = rep.to_dict()
            failed |= not rep.ok
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2, default=str)
    print("all promises hold" if not failed else "SOME PROMISE FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
