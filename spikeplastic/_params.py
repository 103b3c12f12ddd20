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

from ._validation import check_finite, describe

Constraint = Literal["real", "positive", "unit", "open_unit", "nonneg", "ge_one"]

_POS_OFFSET = 1e-9  # keeps a "positive" quantity strictly > 0 when softplus underflows


def _inverse(c: Constraint, v: Tensor) -> Tensor:
    # v lies strictly inside the constraint's open range (checked by _check_learnable)
    if c == "ge_one":  # 1 + softplus(raw): invert softplus on v - 1
        return _inverse("nonneg", v - 1.0)
    if c == "positive" or c == "nonneg":
        # "positive" maps raw -> softplus(raw) + 1e-9: remove the offset so that map(inverse(v)) == v
        v = v - _POS_OFFSET if c == "positive" else v
        # F.softplus is the identity above its threshold (20): invert that branch exactly too
        return torch.where(v > 20.0, v, v + torch.log(-torch.expm1(-v)))
    if c == "open_unit":
        return torch.log(v) - torch.log1p(-v)
    return v.clone()


def _check_learnable(name: str, flag: str, c: Constraint, v: Tensor) -> None:
    """A learnable value must lie strictly inside the range its map can reach: softplus never
    gives 0 and sigmoid never 0 or 1, so such a value would silently become ~1e-6 instead."""
    if c == "nonneg":
        bad, form, edge, why = v <= 0, "a value > 0", "0", "softplus never reaches 0"
    elif c == "ge_one":
        bad, form, edge, why = v <= 1, "a value > 1", "1", "1 + softplus never reaches 1"
    elif c == "positive":
        bad, form, edge, why = v <= _POS_OFFSET, f"a value > {_POS_OFFSET:g}", "that value", "softplus + 1e-9"
    elif c == "open_unit":
        bad, form, edge, why = (v <= 0) | (v >= 1), "a value in the open interval (0, 1)", "0 or 1", \
            "sigmoid never reaches 0 or 1"
    else:
        return
    if bool(bad.any()):
        if c == "open_unit":
            edge = "0" if bool((v <= 0).any()) else "1"
        shown = describe(v.double(), bad if v.dim() else None)
        raise ValueError(f"{name}: expected {form} for a learnable quantity ({flag}=True; {why}), got {shown}; "
                         f"pass {flag}=False to hold it at exactly {edge}")


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

    ``value`` must be finite, and when learnable strictly inside the range its map reaches (a
    learnable ``nonneg`` value > 0, an ``open_unit`` one in (0, 1)); errors name ``name`` and
    suggest ``flag=False`` (the owner's keyword that makes the quantity fixed).
    """

    def __init__(
        self,
        value: Tensor | float,
        constraint: Constraint = "real",
        learn: bool = False,
        *,
        name: str = "value",
        flag: str = "learn",
    ) -> None:
        super().__init__()
        v = check_finite(name, value).clone()
        self.constraint: Constraint = constraint
        self.learn = bool(learn)
        if self.learn:
            _check_learnable(name, flag, constraint, v)
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
