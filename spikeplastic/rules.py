"""Plasticity rules: learnable, constrained parameters and a pure step.

A rule maps this step's pre/post activity (and the current plastic matrix ``H``) to an update
candidate ``e`` ``[B, n_post, n_pre]``; :class:`~spikeplastic.plastic.PlasticLinear` composes it
with the plasticity coefficient, neuromodulation, decay and clipping.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from . import ir
from ._params import Constrained
from ._validation import check_positive, check_range
from .functional.plasticity import (
    NOISE_KIND,
    NPState,
    STDPTraces,
    hebb_increment,
    node_perturbation_step,
    oja_increment,
    perturbation_noise,
    reward_baseline_step,
    stdp_traces_step,
    stdp_update,
)

__all__ = ["PlasticityRule", "STDP", "Hebb", "Oja", "NodePerturbation", "NoState"]


def _f(q: Constrained) -> float:
    return float(q().detach().cpu().double())


class NoState(NamedTuple):
    """State of a rule that keeps none."""


class PlasticityRule(nn.Module, ABC):
    """Base class of all plasticity rules (``initial_state`` / ``step``, like an optimiser's init/update).

    Two optional parts, no-ops here: :meth:`perturbation` (a current the rule injects into the
    postsynaptic population each step) and :meth:`gate` (how the rule transforms the third factor);
    ``requires_third_factor`` says the projection must have a neuromodulation.
    """

    #: whether a projection with this rule needs a third factor (a ``Neuromodulation``)
    requires_third_factor: ClassVar[bool] = False

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

    def perturbation(self, state: Any) -> tuple[Tensor | None, Any]:
        """The current ``[B, n_post]`` this rule adds to its postsynaptic population's input at this
        step (``None``: none) and the new rule state. Called once per step, after :meth:`step`."""
        return None, state

    def gate(self, state: Any, m: Tensor) -> tuple[Tensor, Any]:
        """The third factor that gates the update, from the projection's modulation signal ``m``
        (``[B, 1, 1]`` or ``[B, n_post, 1]``), and the new rule state. Default: ``m`` unchanged."""
        return m, state


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


class _EtaRule(PlasticityRule):
    """A stateless rule with one learnable rate ``eta`` in (0, 1) (sigmoid): ``e = increment(H, pre, post, eta)``."""

    _increment: ClassVar[Any]
    _ir: ClassVar[Any]

    def __init__(self, eta: float = 0.01, *, learn: bool = True) -> None:
        super().__init__()
        check_range("eta", eta, 0.0, 1.0)
        self.eta = Constrained(eta, "open_unit" if learn else "unit", learn, name="eta")

    def initial_state(self, batch: int, n_pre: int, n_post: int, like: Tensor) -> NoState:
        return NoState()

    def step(self, state: NoState, pre: Tensor, post: Tensor, H: Tensor) -> tuple[Tensor, NoState]:
        return type(self)._increment(H, pre, post, self.eta()), state

    def to_ir(self) -> Any:
        return type(self)._ir(eta=_f(self.eta))


class Hebb(_EtaRule):
    r"""Hebbian rule with decay (Miconi et al. 2018): ``e = eta (post pre^T - H)``, i.e. without
    modulation ``H_t = (1-eta) H_{t-1} + eta post pre^T``. ``eta`` in (0, 1) (sigmoid)."""

    _increment = staticmethod(hebb_increment)
    _ir = ir.HebbRule


class Oja(_EtaRule):
    r"""Oja's rule: ``e_{ji} = eta post_j (pre_i - H_{ji} post_j)``. ``eta`` in (0, 1) (sigmoid)."""

    _increment = staticmethod(oja_increment)
    _ir = ir.OjaRule


class NodePerturbation(PlasticityRule):
    r"""Node perturbation (Fiete & Seung 2006): a three-factor rule that needs no backpropagated error.

    Each step ``t`` the projection adds a perturbation :math:`n_t = \sigma \xi_t` to its postsynaptic
    population's input current (:math:`\xi_t`: zero-mean, unit-variance noise from the counter-based
    stream :func:`~spikeplastic.functional.perturbation_noise` of a per-sample seed). The candidate
    pairs a presynaptic trace with the perturbation that enters the same input current as the
    spikes it traces (synaptic delay one step: spikes of step ``t`` act at ``t + 1``):

    .. math::
        x_t = x_{t-1} e^{-1/\tau} + \eta\, s^{pre}_t,\qquad e_t = n_{t+1} \otimes x_t

    and the update is gated by the projection's third factor ``m`` (its ``Neuromodulation``: an
    external signal such as the reward, or a learned one), with ``baseline=True`` minus a running
    baseline:

    .. math::  m'_t = m_t - b_{t-1},\qquad b_t = b_{t-1} + \eta_b (m_t - b_{t-1})

    (``baseline=False``: :math:`m'_t = m_t`). With retroactive modulation the eligibility trace
    ``E`` accumulates ``e`` and the reward that arrives later is credited to it
    (:class:`~spikeplastic.PlasticLinear`); simple modulation pairs ``e_t`` with ``m_t`` of the
    same step. Learnable: ``sigma >= 0`` (softplus), ``tau >= 1`` (1 + softplus), ``eta >= 0``
    (softplus), ``eta_b`` in (0, 1) (sigmoid); sign and scale per synapse from the projection's
    ``alpha``. The update of a fresh state's step ``-1`` (before any perturbation) leaves the
    baseline unchanged, as Lava has no such step.

    Lava (float): ``x1`` = the trace (impulse ``eta``, tau ``tau``), ``y1`` = the perturbation,
    ``y2`` = the gate, ``dw = u0*y2*y1*x1`` (x alpha in ``tag_1``), the noise fed by the project's
    ``PerturbationFactor`` process from the same stream.

    Args:
        sigma: noise scale (std of the perturbation current). tau: presynaptic trace time constant
            (steps). eta: trace impulse (learning rate). eta_b: baseline rate.
        baseline: subtract the running baseline from the third factor.
        learn: make the four coefficients learnable.
    """

    requires_third_factor: ClassVar[bool] = True

    def __init__(
        self,
        sigma: float = 0.1,
        tau: float = 10.0,
        eta: float = 0.02,
        eta_b: float = 0.1,
        *,
        baseline: bool = True,
        learn: bool = True,
    ) -> None:
        super().__init__()
        check_positive("sigma", sigma, allow_zero=True)
        check_range("tau", tau, 1.0, math.inf)
        check_positive("eta", eta, allow_zero=True)
        check_range("eta_b", eta_b, 0.0, 1.0)
        if not isinstance(baseline, bool):
            raise TypeError(f"baseline: expected a bool, got {type(baseline).__name__} {baseline!r}")
        self.sigma = Constrained(sigma, "nonneg", learn, name="sigma")
        self.tau = Constrained(tau, "ge_one", learn, name="tau")
        self.eta = Constrained(eta, "nonneg", learn, name="eta")
        self.eta_b = Constrained(eta_b, "open_unit" if learn else "unit", learn, name="eta_b")
        self.baseline = baseline

    def initial_state(self, batch: int, n_pre: int, n_post: int, like: Tensor, *, seed: int | None = None) -> NPState:
        """Zero trace and baseline; noise seeds drawn from torch's global generator (one per sample),
        or all equal to ``seed`` (an int in [0, 2^32)) for a reproducible stream."""
        if seed is None:
            seeds = torch.randint(0, 2**32, (batch,), dtype=torch.int64).to(like.device)
        else:
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
                raise ValueError(f"seed: expected an int in [0, 2^32) or None, got {seed!r}")
            seeds = torch.full((batch,), seed, dtype=torch.int64, device=like.device)
        step = torch.zeros(batch, dtype=torch.int64, device=like.device)
        return NPState(like.new_zeros(batch, n_pre), perturbation_noise(seeds, step, n_post, like.dtype),
                       like.new_zeros(batch, n_post), seeds, step)

    def step(self, state: NPState, pre: Tensor, post: Tensor, H: Tensor) -> tuple[Tensor, NPState]:
        e, x = node_perturbation_step(state.x, pre, self.sigma() * state.xi, self.tau(), self.eta())
        return e, state._replace(x=x)

    def perturbation(self, state: NPState) -> tuple[Tensor, NPState]:
        nxt = state.step + 1
        xi = perturbation_noise(state.seed, nxt, state.xi.shape[-1], state.xi.dtype)
        return self.sigma() * state.xi, state._replace(xi=xi, step=nxt)

    def gate(self, state: NPState, m: Tensor) -> tuple[Tensor, NPState]:
        if not self.baseline:
            return m, state
        g, b = reward_baseline_step(state.baseline, m.squeeze(-1), self.eta_b())
        fresh = (state.step == 0).unsqueeze(-1)  # the update of step -1: no perturbation happened yet
        return g.unsqueeze(-1), state._replace(baseline=torch.where(fresh, state.baseline, b))

    def to_ir(self) -> ir.NodePerturbationRule:
        return ir.NodePerturbationRule(
            sigma=_f(self.sigma), tau=_f(self.tau), eta=_f(self.eta), eta_b=_f(self.eta_b),
            baseline=self.baseline, noise=NOISE_KIND,
        )

    def extra_repr(self) -> str:
        return f"baseline={self.baseline}"


RULES: dict[str, type[PlasticityRule]] = {"stdp": STDP, "hebb": Hebb, "oja": Oja, "np": NodePerturbation}


def make_rule(spec: str | PlasticityRule | None) -> PlasticityRule | None:
    """A rule from a name (``"stdp"``, ``"hebb"``, ``"oja"``, ``"np"``), an instance, or ``None``."""
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
    if isinstance(r, ir.NodePerturbationRule):
        if r.noise != NOISE_KIND:
            raise ValueError(f"NodePerturbationRule.noise: expected {NOISE_KIND!r} (the only noise stream this "
                             f"version generates), got {r.noise!r}")
        return NodePerturbation(r.sigma, r.tau, r.eta, r.eta_b, baseline=r.baseline, learn=False)
    raise TypeError(f"unknown IR rule {type(r).__name__}")
