"""Bad arguments raise ValueError/TypeError whose message names the argument."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from spikeplastic import LIF, STDP, Hebb, Network, Neuromodulation, Oja, PlasticLinear, surrogate


def _net(input_kind: str = "spikes") -> Network:
    torch.manual_seed(0)
    return Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(3, 2, rule="stdp"))], input_kind=input_kind)


NET = _net()
OK = torch.zeros(5, 2, 3)

CONSTRUCTION: dict[str, tuple[Callable[[], object], type[Exception], str]] = {
    "tau_plus zero": (lambda: STDP(tau_plus=0.0), ValueError, "tau_plus"),
    "tau_minus negative": (lambda: STDP(tau_minus=-3.0), ValueError, "tau_minus"),
    "tau nan": (lambda: STDP(tau_plus=float("nan")), ValueError, "tau_plus"),
    "a_plus negative": (lambda: STDP(a_plus=-0.01), ValueError, "a_plus"),
    "a_minus negative": (lambda: STDP(a_minus=-0.01), ValueError, "a_minus"),
    "hebb eta": (lambda: Hebb(1.2), ValueError, "eta"),
    "oja eta": (lambda: Oja(-0.1), ValueError, "eta"),
    "du > 1": (lambda: LIF(2, du=1.3), ValueError, "du"),
    "dv < 0": (lambda: LIF(2, dv=-0.1), ValueError, "dv"),
    "beta > 1": (lambda: LIF(2, beta=1.5), ValueError, "beta"),
    "alpha < 0": (lambda: LIF(2, alpha=-0.2), ValueError, "alpha"),
    "both decay forms": (lambda: LIF(2, du=0.5, beta=0.9), ValueError, "alpha/beta"),
    "vth <= 0": (lambda: LIF(2, vth=0.0), ValueError, "vth"),
    "per-neuron shape": (lambda: LIF(3, dv=torch.tensor([0.1, 0.2])), ValueError, "dv"),
    "n": (lambda: LIF(0), ValueError, "n"),
    "n type": (lambda: LIF(2.5), TypeError, "n"),
    "reset name": (lambda: LIF(2, reset="soft"), ValueError, "reset"),
    "surrogate name": (lambda: LIF(2, surrogate="relu"), ValueError, "surrogate"),
    "surrogate param": (lambda: surrogate("atan", alpha=-1.0), ValueError, "alpha"),
    "rule name": (lambda: PlasticLinear(3, 2, rule="bcm"), ValueError, "rule"),
    "alpha name": (lambda: PlasticLinear(3, 2, rule="stdp", alpha="per_neuron"), ValueError, "alpha"),
    "alpha_init shape": (lambda: PlasticLinear(3, 2, rule="stdp", alpha_init=torch.zeros(3, 3)), ValueError, "alpha_init"),
    "decay range": (lambda: PlasticLinear(3, 2, rule="stdp", decay=1.5), ValueError, "decay"),
    "clip": (lambda: PlasticLinear(3, 2, rule="stdp", clip=-1.0), ValueError, "clip"),
    "weight shape": (lambda: PlasticLinear(3, 2, weight=torch.zeros(3, 2)), ValueError, "weight"),
    "modulation type": (lambda: PlasticLinear(3, 2, rule="stdp", modulation="dopamine"), TypeError, "modulation"),
    "modulation without rule": (lambda: PlasticLinear(3, 2, modulation=Neuromodulation()), ValueError, "modulation"),
    "modulation mode": (lambda: Neuromodulation("delayed"), ValueError, "mode"),
    "modulation eta_e": (lambda: Neuromodulation("retroactive", eta_e=1.5), ValueError, "eta_e"),
    "modulation source type": (lambda: Neuromodulation("simple", 3), TypeError, "source"),
    "input_kind": (lambda: Network(3, {"a": LIF(2)}, [], input_kind="rates"), ValueError, "input_kind"),
    "size mismatch": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(4, 2))]), ValueError, "in->a"),
    "size mismatch post": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(3, 5))]), ValueError, "in->a"),
    "unknown pre": (lambda: Network(3, {"a": LIF(2)}, [("b", "a", PlasticLinear(2, 2))]), ValueError, "'b'"),
    "unknown post": (lambda: Network(3, {"a": LIF(2)}, [("in", "b", PlasticLinear(3, 2))]), ValueError, "'b'"),
    "unknown modulation source": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(
        3, 2, rule="stdp", modulation=Neuromodulation("simple", "zz")))]), ValueError, "'zz'"),
    "population named in": (lambda: Network(3, {"in": LIF(2)}, []), ValueError, "'in'"),
    "population type": (lambda: Network(3, {"a": torch.nn.Linear(2, 2)}, []), TypeError, "populations"),
    "projection type": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", torch.nn.Linear(3, 2))]), TypeError, "in->a"),
    "duplicate projection": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(3, 2))] * 2), ValueError,
                             "duplicate"),
    "no populations": (lambda: Network(3, {}, []), ValueError, "populations"),
    "feedforward sizes": (lambda: Network.feedforward([3]), ValueError, "sizes"),
    "feedforward rule instance": (lambda: Network.feedforward([3, 2], rule=STDP()), TypeError, "rule"),
    "feedforward rule name": (lambda: Network.feedforward([3, 2], rule="stdpp"), ValueError, "rule"),
}


@pytest.mark.parametrize("case", list(CONSTRUCTION))
def test_construction_errors(case: str) -> None:
    fn, exc, match = CONSTRUCTION[case]
    with pytest.raises(exc, match=match):
        fn()


RUN: dict[str, tuple[Callable[[], object], type[Exception], str]] = {
    "rank": (lambda: NET(torch.zeros(5, 3)), ValueError, "x"),
    "last dim": (lambda: NET(torch.zeros(5, 2, 4)), ValueError, "x"),
    "integer dtype": (lambda: NET(torch.zeros(5, 2, 3, dtype=torch.int64)), TypeError, "x"),
    "bool dtype": (lambda: NET(torch.zeros(5, 2, 3, dtype=torch.bool)), TypeError, "x"),
    "not a tensor": (lambda: NET([[[0.0, 0.0, 0.0]]]), TypeError, "x"),
    "non-spikes": (lambda: NET(torch.full((5, 2, 3), 0.5)), ValueError, "x"),
    "nan": (lambda: NET(torch.full((5, 2, 3), float("nan"))), ValueError, "x"),
    "nan current": (lambda: _net("current")(torch.full((5, 2, 3), float("nan"))), ValueError, "x"),
    "inf current": (lambda: _net("current")(torch.full((5, 2, 3), float("inf"))), ValueError, "x"),
    "step rank": (lambda: NET.step(torch.zeros(3), NET.initial_state(2)), ValueError, "x"),
    "step non-spikes": (lambda: NET.step(torch.full((2, 3), 2.0), NET.initial_state(2)), ValueError, "x"),
    "record entry": (lambda: NET(OK, record=("spikes", "gradients")), ValueError, "record"),
    "third_factor shape": (lambda: NET(OK, third_factor=torch.zeros(4, 2)), ValueError, "third_factor"),
    "third_factor nan": (lambda: NET(OK, third_factor=torch.full((5, 2), float("nan"))), ValueError, "third_factor"),
    "batch": (lambda: NET.initial_state(0), ValueError, "batch"),
    "missing external factor": (lambda: Neuromodulation("simple", None).signal(None, None), ValueError, "third_factor"),
    "network without external factor": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(
        3, 2, rule="stdp", modulation=Neuromodulation("simple", None)))])(OK), ValueError, "third_factor"),
}


@pytest.mark.parametrize("case", list(RUN))
def test_run_errors(case: str) -> None:
    fn, exc, match = RUN[case]
    with pytest.raises(exc, match=match):
        fn()


def test_current_input_accepts_real_values() -> None:
    rec, _ = _net("current")(torch.full((5, 2, 3), 0.5))
    assert rec.spikes["a"].shape == (5, 2, 2)
