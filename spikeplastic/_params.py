"""Learnable-or-fixed quantities with their legal range, mapped in one place.

A learnable quantity is stored as an unconstrained ``raw`` Parameter and mapped to its legal
range on every read (``tau = 1 + softplus(raw)``, ``d = clamp(raw, 0, 1)``, ...). A fixed quantity is
stored as a buffer holding the exact value, so that exporting and re-importing a network never
perturbs a threshold or time constant by a rounding error.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Constraint = Literal["real", "positive", "unit", "open_unit", "nonneg", "ge_one"]

_EPS = 1e-6
_POS_OFFSET = 1e-9  # keeps a "positive" quantity strictly > 0 when softplus underflows


def _inverse(c: Constraint, v: Tensor) -> Tensor:
    if c == "ge_one":  # 1 + softplus(raw): invert softplus on v - 1
        return _inverse("nonneg", v - 1.0)
    if c == "positive" or c == "nonneg":
        # "positive" maps raw -> softplus(raw) + 1e-9: remove the offset so that map(inverse(v)) == v
        v = (v - _POS_OFFSET if c == "positive" else v).clamp_min(_EPS)
        # F.softplus is the identity above its threshold (20): invert that branch exactly too
        return torch.where(v > 20.0, v, v + torch.log(-torch.expm1(-v)))
    if c == "open_unit":
        v = v.clamp(_EPS, 1 - _EPS)
        return torch.log(v) - torch.log1p(-v)
    return v.clone()


def _forward(c: Constraint, raw: Tensor) -> Tensor:
    if c == "positive":
        return F.softplus(raw) + _POS_OFFSET
    if c == "nonneg":
        return F.softplus(raw)
    if c == "ge_one":
        return 1.0 + F.softplus(raw)
    if c == "unit":
        return raw.clamp(0.0, 1.0)
    if c == "open_unit":
        return torch.sigmoid(raw)
    return raw


class Constrained(nn.Module):
    """A scalar or tensor quantity that is either a fixed buffer or a constrained learnable parameter.

    ``value = map(raw)`` with ``map`` one of: ``real`` (identity), ``positive`` (softplus + 1e-9),
    ``nonneg`` (softplus), ``ge_one`` (1 + softplus: time constants of at least one step), ``unit`` (clamp to [0, 1], as snnTorch clamps ``beta``), ``open_unit``
    (sigmoid). Calling the module returns the mapped value, passed through ``transform`` when one
    is set (e.g. a straight-through projection onto Loihi's grid, see :mod:`spikeplastic.quant`).
    """

    def __init__(self, value: Tensor | float, constraint: Constraint = "real", learn: bool = False) -> None:
        super().__init__()
        v = torch.as_tensor(value)
        v = (v if v.is_floating_point() else v.to(torch.get_default_dtype())).detach().clone()
        self.constraint: Constraint = constraint
        self.learn = bool(learn)
        if self.learn:
            self.raw = nn.Parameter(_inverse(constraint, v))
        else:
            self.register_buffer("value", v)
        self.transform: Callable[[Tensor], Tensor] | None = None

    def mapped(self) -> Tensor:
        """The value in its legal range, before any ``transform``."""
        if self.learn:
            return _forward(self.constraint, self.raw)
        return self.value

    def forward(self) -> Tensor:
        v = self.mapped()
        return v if self.transform is None else self.transform(v)

    def extra_repr(self) -> str:
        return f"constraint={self.constraint}, learn={self.learn}, shape={tuple(self().shape)}"
