"""Loihi-legal training: project a network's constants onto what Loihi 2 holds, with straight-through
gradients, so that a net trained this way keeps its behaviour after ``to_lava(mode="fixed")``.

:func:`loihi_legal` installs, on an existing :class:`~spikeplastic.network.Network`, projections that
mirror :func:`spikeplastic.export.quantize_ir` (one scale ``k`` per LIF population)::

    k        = min(2^14 / max(vth),  limit * 2^7 / max|w_in|  over incoming projections)
               limit = 254 (static) or 254 / plastic_headroom (plastic)
    vth      -> round(vth * k) / k                              17-bit threshold
    du       -> clip(round(4096 du), 1, 4096) / 4096            12-bit decays
    dv       -> clip(round(4096 dv), 0, 4095) / 4096
    bias     -> mant * 2^exp / (64 k),  mant * 2^exp ~= round(bias * 64 k)   13-bit mantissa, exp 0..7
    w        -> step * round(w / step),  step = 2^wexp / k  (x2 for mixed-sign or plastic matrices),
                wexp = max(0, ceil(log2(max|w| k / limit)))     8-bit weights with exponent
    STDP tau -> round(tau) in [1, 255]                          integer trace time constants
    decay, Hebb/Oja eta, eta_e -> nearest m*2^e (m in [-8, 7], e in [-7, 8])   rule literals

and (``emulate_integer_state=True``) makes every LIF keep ``u, v`` on the integer grid
``1 / (64 k)`` with Lava's truncating decay, so the forward pass *is* Lava's fixed-point LIF
(``PyLifModelBitAcc``): for static networks, spikes are bit-exact in float64 against
``spikeplastic.export.simulate_fixed`` / Lava (tested). Gradients pass straight through every
rounding.

Not emulated (reported by ``quantize_ir``'s :class:`QuantReport` instead): the learning engine's
7-bit traces, integer impulses times rule literals for the STDP amplitudes, and its stochastic
rounding (one random number per step shared by all synapses), so plastic networks are
approximate in fixed point. Exactness assumes the threshold sets ``k`` (the usual case:
``max|w_in| * k <= limit * 2^7``); when a large weight sets it, rounding moves ``k`` slightly and the
exporter's projection can differ by an LSB.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .network import Network
from .rules import STDP, Hebb, Oja

__all__ = ["LoihiSpec", "loihi_legal", "lava_literals", "remove_loihi_legal", "population_scale", "nearest_literal"]

_LITERALS = sorted({m * 2.0**e for m in range(-8, 8) for e in range(-7, 9)})


@dataclass(frozen=True, kw_only=True)
class LoihiSpec:
    """Settings of the Loihi-legal projection (defaults equal ``quantize_ir``'s)."""

    vth_int: int = 2**14
    plastic_headroom: float = 2.0
    emulate_integer_state: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.vth_int, bool) or not isinstance(self.vth_int, int) or not 1 <= self.vth_int < 2**17:
            raise ValueError(f"vth_int must be an int in [1, 2^17), got {self.vth_int!r}")
        if not (isinstance(self.plastic_headroom, (int, float)) and self.plastic_headroom >= 1):
            raise ValueError(f"plastic_headroom must be a number >= 1, got {self.plastic_headroom!r}")


def _ste(x: Tensor, y: Tensor) -> Tensor:
    return x + (y - x).detach()


def nearest_literal(x: Tensor) -> Tensor:
    """Nearest Lava rule literal ``m*2^e`` (m in [-8, 7], e in [-7, 8]), straight-through."""
    grid = torch.tensor(_LITERALS, dtype=x.dtype, device=x.device)
    idx = (x.detach().unsqueeze(-1) - grid).abs().argmin(-1)
    return _ste(x, grid[idx])


def _limit(plastic: bool, spec: LoihiSpec) -> float:
    return 254.0 / spec.plastic_headroom if plastic else 254.0


def population_scale(net: Network, name: str, spec: LoihiSpec = LoihiSpec()) -> Tensor:
    """The fixed-point scale ``k`` of population ``name`` (integer units per float unit; detached)."""
    k = spec.vth_int / net.pops[name].vth.mapped().detach().max()
    for pname, (_, post) in net.topology.items():
        if post != name:
            continue
        layer = net.projs[pname]
        wmax = layer.weight.mapped().detach().abs().max()
        if float(wmax) > 0:
            k = torch.minimum(k, _limit(layer.plastic, spec) * 2.0**7 / wmax)
    return k


def _quant_weight(w: Tensor, k: Tensor, plastic: bool, spec: LoihiSpec) -> Tensor:
    wd = w.detach()
    wmax = float(wd.abs().max())
    wexp = 0 if wmax == 0 else max(0, math.ceil(math.log2(wmax * float(k) / _limit(plastic, spec))))
    step = 2.0**wexp / k
    ints = torch.round(wd / step)
    mixed = plastic or (bool((ints < 0).any()) and bool((ints > 0).any()))
    if mixed:
        ints = (2 * torch.round(wd / step / 2)).clamp(-256, 254)
    elif bool((ints < 0).any()):
        ints = ints.clamp(-255, 0)
    else:
        ints = ints.clamp(0, 255)
    return _ste(w, ints * step)


