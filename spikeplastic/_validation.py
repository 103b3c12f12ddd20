"""Argument checks that raise clear errors naming the argument and the expected form."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` else raise ``ValueError``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless every element of ``value`` is finite and > 0 (>= 0 with allow_zero)."""
    t = torch.as_tensor(value, dtype=torch.float64)
    bad = ~torch.isfinite(t) | ((t < 0) if allow_zero else (t <= 0))
    if bool(bad.any()):
        rel = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {rel}, got {value!r}")


def check_range(name: str, value: Any, lo: float, hi: float) -> None:
    """Raise ``ValueError`` unless every element lies in the closed interval ``[lo, hi]``."""
    t = torch.as_tensor(value, dtype=torch.float64)
    if bool((~torch.isfinite(t) | (t < lo) | (t > hi)).any()):
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value!r}")


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= minimum (bools rejected) else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def check_tensor(
    name: str,
    x: Any,
    *,
    ndim: int | None = None,
    last_dim: int | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = True,
) -> Tensor:
    """Check a floating tensor's type, rank, trailing size and finiteness."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must have a floating dtype (float32/float64), got {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(f"{name} must have last dimension {last_dim}, got shape {tuple(x.shape)}")
    if shape is not None:
        ok = len(shape) == x.dim() and all(s is None or s == d for s, d in zip(shape, x.shape))
        if not ok:
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def check_spikes(name: str, x: Tensor) -> Tensor:
    """Raise ``ValueError`` unless every element of ``x`` is exactly 0 or 1."""
    if not bool(((x == 0) | (x == 1)).all()):
        bad = x[(x != 0) & (x != 1)].flatten()[:3].tolist()
        raise ValueError(f"{name} must contain spikes (values in {{0, 1}}), found e.g. {bad}")
    return x


def inv_softplus(y: float) -> float:
    """Inverse of ``softplus``: the raw value whose softplus is ``y`` (> 0)."""
    return y + math.log(-math.expm1(-y))


def logit(p: float) -> float:
    """Inverse of ``sigmoid`` for ``p`` in (0, 1)."""
    return math.log(p) - math.log1p(-p)
