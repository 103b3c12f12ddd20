"""Surrogate spike functions (snnTorch's definitions).

Forward: Heaviside with a strict threshold, ``s = (x > 0)`` where ``x = v - vth``.
Backward: the derivative of a smooth stand-in, exactly as ``snntorch.surrogate``, times ``scale``
(default 1: snnTorch's surrogate). ``scale < 1`` is the *dampening factor* of Bellec et al. 2018
(LSNN, ``gamma_pd = 0.3``): the backward pass of a recurrent spiking layer is a linear system whose
per-step gain grows with the surrogate's height, and above 1 it compounds over the episode
(``docs/STABILITY.md``). The forward pass does not depend on ``scale``.

=================  ==========================================================  ==============
name               d s / d x                                                   default
=================  ==========================================================  ==============
``atan``           ``(alpha/2) / (1 + (pi/2 * alpha * x)^2)``                  alpha = 2.0
``fast_sigmoid``   ``1 / (slope*|x| + 1)^2``                                   slope = 25.0
``sigmoid``        ``slope * e^{-slope x} / (1 + e^{-slope x})^2``             slope = 25.0
``triangular``     ``threshold`` for ``x < 0`` else ``-threshold`` (snnTorch)   threshold = 1
``straight_through`` ``1``                                                      —
=================  ==========================================================  ==============
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor

from ._validation import check_choice, check_positive

__all__ = ["Surrogate", "ATan", "FastSigmoid", "Sigmoid", "Triangular", "StraightThrough", "surrogate", "SURROGATES"]


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, sur: "Surrogate") -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.sur = sur
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * ctx.sur.scaled_grad(x), None


class Surrogate(ABC):
    """A spike nonlinearity: Heaviside forward, ``grad(x)`` backward. Call it on ``v - vth``."""

    name: str = ""
    scale: float = 1.0

    @abstractmethod
    def grad(self, x: Tensor) -> Tensor:
        """Surrogate derivative ``ds/dx`` evaluated at ``x``, before ``scale`` (snnTorch's form)."""

    def scaled_grad(self, x: Tensor) -> Tensor:
        """What the backward pass uses: ``scale * grad(x)``."""
        g = self.grad(x)
        return g if self.scale == 1.0 else g * self.scale

    def __call__(self, x: Tensor) -> Tensor:
        return _SpikeFn.apply(x, self)


@dataclass(frozen=True)
class ATan(Surrogate):
    alpha: float = 2.0
    scale: float = 1.0
    name = "atan"

    def __post_init__(self) -> None:
        check_positive("alpha", self.alpha)
        check_positive("scale", self.scale)

    def grad(self, x: Tensor) -> Tensor:
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x).pow(2))


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    slope: float = 25.0
    scale: float = 1.0
    name = "fast_sigmoid"

    def __post_init__(self) -> None:
        check_positive("slope", self.slope)
        check_positive("scale", self.scale)

    def grad(self, x: Tensor) -> Tensor:
        return 1.0 / (self.slope * x.abs() + 1.0).pow(2)


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    slope: float = 25.0
    scale: float = 1.0
    name = "sigmoid"

    def __post_init__(self) -> None:
        check_positive("slope", self.slope)
        check_positive("scale", self.scale)

    def grad(self, x: Tensor) -> Tensor:
        e = torch.exp(-self.slope * x)
        return self.slope * e / (1 + e).pow(2)


@dataclass(frozen=True)
class Triangular(Surrogate):
    """snnTorch's ``triangular``: ``+threshold`` below the threshold, ``-threshold`` above it."""

    threshold: float = 1.0
    scale: float = 1.0
    name = "triangular"

    def __post_init__(self) -> None:
        check_positive("scale", self.scale)

    def grad(self, x: Tensor) -> Tensor:
        return torch.where(x < 0, torch.full_like(x, self.threshold), torch.full_like(x, -self.threshold))


@dataclass(frozen=True)
class StraightThrough(Surrogate):
    scale: float = 1.0
    name = "straight_through"

    def __post_init__(self) -> None:
        check_positive("scale", self.scale)

    def grad(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)


SURROGATES: dict[str, type[Surrogate]] = {
    "atan": ATan,
    "fast_sigmoid": FastSigmoid,
    "sigmoid": Sigmoid,
    "triangular": Triangular,
    "straight_through": StraightThrough,
}


def surrogate(spec: str | Surrogate = "atan", **kwargs: float) -> Surrogate:
    """Build a surrogate from a name (``"atan"``, ``"fast_sigmoid"``, ...) or pass one through."""
    if isinstance(spec, Surrogate):
        if kwargs:
            raise TypeError("surrogate: keyword arguments are only allowed with a surrogate name")
        return spec
    check_choice("surrogate", spec, list(SURROGATES))
    return SURROGATES[spec](**kwargs)
