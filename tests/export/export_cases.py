"""Small networks covering every exportable construct (shared by the exporter tests)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import spikeplastic as sp
from spikeplastic import ir as _ir
from spikeplastic.export._compat import lava_available

HAVE_LAVA = lava_available()
needs_lava = pytest.mark.skipif(not HAVE_LAVA, reason="lava-nc is not installed (pip install --no-deps lava-nc==0.10.0)")

N_IN, N1, N2 = 10, 8, 5


def _lin(a: int, b: int, **kw) -> sp.PlasticLinear:
    return sp.PlasticLinear(a, b, weight_scale=2.0, **kw)


def _stdp(ap: float = 0.03, am: float = 0.035, tp: float = 7.3, tm: float = 11.1) -> sp.STDP:
    return sp.STDP(ap, am, tp, tm, learn=False)  # learned-style, non-power-of-two values


def _net(p_in: sp.PlasticLinear, p_12: sp.PlasticLinear, p_rec: sp.PlasticLinear | None, *,
         reset: str = "zero", du: float = 0.7) -> _ir.NetworkIR:
    l1 = sp.LIF(N1, du=du, dv=0.2, vth=0.6)
    l2 = sp.LIF(N2, du=1.0, dv=torch.linspace(0.1, 0.3, N2), vth=torch.linspace(0.4, 0.8, N2), bias=0.01, reset=reset)
    projs = [("in", "l1", p_in), ("l1", "l2", p_12)]
    if p_rec is not None:
        projs.append(("l1", "l1", p_rec))
    return sp.Network(N_IN, {"l1": l1, "l2": l2}, projs).to_ir()


def static() -> _ir.NetworkIR:
    torch.manual_seed(1)
    return _net(_lin(N_IN, N1), _lin(N1, N2), _lin(N1, N1))


def stdp_feedforward() -> _ir.NetworkIR:
    torch.manual_seed(2)
    return _net(_lin(N_IN, N1, rule=_stdp(), alpha="none"), _lin(N1, N2, rule=_stdp(0.02, 0.025, 5.0, 9.0), alpha="none"), None)


def stdp_recurrent() -> _ir.NetworkIR:
    torch.manual_seed(3)
    return _net(_lin(N_IN, N1, rule=_stdp(), alpha="none"), _lin(N1, N2), _lin(N1, N1, rule=_stdp(0.01, 0.012, 4.0, 6.0), alpha="none"))


def stdp_alpha_decay() -> _ir.NetworkIR:
    """Per-synapse alpha (Miconi) in tag_1, decay towards the fixed weight (anchor in tag_2)."""
    torch.manual_seed(4)
    alpha = torch.empty(N1, N_IN).uniform_(-1.5, 1.5)
    return _net(_lin(N_IN, N1, rule=_stdp(), alpha_init=alpha, decay=2**-5),
                _lin(N1, N2, rule=_stdp(0.02, 0.025, 5.0, 9.0), alpha="shared", alpha_init=0.7, decay=3 * 2**-6),
                _lin(N1, N1, rule=_stdp(0.01, 0.012, 4.0, 6.0), decay=2**-6))


def stdp_modulated() -> _ir.NetworkIR:
    """Three-factor STDP: external third factor, population-driven (shared and per-neuron), retroactive."""
    torch.manual_seed(5)
    return _net(
        _lin(N_IN, N1, rule=_stdp(), modulation=sp.Neuromodulation("simple", None)),
        _lin(N1, N2, rule=_stdp(0.02, 0.025, 5.0, 9.0), decay=2**-6, modulation=sp.Neuromodulation("simple", "in", per_neuron=True)),
        _lin(N1, N1, rule=_stdp(0.08, 0.09, 4.0, 6.0), modulation=sp.Neuromodulation("retroactive", "l2", eta_e=2**-2, learn_eta=False)),
    )


def _np(sigma: float = 0.35, tau: float = 5.7, **kw) -> sp.NodePerturbation:
    return sp.NodePerturbation(sigma, tau, **dict(dict(eta=0.61, eta_b=0.13, learn=False), **kw))


def node_perturbation() -> _ir.NetworkIR:
    """Node perturbation: two noise streams into l1 (feed-forward and recurrent), the external third
    factor minus its running baseline (simple, per-synapse alpha; retroactive, shared alpha), and a
    learned per-neuron third factor without baseline, with decay."""
    torch.manual_seed(9)
    return _net(
        _lin(N_IN, N1, rule=_np(), modulation=sp.Neuromodulation("simple", None)),
        _lin(N1, N2, rule=_np(0.2, 4.0, baseline=False), decay=2**-6,
             modulation=sp.Neuromodulation("simple", "l1", per_neuron=True)),
        _lin(N1, N1, rule=_np(0.25, 3.1, eta=0.9), alpha="shared", alpha_init=1.3,
             modulation=sp.Neuromodulation("retroactive", None, eta_e=2**-2, learn_eta=False)),
    )


def hebb_oja() -> _ir.NetworkIR:
    torch.manual_seed(6)
    return _net(_lin(N_IN, N1, rule=sp.Hebb(2**-4, learn=False), decay=2**-6),
                _lin(N1, N2, rule=sp.Oja(3 * 2**-5, learn=False), modulation=sp.Neuromodulation("simple", "l1")), None)


def subtract_reset() -> _ir.NetworkIR:
    torch.manual_seed(7)
    return _net(_lin(N_IN, N1, rule=_stdp()), _lin(N1, N2), None, reset="subtract")


def current_input() -> _ir.NetworkIR:
    torch.manual_seed(8)
    l1 = sp.LIF(N1, du=0.5, dv=0.2, vth=0.6)
    return sp.Network(N_IN, {"l1": l1}, [("in", "l1", _lin(N_IN, N1))], input_kind="current").to_ir()


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], _ir.NetworkIR]
    third_factor: bool = False


FLOAT_CASES = [
    Case("static", static),
    Case("stdp_feedforward", stdp_feedforward),
    Case("stdp_recurrent", stdp_recurrent),
    Case("stdp_alpha_decay", stdp_alpha_decay),
    Case("stdp_modulated", stdp_modulated, third_factor=True),
    Case("hebb_oja", hebb_oja),
    Case("node_perturbation", node_perturbation, third_factor=True),
    Case("subtract_reset", subtract_reset),
    Case("current_input", current_input),
]


def spikes(T: int, n: int = N_IN, rate: float = 0.3, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, n)) < rate).astype(np.float64)


def third(T: int, seed: int = 1) -> np.ndarray:
    return np.tanh(np.random.default_rng(seed).normal(size=T))
