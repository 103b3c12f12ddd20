"""Memory plan of the lean ops: where exact copies of ``H`` go, chunk sizes, spikes kept as bits.

- **reverse** (invertible updates): the backward rebuilds ``H[t] = (H[t+1] - e[t]) / gamma``; an
  exact copy of ``H`` every ``K_H`` steps with ``gamma^-K_H <= MAX_AMPLIFICATION`` bounds the rounding
  amplification (none when ``gamma = 1``).
- **recompute** (``clip``, ``gamma = 0``, ``reconstruct="never"``, or more copies than ``2*sqrt(T)``):
  a copy every ``K`` steps (default ``ceil(sqrt(T))``), each chunk recomputed forward from it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .backend import BACKENDS, MAX_AMPLIFICATION


def _reverse_interval(T: int, gamma: float | None) -> int | None:
    """Steps between exact copies of ``H`` for the reverse mode (``None``: not invertible)."""
    if gamma is None or gamma == 1.0:
        return T
    if not 0.0 < gamma < 1.0 + 1e-12 or not math.isfinite(gamma):
        return None
    k = int(math.log(MAX_AMPLIFICATION) / -math.log(gamma)) if gamma < 1.0 else T
    return max(1, min(T, k))


def _backward_mode(T: int, gamma: float | None, never: bool) -> int | None:
    """Copy interval of the reverse mode, or ``None`` for chunked recomputation (not invertible,
    ``never``, or so many copies that recomputation is leaner)."""
    k_rev = None if never else _reverse_interval(T, gamma)
    if k_rev is not None and T / k_rev > 2.0 * math.sqrt(T):
        k_rev = None
    return k_rev


def _chunk(T: int, checkpoint_every: int | None, recompute: bool) -> int:
    """Steps per chunk of the backward (validates ``checkpoint_every``)."""
    if checkpoint_every is not None:
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be an int >= 1 or None, got {checkpoint_every!r}")
        return min(T, checkpoint_every)
    if recompute:
        return max(1, math.ceil(math.sqrt(T)))
    return min(T, 16)


def _check_reconstruct(reconstruct: str) -> None:
    if reconstruct not in ("auto", "never"):
        raise ValueError(f"reconstruct must be 'auto' or 'never', got {reconstruct!r}")


def check_options(backend: str, reconstruct: str) -> None:
    """``ValueError`` unless ``backend`` is one of :data:`~.backend.BACKENDS` and ``reconstruct``
    is ``"auto"`` or ``"never"`` (the options every lean wrapper module takes)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    _check_reconstruct(reconstruct)


def _pre_chunk(x: Tensor, xp0: Tensor, k0: int, k1: int) -> Tensor:
    """Presynaptic activity ``P_k = x[k-1]`` (``P_0 = x_prev``) for ``k`` in ``[k0, k1)`` -> ``[k1-k0, B, n]``."""
    if k0 == 0:
        return torch.cat([xp0.unsqueeze(0), x[: k1 - 1]], 0)
    return x[k0 - 1 : k1 - 1]


def _reduce_like(acc: Tensor, like: Tensor) -> Tensor:
    """Sum a ``[B, n]`` (or any) accumulator down to the shape of parameter ``like`` (0-d or ``[n]``)."""
    if like.dim() == 0:
        return acc.sum()
    while acc.dim() > like.dim():
        acc = acc.sum(0)
    return acc


_BITS = (1, 2, 4, 8, 16, 32, 64, 128)


def _pack_bits(s: Tensor) -> Tensor:
    """0/1 spikes ``[..., n]`` -> ``uint8`` ``[..., ceil(n/8)]`` (the backward keeps 1 bit per spike)."""
    n = s.shape[-1]
    b = s.to(torch.uint8)
    if n % 8:
        b = torch.nn.functional.pad(b, (0, 8 - n % 8))
    w = torch.tensor(_BITS, dtype=torch.uint8, device=s.device)
    return (b.unflatten(-1, (-1, 8)) * w).sum(-1, dtype=torch.uint8)


def _unpack_bits(p: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    w = torch.tensor(_BITS, dtype=torch.uint8, device=p.device)
    return (p.unsqueeze(-1).bitwise_and(w) != 0).flatten(-2)[..., :n].to(dtype)
