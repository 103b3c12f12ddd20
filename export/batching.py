"""Many independent episodes in one Lava run: block-diagonal replication of a network.

Lava runs one sample per run and every run pays its process start-up (0.2 s to seconds). :func:`replicate`
turns a network into ``copies`` disjoint copies of itself, so that one Lava run of the replica runs
``copies`` episodes side by side; :meth:`LavaNetwork.run_episodes
<spikeplastic.export.LavaNetwork.run_episodes>` feeds episode ``c`` of a chunk to copy ``c`` and
splits the recordings back into a batch axis ``[T, E, ...]``. This module is numpy only (no Lava):
the replica, the check that a fixed-point replica holds the original integers, the default
``copies``.

Replica of population ``k`` (``n_k`` neurons): ``copies*n_k`` neurons, copy ``c`` at
``[c*n_k, (c+1)*n_k)`` (the input population alike), per-neuron parameters tiled. Each projection's
``weight``, ``alpha`` (and a per-neuron modulation weight) are block-diagonal with exact zeros off
the diagonal blocks::

    W_rep = blockdiag(W, ..., W)     alpha_rep = blockdiag(alpha, ..., alpha)     (alpha: 1 if None)

An off-block synapse has ``w = anchor = 0`` and ``alpha = 0``, so its weight ``w + alpha*H`` is 0
at every step whatever its ``H`` does (torch), and every exported rule -- ``dW = alpha*m*e -
decay*(W - w)`` and its Hebb/Oja/retroactive forms (see :mod:`spikeplastic.export._plan`) -- has a
zero factor there (Lava). A missing ``alpha`` becomes 1 on the diagonal blocks (``w + 1*H == w + H``
exactly in float) and a scalar ``alpha`` is spread over them; a shared modulation weight
``[n_src]`` becomes one row per postsynaptic neuron on its copy's source block. What cannot be
replicated exactly raises :class:`~spikeplastic.export.ExportError` naming the projection:
node perturbation (its noise is one counter-based stream per projection indexed by postsynaptic
neuron and shared by all samples: copy ``c`` would inject the noise of neurons ``c*n_post ..``),
and retroactive modulation without ``alpha`` but with a decay (Lava's two tags then hold the
eligibility trace and the anchor, leaving none for the zero ``alpha`` of the off-block synapses).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from spikeplastic import ir as _ir

from ._plan import as_ir
from .errors import ExportError

__all__ = ["replicate", "diagonal_blocks", "default_copies", "fixed_replica", "check_copies", "MAX_REPLICA_PRE",
           "MAX_REPLICA_SYNAPSES"]

#: default ``copies`` of ``LavaNetwork.run_episodes`` (:func:`default_copies`): a replica's plastic projections
#: have at most this many presynaptic neurons (Lava 0.10's learning engine builds ``[n_pre, n_pre]``
#: temporaries every step, ``x_traces_history[tx, 0].diagonal()``, a cost quadratic in ``copies``;
#: measured on 2 CPUs, 133 -> 5 STDP, 66 steps: 8-12 copies give the most episodes/s, 50 copies 5x fewer)
MAX_REPLICA_PRE = 1024
#: ... and every replicated projection at most this many synapses (the rule and ``Dense`` evaluate the
#: whole ``[c*n_post, c*n_pre]`` matrix every step)
MAX_REPLICA_SYNAPSES = 2_000_000


def check_copies(copies: Any, name: str = "copies") -> int:
    """``copies`` as an int, or ``ValueError`` naming ``name`` unless it is an int >= 1."""
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or int(copies) < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {copies!r}")
    return int(copies)


def _block_diag(a: np.ndarray, copies: int) -> np.ndarray:
    """``blockdiag(a, ..., a)`` (``copies`` blocks) with exact +0.0 off the diagonal blocks."""
    n, m = a.shape
    out = np.zeros((copies * n, copies * m), dtype=a.dtype)
    for c in range(copies):
        out[c * n:(c + 1) * n, c * m:(c + 1) * m] = a
    return out


def diagonal_blocks(a: np.ndarray, copies: int) -> np.ndarray:
    """The ``copies`` diagonal blocks of ``a`` ``[..., copies*n, copies*m]`` as ``[..., copies, n, m]``."""
    *lead, N, M = a.shape
    if N % copies or M % copies:
        raise ValueError(f"a matrix of shape {a.shape} has no {copies} equal diagonal blocks")
    n, m = N // copies, M // copies
    k = np.arange(copies)
    blocks = a.reshape(*lead, copies, n, copies, m)[..., k, :, k, :]  # advanced indices first: [copies, *lead, n, m]
    return np.moveaxis(blocks, 0, len(lead))


def _replicate_population(p: _ir.Population, copies: int) -> _ir.Population:
    if p.kind == "input":
        return dataclasses.replace(p, n=p.n * copies)
    tile = {k: np.tile(getattr(p, k), copies) for k in ("du", "dv", "vth", "bias")}
    return dataclasses.replace(p, n=p.n * copies, **tile)


def _replicate_modulation(ir: _ir.NetworkIR, pr: _ir.Projection, copies: int) -> _ir.Modulation | None:
    mod = pr.modulation
    if mod is None or mod.source is None:  # an external third factor is given per run (per copy)
        return mod
    n_post = ir.population(pr.post).n
    w = np.asarray(mod.weight, dtype=np.float64)
    b = np.asarray(mod.bias, dtype=np.float64)
    if w.ndim == 1:  # one signal per sample: one identical row per postsynaptic neuron of the copy
        w = np.broadcast_to(w, (n_post, w.shape[0]))
        b = np.broadcast_to(b, (n_post,))
    return dataclasses.replace(mod, weight=_block_diag(np.ascontiguousarray(w), copies), bias=np.tile(b, copies))


def _check_replicable(pr: _ir.Projection) -> None:
    if isinstance(pr.rule, _ir.NodePerturbationRule):
        raise ExportError(
            f"projection {pr.name!r}: node perturbation cannot be replicated: its noise is one counter-based stream "
            "per projection, indexed by postsynaptic neuron and shared by all samples, so copy c would inject the noise "
            "of neurons c*n_post.. instead of the episode's own; run such episodes with copies=1"
        )
    mod = pr.modulation
    if pr.plastic and mod is not None and mod.mode == "retroactive" and pr.alpha is None and pr.decay != 0:
        raise ExportError(
            f"projection {pr.name!r}: retroactive modulation with alpha=None and decay={pr.decay!r} cannot be "
            "replicated: the off-block synapses stay at 0 only through a per-synapse alpha of 0, and Lava's two "
            "synapse tags already hold the eligibility trace and the decay's anchor; use decay=0 or a per-synapse alpha"
        )


def _replicate_projection(ir: _ir.NetworkIR, pr: _ir.Projection, copies: int) -> _ir.Projection:
    kw: dict[str, Any] = {"weight": _block_diag(np.asarray(pr.weight, dtype=np.float64), copies)}
    if pr.plastic:
        alpha = np.ones(pr.weight.shape) if pr.alpha is None else np.broadcast_to(pr.alpha, pr.weight.shape)
        kw["alpha"] = _block_diag(np.ascontiguousarray(alpha, dtype=np.float64), copies)
        kw["modulation"] = _replicate_modulation(ir, pr, copies)
    elif pr.alpha is not None:  # a static projection ignores alpha; keep it well-formed
        kw["alpha"] = pr.alpha if pr.alpha.ndim == 0 else _block_diag(pr.alpha, copies)
    return dataclasses.replace(pr, **kw)


def replicate(net_ir: Any, copies: int) -> _ir.NetworkIR:
    """``copies`` disjoint copies of a network as one :class:`~spikeplastic.ir.NetworkIR` (block-diagonal).

    Population ``k`` gets ``copies*n_k`` neurons, copy ``c`` at ``[c*n_k, (c+1)*n_k)`` (input alike;
    per-neuron parameters tiled); every projection's weight, alpha and per-neuron modulation weight
    are block-diagonal with exact zeros off the diagonal blocks (``alpha=None`` becomes 1 on the
    blocks, a scalar alpha is spread over them). Running the replica on ``x_rep[t] =
    concat(x_0[t], ..., x_{copies-1}[t])`` runs every copy exactly as the original runs its episode
    (float: the same spikes, values equal to rounding; ``spikeplastic.simulate`` and Lava alike):
    off-block synapses have ``w = anchor = alpha = 0`` and stay at 0 under every rule.
    ``copies == 1`` returns the IR unchanged. Names and ``meta`` are kept (``meta["copies"]`` records
    the replication).

    Args:
        net_ir: a :class:`~spikeplastic.ir.NetworkIR` (or anything :func:`~spikeplastic.export.to_lava` takes).
        copies: number of copies, an int >= 1.

    Raises:
        ValueError: ``copies`` is not an int >= 1.
        ExportError: a projection whose copies would not stay independent (node perturbation;
            retroactive modulation with ``alpha=None`` and a decay); the message names it and why.
    """
    ir = as_ir(net_ir)
    copies = check_copies(copies)
    if copies == 1:
        return ir
    for pr in ir.projections:
        _check_replicable(pr)
    pops = tuple(_replicate_population(p, copies) for p in ir.populations)
    projs = tuple(_replicate_projection(ir, pr, copies) for pr in ir.projections)
    meta = dict(ir.meta)
    meta["copies"] = int(meta.get("copies", 1)) * copies
    return _ir.NetworkIR(pops, projs, meta=meta, version=ir.version)


# ---- fixed point: the replica must hold the un-replicated integers ------------------------------
def _same_blocks(big: np.ndarray | None, small: np.ndarray | None, copies: int, tiled: bool = False) -> bool:
    if big is None or small is None:
        return big is None and small is None
    big, small = np.asarray(big), np.asarray(small)
    if tiled:
        return big.shape == (copies * small.shape[0],) and bool(np.array_equal(big, np.tile(small, copies)))
    return big.shape == (copies * small.shape[0], copies * small.shape[1]) and \
        bool(np.array_equal(big, _block_diag(small, copies)))


def _check_fixed_replica(rep: Any, orig: Any, copies: int) -> None:
    """Raise :class:`ExportError` unless ``rep`` (the quantised replica) is ``orig`` replicated integer for integer."""
    for p in orig.populations:
        q = rep.population(p.name)
        if p.kind != "lif":
            continue
        bad = [k for k in ("du", "dv", "vth", "bias_mant", "bias_exp")
               if not _same_blocks(np.broadcast_to(getattr(q, k), (q.n,)), np.broadcast_to(getattr(p, k), (p.n,)),
                                   copies, tiled=True)]
        if q.scale != p.scale or bad:
            raise ExportError(f"population {p.name!r}: the replicated network quantises differently "
                              f"({'scale' if q.scale != p.scale else ', '.join(bad)}); it would not be bit-exact")
    for pr in orig.projections:
        q = rep.projection(pr.name)
        why = []
        if not _same_blocks(q.weights, pr.weights, copies):
            why.append("weights")
        if (q.weight_exp, q.sign_mode) != (pr.weight_exp, pr.sign_mode):
            why.append("weight_exp/sign_mode")
        if (q.rule is None) != (pr.rule is None):
            why.append("plasticity")
        elif pr.rule is not None:
            a, b = q.rule, pr.rule
            if (a.products, a.x1_impulse, a.x1_tau, a.y1_impulse, a.y1_tau) != \
                    (b.products, b.x1_impulse, b.x1_tau, b.y1_impulse, b.y1_tau):
                why.append(f"rule ({a.dw()!r} vs {b.dw()!r})")
            if b.tag_1 is not None and not _same_blocks(a.tag_1, b.tag_1, copies):
                why.append("tag_1 (alpha)")
            if not _same_blocks(a.tag_2, b.tag_2, copies):
                why.append("tag_2 (anchor)")
        if why:
            raise ExportError(f"projection {pr.name!r}: the replicated network quantises differently "
                              f"({', '.join(why)}); it would not be bit-exact with the un-replicated one")


def fixed_replica(fixed: Any, rep_ir: _ir.NetworkIR, copies: int) -> Any:
    """The :class:`~spikeplastic.export.FixedNetwork` of ``rep_ir`` (``replicate(ir, copies)``) quantised at
    the scales of ``fixed`` (the un-replicated network's), checked to hold ``fixed``'s integers block for block.

    Raises :class:`ExportError` for a plastic projection without alpha (tag_1), or if the replica
    quantises differently (it would not be bit-exact with the un-replicated network).
    """
    from .quantize import quantize_ir

    for pr in fixed.projections:
        r = pr.rule
        if r is not None and r.tag_1 is None and any(p.dependency != "u0" for p in r.products):
            raise ExportError(
                f"projection {pr.name!r}: fixed mode replicates plastic projections with an alpha (tag_1) only: with "
                "alpha=None the off-block synapses would learn, and an alpha of 1 adds a tag factor (and a MAC shift) "
                "to the integer rule, which would no longer be bit-exact with the un-replicated network; "
                "give the projection an alpha or run one episode per Lava run (copies=1)"
            )
    scales = {p.name: p.scale for p in fixed.populations if p.kind == "lif"}
    rep, _ = quantize_ir(rep_ir, scale=scales)
    _check_fixed_replica(rep, fixed, copies)
    return rep


def default_copies(plan: Any, episodes: int) -> int:
    """Episodes per Lava run when ``copies`` is not given: the largest ``c <= episodes`` with
    ``c * n_pre <= MAX_REPLICA_PRE`` for every plastic projection of ``plan`` and ``c^2 * n_post * n_pre
    <= MAX_REPLICA_SYNAPSES`` for every projection (at least 1)."""
    c = episodes
    for p in plan.projections:
        n_post, n_pre = p.weights.shape
        if p.plastic:
            c = min(c, MAX_REPLICA_PRE // max(1, n_pre))
        c = min(c, math.isqrt(MAX_REPLICA_SYNAPSES // max(1, n_post * n_pre)))
    return max(1, c)
