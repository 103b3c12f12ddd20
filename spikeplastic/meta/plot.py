"""Plots of one episode of a trained spiking model: spike raster, weight and trace evolution.

``spikeplastic plot CKPT [--out PNG]`` calls :func:`plot_checkpoint`. The checkpoint's model is
rebuilt from its config, one episode is drawn (``seed``; RL tasks: rolled out with the model,
sampling actions), its inputs are encoded, and the network is replayed with
``Network.forward(x, record=("spikes", "weights", "traces"))``. Panels: encoded input, hidden
spike raster, effective plastic weights ``w + alpha*H`` of the synapses that change most,
STDP traces ``x`` (pre) / ``y`` (post) of a few neurons, the learned STDP window beside the one at
initialisation (:func:`stdp_window_of`), and the learning curve when the run's ``metrics.jsonl``
lies next to the checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import load_checkpoint
from .metrics import METRICS_NAME, read_metrics
from .replay import episode_inputs, load_model

__all__ = ["plot_checkpoint", "record_episode", "stdp_window_of"]

_MAX_RECORD_BYTES = 256 * 2**20


def record_episode(model: Any, x: torch.Tensor) -> dict[str, Any]:
    """Replay task inputs ``x`` ``[T, 1, n_in]`` through ``model.network``; numpy arrays of the
    encoded input ``[S, n_enc]``, hidden spikes ``[S, n]``, recurrent effective weights
    ``[S, n, n]`` (or a subset ``[S, k]`` with their indices for large networks) and traces."""
    net = model.network
    xs = model.encode(x)
    name = "hidden_to_hidden"
    n = model.n_hidden
    plastic = net.projs[name].plastic
    if xs.shape[0] * n * n * 4 <= _MAX_RECORD_BYTES:
        rec, _ = net(xs, record=("spikes", "weights", "traces"))
        w = rec.weights[name][:, 0].numpy() if plastic else None
        tr = rec.traces.get(name) if rec.traces else None
        return {"input": xs[:, 0].numpy(), "spikes": rec.spikes["hidden"][:, 0].numpy(),
                "weights": None if w is None else w.reshape(w.shape[0], -1), "weight_index": None,
                "trace_pre": None if tr is None else tr[0][:, 0].numpy(),
                "trace_post": None if tr is None else tr[1][:, 0].numpy()}
    # large network: the same loop as Network.forward, keeping a random subset of synapses
    gen = torch.Generator().manual_seed(0)
    idx = torch.randperm(n * n, generator=gen)[:2000]
    st = net.initial_state(1)
    spikes, ws, xpre, ypost = [], [], [], []
    for t in range(xs.shape[0]):
        out, st = net.step(xs[t], st, validate=False)
        spikes.append(out.spikes["hidden"][0])
        if plastic:
            syn = net.peek(st)[name]
            ws.append(net.projs[name].effective_weight(syn)[0].reshape(-1)[idx])
            if isinstance(syn.rule, tuple) and len(syn.rule) == 2:
                xpre.append(syn.rule[0][0])
                ypost.append(syn.rule[1][0])
    return {"input": xs[:, 0].numpy(), "spikes": torch.stack(spikes).numpy(),
            "weights": torch.stack(ws).numpy() if ws else None, "weight_index": idx.numpy(),
            "trace_pre": torch.stack(xpre).numpy() if xpre else None,
            "trace_post": torch.stack(ypost).numpy() if ypost else None}


def stdp_window_of(rule: Any, max_dt: int = 20) -> dict[str, Any]:
    """The learning window of an STDP rule (an :class:`~spikeplastic.ir.STDPRule` or a
    :class:`~spikeplastic.STDP` module) as numpy arrays ``dt``, ``dw`` plus its parameters, computed
    by :func:`spikeplastic.functional.stdp_window` (``dt = t_post - t_pre`` in steps)."""
    from ..functional import stdp_window
    from ..ir import STDPRule
    from ..rules import STDP

    if isinstance(rule, STDP):
        rule = rule.to_ir()
    if not isinstance(rule, STDPRule):
        raise TypeError(f"rule must be an ir.STDPRule or a spikeplastic.STDP, got {type(rule).__name__}")
    dt, dw = stdp_window(rule.a_plus, rule.a_minus, rule.tau_plus, rule.tau_minus, max_dt)
    return {"dt": dt.numpy(), "dw": dw.numpy(), "a_plus": rule.a_plus, "a_minus": rule.a_minus,
            "tau_plus": rule.tau_plus, "tau_minus": rule.tau_minus}


def _rule_of(model: Any) -> Any:
    rule = model.network.projs["hidden_to_hidden"].rule
    from ..rules import STDP

    return rule if isinstance(rule, STDP) else None


def plot_checkpoint(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
                    seed: int = 0, max_neurons: int = 100, n_synapses: int = 20) -> Path:
    """Write the episode plot of the checkpoint at ``path`` to ``out`` (default: ``<ckpt>.png``).

    Raises:
        ValueError: the checkpoint's model is not a spiking model (no Network to record).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..models import SpikingModel, make_model

    p = Path(path)
    ck = load_checkpoint(p)
    if ck.get("ir") is None:
        raise ValueError(f"plot needs a spiking model (snn-*): checkpoint {str(p)!r} holds "
                         f"{ck.get('config', {}).get('model', '?')!r}, which wraps no spikeplastic Network")
    model, task, cfg = load_model(ck)
    if not isinstance(model, SpikingModel):
        raise ValueError(f"plot supports the SpikingModel of the snn-* ids, got {type(model).__name__}")
    with torch.random.fork_rng(devices=[]):  # the registry's initial rule values are deterministic
        rule0 = _rule_of(make_model(cfg.model, task, **cfg.model_kwargs))
    win0 = None if rule0 is None else stdp_window_of(rule0)
    rule = _rule_of(model)
    win = None if rule is None else stdp_window_of(rule)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x = episode_inputs(model, task, 1, seed)
        r = record_episode(model, x)
    ckfile = p if p.is_file() else p / "checkpoint.pt"
    out_p = Path(out) if out is not None else ckfile.with_suffix(".png")
    metrics = ckfile.parent / METRICS_NAME
    panels = 4 + int(win is not None) + int(metrics.is_file())
    fig, axes = plt.subplots(panels, 1, figsize=(9, 2.3 * panels), constrained_layout=True)
    steps = np.arange(r["spikes"].shape[0])
    k = min(max_neurons, r["spikes"].shape[1])
    inp = r["input"][:, : min(200, r["input"].shape[1])]
    axes[0].imshow(inp.T, aspect="auto", interpolation="nearest", cmap="coolwarm" if inp.min() < 0 else "Greys")
    axes[0].set_ylabel("input ch.")
    axes[0].set_title(f"{cfg.model} on {cfg.task}, episode {ck['episode']} checkpoint (seed {seed})")
    t_idx, n_idx = np.nonzero(r["spikes"][:, :k])
    axes[1].scatter(t_idx, n_idx, s=2, c="k", marker="|")
    axes[1].set_ylabel(f"hidden (first {k})")
    axes[1].set_xlim(-0.5, len(steps) - 0.5)
    if r["weights"] is not None:
        w = r["weights"]
        change = np.abs(w[-1] - w[0])
        top = np.argsort(change)[::-1][:n_synapses]
        axes[2].plot(steps, w[:, top], lw=0.8)
        axes[2].set_ylabel("w + alpha*H")
        axes[2].set_title(f"recurrent weights: the {len(top)} synapses that change most", fontsize=9)
    else:
        axes[2].text(0.5, 0.5, "static network: no plastic weights", ha="center", transform=axes[2].transAxes)
    if r["trace_pre"] is not None:
        m = min(5, r["trace_pre"].shape[1])
        axes[3].plot(steps, r["trace_pre"][:, :m], lw=0.8)
        axes[3].plot(steps, -r["trace_post"][:, :m], lw=0.8, ls="--")
        axes[3].set_ylabel("x (pre), -y (post)")
        axes[3].set_title(f"STDP traces of neurons 0..{m - 1}", fontsize=9)
    else:
        axes[3].text(0.5, 0.5, "no STDP traces", ha="center", transform=axes[3].transAxes)
    axes[3].set_xlabel("spiking step")
    nxt = 4
    if win is not None:
        ax = axes[nxt]
        nxt += 1
        ax.axhline(0.0, color="0.7", lw=0.6)
        ax.axvline(0.0, color="0.7", lw=0.6)
        if win0 is not None:
            ax.plot(win0["dt"], win0["dw"], "o--", ms=2.5, lw=0.8, color="0.55", label="at initialisation")
        ax.plot(win["dt"], win["dw"], "o-", ms=3, lw=1.0, color="C3", label="learned")
        ax.set_xlabel("dt = t_post - t_pre (steps)")
        ax.set_ylabel("dH per pair")
        ax.set_title(f"STDP window: A+ {win['a_plus']:.3g}, A- {win['a_minus']:.3g}, "
                     f"tau+ {win['tau_plus']:.3g}, tau- {win['tau_minus']:.3g} (times the per-synapse alpha)",
                     fontsize=9)
        ax.legend(fontsize=8, loc="upper right")
    if metrics.is_file():
        recs = read_metrics(metrics)
        axes[nxt].plot([q["episode"] for q in recs], [q["metric"] for q in recs], lw=0.6)
        axes[nxt].set_xlabel("episode")
        axes[nxt].set_ylabel("train metric")
    out_p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_p, dpi=110)
    plt.close(fig)
    return out_p
