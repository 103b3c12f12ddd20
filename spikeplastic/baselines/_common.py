"""Pieces shared by the baseline models: constrained scalars, plastic mat-vec, checks."""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from spikeplastic._validation import check_choice, check_int, check_state_batch, check_tensor, logit

AlphaMode = Literal["per_synapse", "shared"]
ALPHA_MODES: tuple[str, ...] = ("per_synapse", "shared")


class UnitIntervalScalar(nn.Module):
    """A learned scalar constrained to the open interval (0, 1).

    The unconstrained value ``raw`` is an ``nn.Parameter`` (``learn=True``) or a buffer
    (``learn=False``); calling the module returns ``sigmoid(raw)``, the only place where the
    constraint is applied. ``init`` is the constrained value at initialisation.
    """

    def __init__(self, init: float, *, learn: bool = True, name: str = "eta") -> None:
        super().__init__()
        if isinstance(init, bool) or not isinstance(init, (int, float)):
            raise TypeError(f"{name} must be a float in (0, 1), got {type(init).__name__} {init!r}")
        if not 0.0 < float(init) < 1.0:
            raise ValueError(f"{name} must be a float in (0, 1) (open interval), got {init!r}")
        raw = torch.tensor(logit(float(init)))
        if learn:
            self.raw = nn.Parameter(raw)
        else:
            self.register_buffer("raw", raw)

    def forward(self) -> Tensor:
        return torch.sigmoid(self.raw)


def alpha_parameter(mode: str, shape: tuple[int, ...], init_std: float, *, uniform: bool = False) -> nn.Parameter:
    """Plasticity coefficients: ``[*shape]`` per synapse, or one scalar ``[]`` when shared.

    Both are initialised as ``init_std * N(0, 1)``, or ``init_std * U[0, 1)`` when ``uniform``.
    """
    check_choice("alpha", mode, ALPHA_MODES)
    size = shape if mode == "per_synapse" else ()
    return nn.Parameter(init_std * (torch.rand(size) if uniform else torch.randn(size)))


def check_init_std(value: float, name: str = "init_std") -> float:
    """``value`` as a float >= 0 (TypeError / ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float >= 0, got {type(value).__name__} {value!r}")
    if not value >= 0.0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite float >= 0, got {value!r}")
    return float(value)


def check_step_input(x: Tensor, n_in: int, state: Any = None) -> Tensor:
    """Cheap per-step check that ``x`` is a floating ``[B, n_in]`` tensor and ``state`` one for ``B`` samples."""
    check_tensor("x", x, ndim=2, last_dim=n_in, finite=False)
    if state is not None:
        check_state_batch("state", state, x.shape[0])
    return x


def plastic_matvec(w: Tensor, alpha: Tensor, hebb: Tensor, pre: Tensor) -> Tensor:
    """Drive through a plastic weight matrix: ``(w + alpha * hebb) @ pre`` per batch element.

    Shapes: ``w`` ``[n_post, n_pre]``; ``alpha`` ``[n_post, n_pre]`` or ``[]``;
    ``hebb`` ``[B, n_post, n_pre]``; ``pre`` ``[B, n_pre]`` -> ``[B, n_post]``.
    The fixed part is applied as one matmul for the whole batch; only the plastic part needs the
    per-sample matrix.
    """
    fixed = pre @ w.t()
    plastic = torch.bmm(alpha * hebb, pre.unsqueeze(-1)).squeeze(-1)
    return fixed + plastic


__all__ = [
    "ALPHA_MODES",
    "AlphaMode",
    "UnitIntervalScalar",
    "alpha_parameter",
    "check_choice",
    "check_init_std",
    "check_int",
    "check_step_input",
    "plastic_matvec",
]
