"""Episodes per second in Lava: one Lava run per episode vs ``LavaNetwork.run_episodes`` (replicated network).

    .venv/bin/python benchmarks/lava_episodes.py [--episodes 100] [--single 20] [--steps 66] [--chunk 50,auto]
                                                 [--modes float,fixed] [--record spikes]

The deployment shape: 133 spike inputs -> 5 LIF, one plastic STDP projection with per-synapse alpha
(tag_1) and decay towards the anchor (tag_2), episodes of 66 steps, plastic weights reset between
episodes. (a) ``lnet.run(x_e)`` for ``--single`` episodes; (b) ``lnet.run_episodes(x, copies=--chunk)``
for ``--episodes`` episodes, once per ``--chunk`` value (``auto``: run_episodes' default copies).
Both record the same things. The episodes that (a) ran are checked against
(b): float mode identical spikes (weights to 1e-12 if recorded), fixed mode identical integers. Prints
one JSON line per measurement and one with the ratio of (b) to (a) per mode; exit status 1 if a check fails.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

import spikeplastic as sp
from spikeplastic.export import to_lava

N_IN, N_OUT = 133, 5


def network(seed: int = 0) -> sp.ir.NetworkIR:
    torch.manual_seed(seed)
    alpha = torch.empty(N_OUT, N_IN).uniform_(-1.0, 1.0)
    lif = sp.LIF(N_OUT, du=0.6, dv=torch.linspace(0.1, 0.3, N_OUT), vth=0.5)
    proj = sp.PlasticLinear(N_IN, N_OUT, weight_scale=2.0, rule=sp.STDP(0.03, 0.035, 7.3, 11.1, learn=False),
                            alpha_init=alpha, decay=2**-5)
    return sp.Network(N_IN, {"out": lif}, [("in", "out", proj)]).to_ir()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=100, help="episodes for run_episodes")
    ap.add_argument("--single", type=int, default=20, help="episodes run one Lava run each")
    ap.add_argument("--steps", type=int, default=66)
    ap.add_argument("--chunk", default="50,auto", help="copies per Lava run for run_episodes (comma-separated; "
                    "'auto': its default)")
    ap.add_argument("--rate", type=float, default=0.1, help="input spike probability per step")
    ap.add_argument("--modes", default="float,fixed")
    ap.add_argument("--record", default="spikes", help="comma-separated, e.g. spikes,weights")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    record = tuple(args.record.split(","))
    ir = network(args.seed)
    E = max(args.episodes, args.single)
    x = (np.random.default_rng(args.seed).random((args.steps, E, N_IN)) < args.rate).astype(np.float64)
    failed = False
    for mode in args.modes.split(","):
        lnet = to_lava(ir, mode=mode, rng_seed=1, timeout=1800)
        lnet.run(x[:5, 0], record=("spikes",))  # warm-up: Lava's one-off imports and model discovery
        t0 = time.perf_counter()
        singles = [lnet.run(x[:, e], record=record) for e in range(args.single)]
        t_single = time.perf_counter() - t0
        a = {"mode": mode, "method": "run per episode", "episodes": args.single, "steps": args.steps, "seconds": t_single,
             "episodes_per_s": args.single / t_single,
             "compile_s_per_run": sum(r.compile_s for r in singles) / args.single,
             "run_s_per_run": sum(r.wall_s for r in singles) / args.single}
        print(json.dumps(a), flush=True)
        for chunk in args.chunk.split(","):
            t0 = time.perf_counter()
            res = lnet.run_episodes(x[:, :args.episodes], copies=None if chunk == "auto" else int(chunk), record=record)
            t_batch = time.perf_counter() - t0
            # the same episodes must give the same results both ways
            n = min(args.single, args.episodes)
            bad = sum(int((singles[e].spikes["out"] != res.spikes["out"][:, e]).sum()) for e in range(n))
            dw = 0.0
            if "weights" in record:
                key = "raw_weights" if mode == "fixed" else "weights"
                dw = max(float(np.abs(getattr(singles[e], key)["in_to_out"] - getattr(res, key)["in_to_out"][:, e]).max())
                         for e in range(n))
            ok = bad == 0 and (dw == 0.0 if mode == "fixed" else dw <= 1e-12 * 2.0)
            failed |= not ok
            spikes = res.spike_counts()["out"]
            b = {"mode": mode, "method": "run_episodes", "chunk": chunk, "episodes": args.episodes, "steps": args.steps,
                 "copies": res.copies, "lava_runs": res.runs, "seconds": t_batch, "episodes_per_s": args.episodes / t_batch,
                 "compile_s_per_run": res.compile_s / res.runs, "run_s_per_run": res.wall_s / res.runs,
                 "spikes": spikes, "spikes_per_episode": spikes / args.episodes}
            print(json.dumps(b), flush=True)
            print(json.dumps({"mode": mode, "chunk": chunk, "copies": res.copies, "record": list(record),
                              "speedup": b["episodes_per_s"] / a["episodes_per_s"], "checked_episodes": n,
                              "spike_mismatches": bad, "max_weight_diff": dw, "ok": ok}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
