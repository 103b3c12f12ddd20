"""Parameters and state of a lean spiking layer: the public NamedTuples, and how each projection
reaches the autograd op (:class:`ProjTensors`) and its kernels (:class:`~.stdp.StdpArgs`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from ..functional.plasticity import decay_factor
from ..surrogate import Surrogate
from .backend import _detach, _f
from .plan import _backward_mode
from .stdp import StdpArgs


class STDPParams(NamedTuple):
    """Mapped pair-STDP parameters (0-d tensors or floats): impulses ``a_plus``/``a_minus`` and
    time constants ``tau_plus``/``tau_minus`` (in steps), as :class:`~spikeplastic.rules.STDP` maps them."""

    a_plus: Tensor | float
    a_minus: Tensor | float
    tau_plus: Tensor | float
    tau_minus: Tensor | float


class LeanProjection(NamedTuple):
    """One projection into the layer: ``W = weight + alpha * H`` with ``H`` learned by ``stdp``.

    ``weight`` ``[n_post, n_pre]``; ``stdp=None`` makes it static (``alpha``, ``decay``, ``clip``
    unused); ``alpha``: ``[n_post, n_pre]`` (per synapse), 0-d (shared) or ``None`` (coefficient 1);
    ``decay``: 0-d rate in [0, 1] pulling ``H`` to 0 each step, or ``None`` for none at all;
    ``clip``: clamp ``H`` to ``[-clip, clip]`` (not invertible: chunked recomputation);
    ``rule_input_grad``: as :class:`~spikeplastic.PlasticLinear`'s (``False``: no gradient from the
    update back into the spikes it reads).
    """

    weight: Tensor
    stdp: STDPParams | None = None
    alpha: Tensor | None = None
    decay: Tensor | float | None = None
    clip: float | None = None
    rule_input_grad: bool = True


class LeanLIF(NamedTuple):
    """Mapped CUBA LIF parameters (scalars or ``[n]``) and its options, as :class:`~spikeplastic.neurons.LIF`."""

    du: Tensor | float
    dv: Tensor | float
    vth: Tensor | float
    bias: Tensor | float
    spike_fn: Surrogate
    reset: str = "zero"
    detach_reset: bool = True


class LayerState(NamedTuple):
    """State of a lean layer between episodes (``None`` where a projection is absent or static).

    ``u, v, s`` ``[B, n]`` (LIF); ``x_prev`` ``[B, n_in]`` (last input, consumed next step);
    ``H_ff [B, n, n_in]``, ``x_ff [B, n_in]``, ``y_ff [B, n]``: plastic part and STDP traces of the
    feed-forward projection; ``H_rec``, ``x_rec``, ``y_rec``: same for the recurrent one.
    """

    u: Tensor
    v: Tensor
    s: Tensor
    x_prev: Tensor
    H_ff: Tensor | None = None
    x_ff: Tensor | None = None
    y_ff: Tensor | None = None
    H_rec: Tensor | None = None
    x_rec: Tensor | None = None
    y_rec: Tensor | None = None


class LayerOutput(NamedTuple):
    """``spikes`` ``[T, B, n]``; ``voltages`` (post-reset ``v``) and ``currents`` (``u``) when requested."""

    spikes: Tensor
    voltages: Tensor | None
    currents: Tensor | None


class ProjTensors(NamedTuple):
    """One projection's tensor inputs to the layer op, in the autograd Function's order (``None``
    where absent): ``dp = decay_factor(tau_plus)``, ``dm``, ``gamma = 1 - decay`` carry the
    gradients of the time constants and the decay; ``tau_plus``, ``tau_minus``, ``decay`` follow
    detached, for the reference kernel (which calls ``functional`` with them) only."""

    w: Tensor | None = None
    alpha: Tensor | None = None
    a_plus: Tensor | None = None
    a_minus: Tensor | None = None
    dp: Tensor | None = None
    dm: Tensor | None = None
    gamma: Tensor | None = None
    H0: Tensor | None = None
    X0: Tensor | None = None
    Y0: Tensor | None = None
    tau_plus: Tensor | None = None
    tau_minus: Tensor | None = None
    decay: Tensor | None = None


_PROJ_FIELDS = len(ProjTensors._fields)
#: the inputs that get gradients (the last three are detached constants)
_PROJ_GRAD_FIELDS = 10


@dataclass(frozen=True)
class _ProjSpec:
    plastic: bool
    mode: str          # alpha: "per_synapse" | "shared" | "none"
    clip: float | None
    has_gamma: bool
    rule_grad: bool = True  # gradients from the update back into its spike inputs


@dataclass(frozen=True)
class _LayerSpec:
    ff: _ProjSpec
    rec: _ProjSpec | None
    rec_first: bool
    spike_fn: Surrogate
    reset: str
    detach_reset: bool
    record_v: bool
    record_u: bool
    backend: str
    checkpoint_every: int | None
    reconstruct: str
    x_as_bool: bool
    store_currents: bool


class _Proj:
    """Run-time state of one projection inside the layer op (forward and backward)."""

    def __init__(self, spec: _ProjSpec, t: ProjTensors, T: int, reconstruct: str) -> None:
        self.spec = spec
        self.w, self.alpha, self.ap, self.am, self.dp, self.dm, self.gamma, self.H0, self.X0, self.Y0 = t[:10]
        self.tau_p, self.tau_m, self.decay = t.tau_plus, t.tau_minus, t.decay
        self.mode_bwd: str | None = None
        self.k_h = T
        if spec.plastic:
            never = spec.clip is not None or reconstruct == "never"
            k_rev = _backward_mode(T, None if never else _f(self.gamma), never)
            self.mode_bwd = "recompute" if k_rev is None else "reverse"
            self.k_h = T if k_rev is None else k_rev

    @property
    def recompute(self) -> bool:
        return self.mode_bwd == "recompute"

    def args(self, backend: str) -> StdpArgs:
        """The kernels' constants of this (plastic) projection, detached. ``tau_plus``, ``tau_minus``
        and ``decay`` only for the ``"reference"`` kernel, which alone reads them: a compiled step
        guards on every tensor it is handed (measured: ~8 us per step more with them)."""
        ref = backend == "reference"
        return _detach(StdpArgs(self.alpha, self.ap, self.am, self.dp, self.dm, self.gamma, self.spec.mode,
                                self.spec.clip, self.tau_p if ref else None, self.tau_m if ref else None,
                                self.decay if ref else None))

    # what a backward keeps on the projection while it runs (workspace, adjoints, sums, buffers)
    _BACKWARD_ONLY = ("Hw", "gH", "gX", "gY", "gw", "galpha", "s_alpha", "s_gamma", "gdp", "gdm", "gap", "gam",
                      "want_alpha", "want_gamma", "buf", "spare", "Xc", "Yc", "GX", "GY", "GP", "Hs", "k", "f")

    def release_backward(self) -> None:
        """Drop what a backward left here: the graph keeps only what the forward saved."""
        for k in self._BACKWARD_ONLY:
            self.__dict__.pop(k, None)


def _as_param(v: Tensor | float, like: Tensor) -> Tensor:
    return v if isinstance(v, Tensor) else torch.tensor(float(v), dtype=like.dtype, device=like.device)


def _alpha_mode(alpha: Tensor | None) -> str:
    if alpha is None:
        return "none"
    return "shared" if alpha.dim() == 0 else "per_synapse"


def _proj_tensors(p: LeanProjection | None, like: Tensor, H0, X0, Y0) -> ProjTensors:
    if p is None:
        return ProjTensors()
    if p.stdp is None:
        return ProjTensors(p.weight)
    r = p.stdp
    tau_p, tau_m = _as_param(r.tau_plus, like), _as_param(r.tau_minus, like)
    decay = None if p.decay is None else _as_param(p.decay, like)
    return ProjTensors(p.weight, p.alpha, _as_param(r.a_plus, like), _as_param(r.a_minus, like),
                       decay_factor(tau_p), decay_factor(tau_m), None if decay is None else 1 - decay, H0, X0, Y0,
                       tau_p.detach(), tau_m.detach(), None if decay is None else decay.detach())


def _proj_spec(p: LeanProjection | None) -> _ProjSpec | None:
    if p is None:
        return None
    if p.stdp is None:
        return _ProjSpec(False, "none", None, False)
    if p.alpha is not None and p.alpha.dim() not in (0, 2):
        raise ValueError(f"alpha must be 0-d (shared) or [n_post, n_pre] (per synapse), got shape {tuple(p.alpha.shape)}")
    return _ProjSpec(True, _alpha_mode(p.alpha), None if p.clip is None else float(p.clip), p.decay is not None,
                     bool(p.rule_input_grad))

