"""Surrogates: strict Heaviside forward; backward equals the documented formula and snnTorch's own."""
from __future__ import annotations

import math

import pytest
import torch

from spikeplastic import surrogate
from spikeplastic.surrogate import SURROGATES, Surrogate

snn_sur = pytest.importorskip("snntorch.surrogate")

F64 = torch.float64
GRID = torch.cat([torch.linspace(-3, 3, 241, dtype=F64), torch.tensor([0.0, 1e-300, -1e-300, 1e-9, -1e-9], dtype=F64)])


def _formula(name: str, p: float | None, x: torch.Tensor) -> torch.Tensor:
    """The table of surrogate.py's docstring, written out independently."""
    if name == "atan":
        return (p / 2) / (1 + (math.pi / 2 * p * x) ** 2)
    if name == "fast_sigmoid":
        return 1 / (p * x.abs() + 1) ** 2
    if name == "sigmoid":
        return p * torch.exp(-p * x) / (1 + torch.exp(-p * x)) ** 2
    if name == "triangular":
        return torch.where(x < 0, torch.full_like(x, p), torch.full_like(x, -p))
    if name == "straight_through":
        return torch.ones_like(x)
    raise AssertionError(name)


CASES = [  # (name, parameter name, value, snnTorch factory)
    ("atan", "alpha", 2.0, lambda v: snn_sur.atan(alpha=v)),
    ("atan", "alpha", 3.7, lambda v: snn_sur.atan(alpha=v)),
    ("fast_sigmoid", "slope", 25.0, lambda v: snn_sur.fast_sigmoid(slope=v)),
    ("fast_sigmoid", "slope", 5.5, lambda v: snn_sur.fast_sigmoid(slope=v)),
    ("sigmoid", "slope", 25.0, lambda v: snn_sur.sigmoid(slope=v)),
    # snnTorch multiplies its float32 incoming gradient by the Python-float slope first (a float32
    # product), so the slope is exactly representable in float32 for the bit-level comparison
    ("sigmoid", "slope", 3.25, lambda v: snn_sur.sigmoid(slope=v)),
    ("triangular", "threshold", 1.0, lambda v: snn_sur.triangular(threshold=v)),
    ("triangular", "threshold", 0.375, lambda v: snn_sur.triangular(threshold=v)),  # float32-exact, as above
    ("straight_through", None, None, lambda v: snn_sur.straight_through_estimator()),
]


def _grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = fn(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    return out.detach(), g


@pytest.mark.parametrize("name, pname, value, snn_fn", CASES)
def test_surrogate_forward_backward(name: str, pname: str | None, value: float | None, snn_fn) -> None:
    sur = surrogate(name, **({pname: value} if pname else {}))
    assert isinstance(sur, Surrogate) and sur.name == name
    out, g = _grad(sur, GRID)
    # forward: strict Heaviside, in the input's dtype
    assert out.dtype == F64
    torch.testing.assert_close(out, (GRID > 0).to(F64), rtol=0, atol=0)
    assert out[GRID == 0].eq(0).all()
    # backward: the formula, and surrogate.grad itself
    torch.testing.assert_close(g, _formula(name, value, GRID), rtol=1e-14, atol=1e-300)
    torch.testing.assert_close(sur.grad(GRID), g, rtol=0, atol=0)
    # snnTorch's surrogate on the same grid (its forward is float32)
    out_s, g_s = _grad(snn_fn(value), GRID)
    torch.testing.assert_close(out_s.to(F64), out, rtol=0, atol=0)
    torch.testing.assert_close(g, g_s, rtol=1e-14, atol=1e-300)


def test_surrogate_chain_rule_scales_incoming_gradient() -> None:
    x = GRID.clone().requires_grad_(True)
    w = torch.linspace(-2, 2, GRID.numel(), dtype=F64)
    (g,) = torch.autograd.grad((surrogate("atan")(x) * w).sum(), x)
    torch.testing.assert_close(g, w * _formula("atan", 2.0, GRID), rtol=1e-14, atol=1e-300)


def test_surrogate_registry_and_passthrough() -> None:
    assert set(SURROGATES) == {"atan", "fast_sigmoid", "sigmoid", "triangular", "straight_through"}
    s = surrogate("sigmoid", slope=4.0)
    assert surrogate(s) is s
    assert surrogate().name == "atan"  # snnTorch's default
    with pytest.raises(TypeError, match="keyword"):
        surrogate(s, slope=3.0)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_scale_dampens_backward_only(name: str) -> None:
    """``scale`` (LSNN's dampening factor) multiplies the backward pass and leaves the forward alone."""
    plain, damped = surrogate(name), surrogate(name, scale=0.3)
    out_p, g_p = _grad(plain, GRID)
    out_d, g_d = _grad(damped, GRID)
    torch.testing.assert_close(out_d, out_p, rtol=0, atol=0)
    torch.testing.assert_close(g_d, 0.3 * g_p, rtol=1e-15, atol=0)
    assert g_p.abs().sum() > 0  # the comparison is not between zeros
    torch.testing.assert_close(damped.scaled_grad(GRID), g_d, rtol=0, atol=0)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="scale"):
            surrogate(name, scale=bad)
