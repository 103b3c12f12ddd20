"""Interop with snnTorch: build a :class:`Network` from an ``nn.Sequential`` of Linear + Leaky/Synaptic."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .network import Network
from .neurons import LIF
from .plastic import PlasticLinear
from .surrogate import SURROGATES, Surrogate, surrogate as make_surrogate

__all__ = ["from_snntorch"]


_SNN_ALIASES = {"straight_through_estimator": "straight_through"}


def _surrogate_of(layer: Any) -> Surrogate:
    fn = getattr(layer, "spike_grad", None)
    name = getattr(fn, "__qualname__", "").split(".")[0]
    name = _SNN_ALIASES.get(name, name)
    if name not in SURROGATES:
        raise ValueError(
            f"{type(layer).__name__}.spike_grad {name or fn!r} has no spikeplastic equivalent; "
            f"use one of snntorch.surrogate.{{{', '.join(SURROGATES)}}}"
        )
    vals = [c.cell_contents for c in (fn.__closure__ or ()) if isinstance(c.cell_contents, (int, float))]
    if name in ("atan",) and vals:
        return make_surrogate(name, alpha=float(vals[0]))
    if name in ("fast_sigmoid", "sigmoid") and vals:
        return make_surrogate(name, slope=float(vals[0]))
    if name == "triangular" and vals:
        return make_surrogate(name, threshold=float(vals[0]))
    return make_surrogate(name)


def from_snntorch(model: nn.Module, *, learn: bool = True) -> Network:
    """Map ``nn.Sequential(Linear, Leaky|Synaptic, Linear, Leaky|Synaptic, ...)`` to a :class:`Network`.

    Mapping: ``Leaky(beta, threshold)`` -> ``LIF(du=1, dv=1-beta, vth=threshold)``;
    ``Synaptic(alpha, beta)`` -> ``LIF(du=1-alpha, dv=1-beta)``; ``Linear(W, b)`` -> a static
    :class:`PlasticLinear` with weight ``W`` and the LIF's ``bias = b`` (Leaky only).
    ``reset_mechanism`` "zero" and "subtract" map to the same-named resets (both follow snnTorch's
    semantics; only "zero" exports to Lava's built-in LIF); "none" is rejected. ``Synaptic`` with
    the zero reset needs ``reset_delay=False`` (snnTorch's delayed zero reset of ``Synaptic`` silences
    the step after a spike, which a LIF does not); subtract needs the default ``reset_delay=True``.

    Timing: spikeplastic (like Lava) delays every projection by one step, so layer ``L`` fires
    ``L`` steps after snnTorch's layer ``L`` for the same input. Without biases the spike trains
    are otherwise identical; a nonzero bias also acts during those first ``L - 1`` steps.

    Raises:
        TypeError: ``model`` is not an ``nn.Sequential`` or holds an unsupported layer.
        ValueError: a layer's settings cannot be mapped (names the layer and setting).
    """
    try:
        import snntorch as snn
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("from_snntorch needs snntorch: pip install 'spikeplastic[snntorch]'") from e
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential of Linear and Leaky/Synaptic layers, got {type(model).__name__}")
    layers = list(model)
    if len(layers) % 2 or not layers:
        raise ValueError("model must alternate nn.Linear and snn.Leaky/snn.Synaptic layers (an even, non-zero count)")
    pops: dict[str, LIF] = {}
    projs = []
    prev, n_in = "in", None
    for i in range(0, len(layers), 2):
        lin, neu = layers[i], layers[i + 1]
        where = f"model[{i}]"
        if not isinstance(lin, nn.Linear):
            raise TypeError(f"{where} must be nn.Linear, got {type(lin).__name__}")
        if type(neu) not in (snn.Leaky, snn.Synaptic):
            raise TypeError(f"model[{i + 1}] must be snn.Leaky or snn.Synaptic, got {type(neu).__name__}")
        reset = neu.reset_mechanism
        if reset not in ("zero", "subtract"):
            raise ValueError(f"model[{i + 1}].reset_mechanism={reset!r} cannot be mapped (use 'zero' or 'subtract')")
        if getattr(neu, "inhibition", False):
            raise ValueError(f"model[{i + 1}] uses inhibition=True, which has no LIF equivalent")
        if reset == "subtract" and not getattr(neu, "reset_delay", True):
            raise ValueError(f"model[{i + 1}]: subtract reset with reset_delay=False is not supported")
        if reset == "zero" and isinstance(neu, snn.Synaptic) and getattr(neu, "reset_delay", True):
            # snnTorch's delayed zero reset of Synaptic also zeroes the step after a spike (no spike
            # possible there); Lava's LIF resets v at the spike and integrates on at the next step.
            raise ValueError(
                f"model[{i + 1}]: snn.Synaptic with reset_mechanism='zero' maps to the LIF zero reset only with "
                "reset_delay=False"
            )
        if getattr(neu, "state_quant", False):
            raise ValueError(f"model[{i + 1}] uses state_quant, which has no LIF equivalent")
        gsf = getattr(neu, "graded_spikes_factor", None)
        if gsf is not None and bool((torch.as_tensor(gsf) != 1).any()):
            raise ValueError(f"model[{i + 1}].graded_spikes_factor must be 1 (LIF spikes are 0/1), got {gsf!r}")
        w = lin.weight.detach().clone()
        b = lin.bias.detach().clone() if lin.bias is not None else torch.zeros(lin.out_features)
        beta = neu.beta.detach().clone()
        kw: dict[str, Any] = dict(beta=beta, vth=neu.threshold.detach().clone(), reset=reset,
                                  surrogate=_surrogate_of(neu), per_neuron=beta.dim() == 1)
        if isinstance(neu, snn.Synaptic):
            kw["alpha"] = neu.alpha.detach().clone()
            if bool((b != 0).any()):
                raise ValueError(
                    f"{where}: a Linear bias before snn.Synaptic enters the synaptic current and cannot be "
                    "mapped to a LIF bias; use bias=False"
                )
        name = f"l{i // 2 + 1}"
        pops[name] = LIF(lin.out_features, bias=b, learn_bias=learn, **kw)
        projs.append((prev, name, PlasticLinear(lin.in_features, lin.out_features, weight=w, learn_weight=learn)))
        if n_in is None:
            n_in = lin.in_features
        prev = name
    assert n_in is not None
    return Network(n_in, pops, projs)
