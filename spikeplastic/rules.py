"""Plasticity rules: learnable, constrained parameters and a pure step.

A rule maps this step's pre/post activity (and the current plastic matrix ``H``) to an update
candidate ``e`` ``[B, n_post, n_pre]``; :class:`~spikeplastic.plastic.PlasticLinear` composes it
with the plasticity coefficient, neuromodulation, decay and clipping.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

from torch import Tensor, nn

from . import ir
from ._params import Constrained
from ._validation import check_positive, check_range
from .functional.plasticity import STDPTraces, hebb_increment, oja_increment, stdp_traces_step, stdp_update

__all__ = ["PlasticityRule", "STDP", "Hebb", "Oja", "NoState"]


def _f(q: Constrained) -> float:
    return float(q().detach().cpu().double())


class NoState(NamedTuple):
    """State of a rule that keeps none."""


class PlasticityRule(nn.Module, ABC):
    """Base class of all plasticity rules (``initial_state`` / ``step``, like an optimiser's init/update)."""

    @abstractmethod
    def initial_state(self, batch: int, n_pre: int, n_post: int, like: Tensor) -> Any:
        """Zero rule state for ``batch`` samples (dtype/device of ``like``)."""

    @abstractmethod
    def step(self, state: Any, pre: Tensor, post: Tensor, H: Tensor) -> tuple[Tensor, Any]:
        """Update candidate ``e`` ``[B, n_post, n_pre]`` from this step's ``pre`` ``[B, n_pre]`` and
        ``post`` ``[B, n_post]``, and the new rule state."""

    @abstractmethod
    def to_ir(self) -> ir.Rule:
        """The rule with its current (mapped) parameter values."""


class STDP(PlasticityRule):
    r"""Pair-based, trace-based STDP with learnable amplitudes and time constants.

    .. math::
        x_t = x_{t-1} e^{-1/\tau_+} + A_+ s^{pre}_t,\quad y_t = y_{t-1} e^{-1/\tau_-} + A_- s^{post}_t,\quad
        e_t = s^{post}_t x_t^\top - y_t (s^{pre}_t)^\top

    A pre spike followed ``dt >= 0`` steps later by a post spike gives ``+A_+ e^{-dt/tau_+}``;
    post then pre gives ``-A_- e^{-dt/tau_-}``; a simultaneous pair gives ``A_+ - A_-``.
    Amplitudes are >= 0 (softplus); time constants are at least one step (``tau = 1 + softplus(raw)``,
    ``docs/DESIGN.md``): below one step a trace forgets within the step that set it, so the
    rule loses its timing part and degenerates into a coincidence detector. Sign and scale per synapse come from
    the coefficient ``alpha`` of the projection. Exported to Lava as
    ``Loihi2FLearningRule(dw="y0*x1 - x0*y1", x1_impulse=A+, x1_tau=tau+, y1_impulse=A-, y1_tau=tau-)``.
    """

    def __init__(
        self,
        a_plus: float = 0.01,
        a_minus: float = 0.012,
        tau_plus: float = 20.0,
        tau_minus: float = 20.0,
        *,
        learn: bool = True,
    ) -> None:
        super().__init__()
        check_positive("a_plus", a_plus, allow_zero=True)
        check_positive("a_minus", a_minus, allow_zero=True)
        check_range("tau_plus", tau_plus, 1.0, math.inf)
        check_range("tau_minus", tau_minus, 1.0, math.inf)
        self.a_plus = Constrained(a_plus, "nonneg", learn, name="a_plus")
        self.a_minus = Constrained(a_minus, "nonneg", learn, name="a_minus")
        self.tau_plus = Constrained(tau_plus, "ge_one", learn, name="tau_plus")
        self.tau_minus = Constrained(tau_minus, "ge_one", learn, name="tau_minus")

    def initial_state(self, batch: int, n_pre: int, n_post: int, like: Tensor) -> STDPTraces:
        return STDPTraces(like.new_zeros(batch, n_pre), like.new_zeros(batch, n_post))

    def step(self, state: STDPTraces, pre: Tensor, post: Tensor, H: Tensor) -> tuple[Tensor, STDPTraces]:
        tr = stdp_traces_step(state, pre, post, self.a_plus(), self.a_minus(), self.tau_plus(), self.tau_minus())
        return stdp_update(tr, pre, post), tr

    def to_ir(self) -> ir.STDPRule:
        return ir.STDPRule(
            a_plus=_f(self.a_plus), a_minus=_f(self.a_minus),
            tau_plus=_f(self.tau_plus), tau_minus=_f(self.tau_minus),
        )


class Hebb(PlasticityRule):
    r"""Hebbian rule with decay (Miconi et al. 2018): ``e = eta (post pre^T - H)``, i.e. without
    modulation ``H_t = (1-eta) H_{t-1} + eta post pre^T``. ``eta`` in (0, 1) (sigmoid)."""

    def __init__(self, eta: float = 0.01, *, learn: bool = True) -> None:
        super().__init__()
        check_range("eta", eta, 0.0, 1.0)
        self.eta = Constrained(eta, "open_unit" if learn else "unit", learn, name="eta")

    def initial_state(self, batch: int, n_pre: int, n_post: int, like: Tensor) -> NoState:
        return NoState()

    def step(self, state: NoState, pre: Tensor, post: Tensor, H: Tensor) -> tuple[Tensor, NoState]:
        return hebb_increment(H, pre, post, self.eta()), state

    def to_ir(self) -> ir.HebbRule:
        return ir.HebbRule(eta=_f(self.eta))


class Oja(PlasticityRule):
    r"""Oja's rule: ``e_{ji} = eta post_j (pre_i - H_{ji} post_j)``. ``eta`` in (0, 1) (sigmoid)."""

    def __init__(self, eta: float = 0.01, *, learn: bool = True) -> None:
        super().__init__()
        check_range("eta", eta, 0.0, 1.0)
        self.eta = Constrained(eta, "open_unit" if learn else "unit", learn, name="eta")

    def initial_state(self, batch: int, n_pre: int, n_post: int, like: Tensor) -> NoState:
        return NoState()

    def step(self, state: NoState, pre: Tensor, post: Tensor, H: Tensor) -> tuple[Tensor, NoState]:
        return oja_increment(H, pre, post, self.eta()), state

    def to_ir(self) -> ir.OjaRule:
        return ir.OjaRule(eta=_f(self.eta))


RULES: dict[str, type[PlasticityRule]] = {"stdp": STDP, "hebb": Hebb, "oja": Oja}


def make_rule(spec: str | PlasticityRule | None) -> PlasticityRule | None:
    """A rule from a name (``"stdp"``, ``"hebb"``, ``"oja"``), an instance, or ``None``."""
    if spec is None or isinstance(spec, PlasticityRule):
        return spec
    if isinstance(spec, str) and spec in RULES:
        return RULES[spec]()
    raise ValueError(f"rule must be None, a PlasticityRule or one of {list(RULES)}, got {spec!r}")


def rule_from_ir(r: ir.Rule) -> PlasticityRule:
    """A fixed (non-learnable) rule module holding the IR's exact values."""
    if isinstance(r, ir.STDPRule):
        return STDP(r.a_plus, r.a_minus, r.tau_plus, r.tau_minus, learn=False)
    if isinstance(r, ir.HebbRule):
        return Hebb(r.eta, learn=False)
    if isinstance(r, ir.OjaRule):
        return Oja(r.eta, learn=False)
    raise TypeError(f"unknown IR rule {type(r).__name__}")
