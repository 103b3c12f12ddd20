"""Why a spiking run's gradient spiked: the backward pass's per-step gain at one outer step.

Loads a training checkpoint of a spiking model (hidden LIF population ``hidden`` with a recurrent
projection ``hidden_to_hidden``), replays the outer step that would come next (same batch: the
checkpoint's RNG state), and for each surrogate ``scale`` reports the gradient norm before
clipping and, along the episode of one batch element, the spectral radius of the backward
Jacobian of the recurrent layer (``du = 1``, detached reset, ``docs/STABILITY.md``)::

    J_t = diag((1 - dv) * (1 - s_t)) + (w + alpha * H_t) * scale * sigma'(v_t - vth)

A product of ``J_t`` with radius above 1 on most steps grows geometrically with the episode length.
The forward pass does not depend on ``scale``, so every scale sees the same spikes.

    spikeplastic train --task images --task-kw patch_size=16 --model snn-stdp --model-kw init=generic \\
        --model-kw surrogate_scale=1 --episodes 360 --batch 4 --lr 1e-3 --seed 2 --out runs/gain
    python examples/backward_gain.py runs/gain/checkpoint.pt --scales 1,0.3 --out gain.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any

import torch

from spikeplastic.meta.checkpoint import load_checkpoint
from spikeplastic.meta.trainer import Trainer, config_from_checkpoint


def replay(ckpt: str, scale: float, element: int | None) -> dict[str, Any]:
    """Gradient norm and per-step backward gain of the checkpoint's next outer step at ``scale``."""
    ck = load_checkpoint(ckpt)
    cfg = dataclasses.replace(config_from_checkpoint(ck), out=None, lean="off")
    tr = Trainer(cfg)
    tr.load(ckpt)
    net = tr.model.network
    pop, rec = net.pops["hidden"], net.projs["hidden_to_hidden"]
    pop.spike_fn = dataclasses.replace(pop.spike_fn, scale=scale)
    steps: list[dict[str, torch.Tensor]] = []
    Hs: list[torch.Tensor | None] = []
    step0, cur0 = pop.step, rec.current

    def step(a, state, params=None):  # type: ignore[no-untyped-def]
        out = step0(a, state, params)
        p = pop.params()
        vpre = state.v * (1 - p.dv) + state.u * (1 - p.du) + a + p.bias
        if out.u.requires_grad:
            out.u.retain_grad()  # du = 1: dL/du_t = dL/dv_t before the reset
        steps.append({"u": out.u, "x": (vpre - p.vth).detach(), "s": out.s.detach()})
        return out

    def current(state, s_pre):  # type: ignore[no-untyped-def]
        Hs.append(None if state.H is None else state.H.detach())
        return cur0(state, s_pre)

    pop.step, rec.current = step, current
    tr.model.train()
    res = tr._run_batch(cfg.batch, tr.task_gen, tr.action_gen, None)
    res.loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_(tr.params, math.inf))
    adj = torch.stack([s["u"].grad if s["u"].grad is not None else torch.zeros_like(s["u"]) for s in steps])
    b = int(adj.norm(dim=2).max(0).values.argmax()) if element is None else element
    dv = float(pop.params().dv)
    w = rec.weight().detach()
    alpha = rec.alpha().detach() if rec.alpha is not None else 1.0
    rho, rate = [], []
    for t in range(len(steps) - 1):
        x, s = steps[t]["x"][b], steps[t]["s"][b]
        H = Hs[t + 1]
        w_eff = w if H is None else w + alpha * H[b]
        J = torch.diag((1 - dv) * (1 - s)) + w_eff * pop.spike_fn.scaled_grad(x)[None, :]
        rho.append(float(torch.linalg.eigvals(J.double()).abs().max()))
        rate.append(float(s.mean()))
    return {
        "episode": int(ck["episode"]) + 1, "scale": scale, "grad_norm": norm, "batch_element": b,
        "steps": len(rho), "rho_mean": sum(rho) / len(rho), "rho_max": max(rho),
        "rho_geometric_mean": math.exp(sum(math.log(r) for r in rho) / len(rho)),
        "steps_rho_above_1": sum(r > 1 for r in rho), "spike_rate_mean": sum(rate) / len(rate),
        "w_spectral_radius": float(torch.linalg.eigvals(w.double()).abs().max()),
        "adjoint_norm_by_step": [float(f"{v:.4g}") for v in adj[:, b].norm(dim=1).tolist()],
        "rho_by_step": [round(r, 4) for r in rho],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--scales", default="1,0.3", help="comma-separated surrogate scales (default 1,0.3)")
    ap.add_argument("--element", type=int, default=None,
                    help="batch element to analyse (default: the one with the largest adjoint at scale 1)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    results, element = [], args.element
    for sc in scales:
        r = replay(args.checkpoint, sc, element)
        element = r["batch_element"]  # every scale on the same episode
        results.append(r)
        print(f"scale {sc:g}: grad norm {r['grad_norm']:.3g}; backward gain per step over {r['steps']} steps "
              f"(element {element}): mean {r['rho_mean']:.3f}, geometric {r['rho_geometric_mean']:.3f}, "
              f"max {r['rho_max']:.3f}, above 1 on {r['steps_rho_above_1']}; spike rate {r['spike_rate_mean']:.3f}; "
              f"spectral radius of w {r['w_spectral_radius']:.3f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"checkpoint": args.checkpoint, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
