"""Current-based leaky integrate-and-fire step (Lava's ``LIF`` float model).

Per step, with synaptic input ``a``::

    u' = u * (1 - du) + a
    v' = v * (1 - dv) + u' + bias            (subtract reset: ... - vth * s_prev)
    s  = spike_fn(v' - vth)                   forward: strict threshold v' > vth
    v' = v' * (1 - s)                         zero reset (Lava); u is not reset

snnTorch mapping: ``Leaky(beta)`` is ``du = 1, dv = 1 - beta``; ``Synaptic(alpha, beta)`` is
``du = 1 - alpha, dv = 1 - beta``. ``reset="subtract"`` follows snnTorch's default delayed
subtraction: the spike of the previous step subtracts ``vth`` from this step's voltage.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

__all__ = ["LIFState", "lif_step"]


class LIFState(NamedTuple):
    """State of a LIF population, each ``[B, n]``: current ``u``, voltage ``v``, last spikes ``s``."""

    u: Tensor
    v: Tensor
    s: Tensor


def _ste(x: Tensor, y: Tensor) -> Tensor:
    """Forward ``y``, backward identity to ``x`` (straight-through)."""
    return x + (y - x).detach()


def lif_step(
    a: Tensor,
    state: LIFState,
    du: Tensor | float,
    dv: Tensor | float,
    vth: Tensor | float,
    bias: Tensor | float,
    spike_fn: Callable[[Tensor], Tensor],
    reset: str = "zero",
    detach_reset: bool = True,
    quantum: Tensor | float | None = None,
) -> LIFState:
    """One LIF step; returns the new state, whose ``s`` is this step's spikes.

    Args:
        a: synaptic input ``[B, n]``.
        state: previous :class:`LIFState`.
        du, dv: current and voltage decays in [0, 1] (scalars or ``[n]``).
        vth: threshold (scalar or ``[n]``); bias: constant input current.
        spike_fn: maps ``v - vth`` to spikes (a :class:`~spikeplastic.surrogate.Surrogate`).
        reset: ``"zero"`` (Lava/Loihi) or ``"subtract"`` (snnTorch default, delayed).
        detach_reset: stop gradients through the reset term (snnTorch default).
        quantum: if given, emulate Loihi's integer state: the decayed terms ``u*(1-du)`` and
            ``v*(1-dv)`` are truncated toward zero to multiples of ``quantum`` (straight-through
            gradient), ``u``/``v`` are kept on that grid, ``v`` is clipped to 24 bits (``|v| <= 2^23 - 1`` units) and the spike is
            decided on integers. With constants on Loihi's grid (:func:`spikeplastic.quant.loihi_legal`)
            this is Lava's fixed-point LIF, bit-exact in float64 (approximate in float32).
    """
    if quantum is None:
        u = state.u * (1 - du) + a
        v = state.v * (1 - dv) + u + bias
    else:
        # Work in integer units of `quantum` (exact in float64), straight-through gradients.
        ui, vi = torch.round(state.u / quantum), torch.round(state.v / quantum)
        u = _ste(state.u * (1 - du), torch.trunc(ui * (1 - du)) * quantum) + a
        u = _ste(u, torch.round(u / quantum) * quantum)
        v = _ste(state.v * (1 - dv), torch.trunc(vi * (1 - dv)) * quantum) + u + bias
        v = _ste(v, torch.round(v / quantum).clamp(-(2**23 - 1), 2**23 - 1) * quantum)
    if reset == "subtract":
        s_prev = state.s.detach() if detach_reset else state.s
        v = v - s_prev * vth
    x = v - vth
    if quantum is not None:  # decide the spike on integers: no float tie can flip it
        x = _ste(x, (torch.round(v / quantum) - torch.round(vth / quantum)) * quantum)
    s = spike_fn(x)
    if reset == "zero":
        r = s.detach() if detach_reset else s
        v = v * (1 - r)
    return LIFState(u, v, s)
