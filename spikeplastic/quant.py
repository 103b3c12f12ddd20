"""Loihi-legal training: project a network's constants onto what Loihi 2 holds, with straight-through
gradients, so that a net trained this way keeps its behaviour after ``to_lava(mode="fixed")``.

:func:`loihi_legal` installs, on an existing :class:`~spikeplastic.network.Network`, the
straight-through forms of :mod:`spikeplastic.loihi_format` (the recipe, shared with the exporter's
:func:`spikeplastic.export.quantize_ir`; one scale ``k`` per LIF population): threshold, 12-bit
decays, bias, 8-bit weights with exponent, integer STDP time constants, and (:func:`lava_literals`)
the rule literals ``m*2^e`` for decay, Hebb/Oja eta and eta_e.

With ``emulate_integer_state=True`` every LIF keeps ``u, v`` on the integer grid ``1 / (64 k)``
with Lava's truncating decay, so the forward pass *is* Lava's fixed-point LIF
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

from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from .loihi_format import (
    DEFAULT_VTH_INT,
    STATE_SCALE,
    VTH_BITS,
    bias_ste,
    du_ste,
    dv_ste,
    fixed_point_scale,
    nearest_literal,
    tau_ste,
    vth_ste,
    weight_limit,
    weights_ste,
)
from .network import Network
from .rules import STDP, Hebb, Oja

__all__ = ["LoihiSpec", "loihi_legal", "lava_literals", "remove_loihi_legal", "population_scale", "nearest_literal"]


@dataclass(frozen=True, kw_only=True)
class LoihiSpec:
    """Settings of the Loihi-legal projection (defaults equal ``quantize_ir``'s)."""

    vth_int: int = DEFAULT_VTH_INT
    plastic_headroom: float = 2.0
    emulate_integer_state: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.vth_int, bool) or not isinstance(self.vth_int, int) or not 1 <= self.vth_int < 2**VTH_BITS:
            raise ValueError(f"vth_int must be an int in [1, 2^17), got {self.vth_int!r}")
        if not (isinstance(self.plastic_headroom, (int, float)) and self.plastic_headroom >= 1):
            raise ValueError(f"plastic_headroom must be a number >= 1, got {self.plastic_headroom!r}")


def population_scale(net: Network, name: str, spec: LoihiSpec = LoihiSpec()) -> Tensor:
    """The fixed-point scale ``k`` of population ``name`` (integer units per float unit; detached)."""
    incoming = []
    for pname, (_, post) in net.topology.items():
        if post == name:
            layer = net.projs[pname]
            incoming.append((layer.weight.mapped().detach().abs().max(), weight_limit(layer.plastic, spec.plastic_headroom)))
    return fixed_point_scale(net.pops[name].vth.mapped().detach().max(), incoming, spec.vth_int)


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
        pop.du.transform = du_ste
        pop.dv.transform = dv_ste
        pop.vth.transform = lambda v, k=k: vth_ste(v, k())
        pop.bias.transform = lambda v, k=k: bias_ste(v, k())
        pop.quantum = (lambda k=k: 1.0 / (STATE_SCALE * k())) if spec.emulate_integer_state else None
    for pname, layer in net.projs.items():
        k = kf(net.topology[pname][1])
        plastic = layer.plastic
        limit = weight_limit(plastic, spec.plastic_headroom)
        layer.weight.transform = lambda w, k=k, limit=limit, plastic=plastic: weights_ste(w, k(), limit, plastic)
        if isinstance(layer.rule, STDP):
            for q in (layer.rule.tau_plus, layer.rule.tau_minus):
                q.transform = tau_ste
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