def _quant_bias(b: Tensor, k: Tensor) -> Tensor:
    """``bias_mant * 2^bias_exp / (64 k)`` with a 13-bit signed mantissa (as ``quantize_ir``)."""
    ints = torch.round(b * 64 * k)
    big = ints.abs() > 2**12 - 1
    if bool(big.any()):
        bexp = torch.where(big, torch.ceil(torch.log2(ints.abs().clamp_min(1) / (2**12 - 1))), torch.zeros_like(ints))
        ints = torch.round(ints / 2.0**bexp) * 2.0**bexp
    return ints / (64 * k)


def loihi_legal(net: Network, spec: LoihiSpec = LoihiSpec()) -> Network:
    """Install the Loihi-legal projection on ``net`` (in place; returns ``net``).

    Raises:
        ValueError: a construct with no fixed-point model (subtract reset, ``clip`` on H,
            neuromodulation, Hebb/Oja rules, current inputs), naming it.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a spikeplastic Network, got {type(net).__name__}")
    if not isinstance(spec, LoihiSpec):
        raise TypeError(f"spec must be a LoihiSpec, got {type(spec).__name__}")
    if net.input_kind != "spikes":
        raise ValueError("loihi_legal: input_kind must be 'spikes' (Loihi inputs are spikes)")
    for name, pop in net.pops.items():
        if pop.reset != "zero":
            raise ValueError(f"loihi_legal: population {name!r} uses reset={pop.reset!r}; Loihi has the zero reset only")
    for pname, layer in net.projs.items():
        if layer.clip is not None:
            raise ValueError(f"loihi_legal: projection {pname!r} clips H, which Loihi cannot do (clip=None)")
        if layer.modulation is not None:
            raise ValueError(f"loihi_legal: projection {pname!r} is neuromodulated; fixed point has no third-factor model")
        if layer.rule is not None and not isinstance(layer.rule, STDP):
            raise ValueError(f"loihi_legal: projection {pname!r} uses {type(layer.rule).__name__}; fixed point exports STDP only")

    def kf(name: str) -> Callable[[], Tensor]:
        return lambda: population_scale(net, name, spec)

    for name, pop in net.pops.items():
        k = kf(name)
        pop.du.transform = lambda v: _ste(v, torch.round(4096 * v.detach()).clamp(1, 4096) / 4096)
        pop.dv.transform = lambda v: _ste(v, torch.round(4096 * v.detach()).clamp(0, 4095) / 4096)
        pop.vth.transform = lambda v, k=k: _ste(v, torch.round(v.detach() * k()).clamp(1, 2**17 - 1) / k())
        pop.bias.transform = lambda v, k=k: _ste(v, _quant_bias(v.detach(), k()))
        pop.quantum = (lambda k=k: 1.0 / (64 * k())) if spec.emulate_integer_state else None
    for pname, layer in net.projs.items():
        k = kf(net.topology[pname][1])
        plastic = layer.plastic
        layer.weight.transform = lambda w, k=k, plastic=plastic: _quant_weight(w, k(), plastic, spec)
        if isinstance(layer.rule, STDP):
            for q in (layer.rule.tau_plus, layer.rule.tau_minus):
                q.transform = lambda v: _ste(v, torch.round(v.detach()).clamp(1, 255))
    lava_literals(net)
    return net


def lava_literals(net: Network) -> Network:
    """Keep the coefficients that Lava's learning engine takes as rule literals on the ``m*2^e`` grid
    (in place; returns ``net``): every plastic projection's ``decay``, Hebb/Oja ``eta`` and the
    retroactive modulation's ``eta_e``, with straight-through gradients.

    This is all that exact *float* export (``to_lava(mode="float")``) needs; train with it on, and
    the exported network is the trained one. :func:`loihi_legal` (fixed point) implies it.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a spikeplastic Network, got {type(net).__name__}")
    for layer in net.projs.values():
        if not layer.plastic:
            continue
        layer.decay.transform = nearest_literal
        if isinstance(layer.rule, (Hebb, Oja)):
            layer.rule.eta.transform = nearest_literal
        if layer.modulation is not None and layer.modulation.mode == "retroactive":
            layer.modulation.eta_e.transform = nearest_literal
    return net


def remove_loihi_legal(net: Network) -> Network:
    """Undo :func:`loihi_legal` (in place; returns ``net``)."""
    from ._params import Constrained
    from .neurons import LIF

    for m in net.modules():
        if isinstance(m, Constrained):
            m.transform = None
        if isinstance(m, LIF):
            m.quantum = None
    return net
