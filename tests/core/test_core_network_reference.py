"""Network vs the independent numpy contract (tests/core/reference.py), spike for spike and weight for weight.

Net: in -> h (plastic) ; h -> h (plastic recurrent) ; h -> out (plastic), float64, >= 200 steps,
learned-style non-power-of-two amplitudes/taus, per-synapse alpha, decay, clip, Hebb/Oja variants,
simple and retroactive modulation from a source population or an external third factor.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from reference import proj_name, simulate_reference, spec_from_ir
from spikeplastic import LIF, STDP, Hebb, Network, Neuromodulation, Oja, PlasticLinear

N_IN, N_H, N_OUT, B, T = 4, 6, 3, 2, 240

STDP_PARAMS = [  # (a_plus, a_minus, tau_plus, tau_minus): nothing a power of two
    (0.0731, 0.0853, 13.7, 21.3),
    (0.0517, 0.0466, 7.9, 11.1),
    (0.0389, 0.0412, 17.3, 5.7),
]


def _rule_spec(kind: str, k: int) -> dict[str, Any]:
    if kind == "stdp":
        ap, am, tp, tm = STDP_PARAMS[k]
        return {"kind": "stdp", "a_plus": ap, "a_minus": am, "tau_plus": tp, "tau_minus": tm}
    return {"kind": kind, "eta": [0.0713, 0.137, 0.0911][k]}


def _rule_module(r: dict[str, Any], learn: bool):
    if r["kind"] == "stdp":
        return STDP(r["a_plus"], r["a_minus"], r["tau_plus"], r["tau_minus"], learn=learn)
    return (Hebb if r["kind"] == "hebb" else Oja)(r["eta"], learn=learn)


@contextlib.contextmanager
def float64_default() -> Iterator[None]:
    """Build modules in float64 so that Python-float constants are not rounded to float32 first."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _build(*args: Any, **kwargs: Any):
    with float64_default():
        return _build64(*args, **kwargs)


def _build64(kinds: tuple[str, str, str], *, mods: dict[int, dict[str, Any]] | None = None,
           alpha_modes=("per_synapse", "per_synapse", "per_synapse"), decays=(0.0, 0.0131, 0.0),
           clips=(None, None, 0.37), resets=("zero", "zero"), out_bias: float = -0.0537, learn: bool = False,
              seed: int = 0):
    """A Network and the matching reference spec, both from the same explicit numbers."""
    rng = np.random.default_rng(seed)
    mods = mods or {}
    pops_spec = {
        "h": {"du": rng.uniform(0.2, 1.0, N_H), "dv": rng.uniform(0.05, 0.4, N_H),
              "vth": rng.uniform(0.6, 1.3, N_H), "bias": rng.uniform(-0.02, 0.05, N_H), "reset": resets[0]},
        "out": {"du": np.full(N_OUT, 0.713), "dv": np.full(N_OUT, 0.181), "vth": np.full(N_OUT, 0.77),
                "bias": np.full(N_OUT, out_bias), "reset": resets[1]},
    }
    ends = [("in", "h", N_IN, N_H), ("h", "h", N_H, N_H), ("h", "out", N_H, N_OUT)]
    ws = [rng.uniform(-0.2, 1.2, (N_H, N_IN)), rng.uniform(-0.8, 0.3, (N_H, N_H)), rng.uniform(-0.75, 0.5, (N_OUT, N_H))]
    projs_spec, projs = [], []
    for k, (pre, post, ni, no) in enumerate(ends):
        rule = None if kinds[k] == "static" else _rule_spec(kinds[k], k)
        am = alpha_modes[k]
        alpha = None
        if rule is not None and am == "per_synapse":
            alpha = rng.uniform(-1.2, 1.2, (no, ni))
        elif rule is not None and am == "shared":
            alpha = np.array(1.37)
        mod_spec = None
        mod = None
        if k in mods and rule is not None:
            m = mods[k]
            src = m.get("source")
            mod_spec = {"mode": m["mode"], "source": src, "eta_e": m.get("eta_e", 0.0), "weight": None, "bias": None}
            mod = Neuromodulation(m["mode"], src, per_neuron=m.get("per_neuron", False),
                                  eta_e=m.get("eta_e", 0.1), learn_eta=learn)
            if src is not None:
                n_src = {"in": N_IN, "h": N_H, "out": N_OUT}[src]
                shape = (no, n_src) if m.get("per_neuron") else (n_src,)
                mod_spec["weight"] = rng.uniform(-1.0, 1.0, shape)
                mod_spec["bias"] = rng.uniform(-0.3, 0.3, (no,)) if m.get("per_neuron") else np.array(0.137)
        spec = {"pre": pre, "post": post, "w": ws[k], "rule": rule, "alpha": alpha,
                "decay": decays[k] if rule is not None else 0.0, "clip": clips[k] if rule is not None else None,
                "mod": mod_spec}
        projs_spec.append(spec)
        layer = PlasticLinear(
            ni, no, rule=None if rule is None else _rule_module(rule, learn), alpha=am,
            alpha_init=torch.tensor(alpha) if alpha is not None else 1.0, decay=spec["decay"], learn_decay=False,
            clip=spec["clip"], modulation=mod, weight=torch.tensor(ws[k]), learn_weight=learn, learn_alpha=learn,
        )
        projs.append((pre, post, layer))
    pops = {k: LIF({"h": N_H, "out": N_OUT}[k], du=torch.tensor(P["du"]), dv=torch.tensor(P["dv"]),
                   vth=torch.tensor(P["vth"]), bias=torch.tensor(P["bias"]), reset=P["reset"])
            for k, P in pops_spec.items()}
    net = Network(N_IN, pops, projs).double()
    with torch.no_grad():  # set the modulation weights to the spec's numbers
        for (pre, post, layer), spec in zip(projs, projs_spec):
            if spec["mod"] is not None and spec["mod"]["source"] is not None:
                layer.modulation.weight.copy_(torch.tensor(spec["mod"]["weight"]))
                layer.modulation.bias.copy_(torch.tensor(spec["mod"]["bias"]))
    return net, (N_IN, pops_spec, projs_spec)


def _inputs(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((T, B, N_IN), 0.35, dtype=torch.float64), generator=g)


def _third(per_neuron: bool, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (T, B, N_H) if per_neuron else (T, B)
    return torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 0.6


def _compare(net: Network, spec, x: torch.Tensor, third: torch.Tensor | None = None) -> None:
    rec, _ = net(x, record=("spikes", "voltages", "currents", "weights", "traces", "modulation"), third_factor=third)
    ref = simulate_reference(*spec, x.numpy(), None if third is None else third.numpy())
    for k in ref["spikes"]:
        # the comparison is meaningful only if the population is active but not saturated
        n = ref["spikes"][k].sum()
        assert 10 < n < 0.8 * ref["spikes"][k].size, f"population {k} fired {n} spikes"
        torch.testing.assert_close(rec.spikes[k], torch.tensor(ref["spikes"][k]), rtol=0, atol=0)
        torch.testing.assert_close(rec.voltages[k], torch.tensor(ref["v"][k]), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rec.currents[k], torch.tensor(ref["u"][k]), rtol=1e-12, atol=1e-12)
    assert set(rec.weights) == set(ref["weights"])
    for name, W in ref["weights"].items():
        w0 = np.asarray(next(p["w"] for p in spec[2] if proj_name(p) == name))
        assert np.abs(W - w0).max() > 1e-3, f"{name}: plasticity never changed the weights"
        torch.testing.assert_close(rec.weights[name], torch.tensor(W), rtol=1e-12, atol=1e-12)
    assert set(rec.traces) == set(ref["traces"])
    for name, (xt, yt) in ref["traces"].items():
        torch.testing.assert_close(rec.traces[name][0], torch.tensor(xt), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(rec.traces[name][1], torch.tensor(yt), rtol=1e-12, atol=1e-12)
    assert set(rec.modulation) == set(ref["m"])
    for name, m in ref["m"].items():
        torch.testing.assert_close(rec.modulation[name], torch.tensor(m), rtol=1e-12, atol=1e-12)


CASES = {
    "stdp": dict(kinds=("stdp", "stdp", "stdp")),
    "stdp_shared_none_alpha": dict(kinds=("stdp", "stdp", "stdp"), alpha_modes=("shared", "none", "per_synapse"),
                                   decays=(0.0213, 0.0, 0.0)),
    "stdp_subtract_reset": dict(kinds=("stdp", "static", "stdp"), resets=("subtract", "zero")),
    "hebb": dict(kinds=("hebb", "hebb", "hebb"), out_bias=-0.213),
    "oja": dict(kinds=("oja", "oja", "stdp"), out_bias=-0.213),
    "simple_mod_source": dict(kinds=("stdp", "hebb", "stdp"),
                              mods={0: {"mode": "simple", "source": "out"}, 2: {"mode": "simple", "source": "h", "per_neuron": True}}),
    "retro_mod_source": dict(kinds=("stdp", "oja", "stdp"),
                             mods={0: {"mode": "retroactive", "source": "out", "eta_e": 0.173},
                                   1: {"mode": "retroactive", "source": "in", "per_neuron": True, "eta_e": 0.291}}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_network_matches_reference(case: str) -> None:
    net, spec = _build(**CASES[case])
    _compare(net, spec, _inputs())


@pytest.mark.parametrize("mode", ["simple", "retroactive"])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_external_third_factor_matches_reference(mode: str, per_neuron: bool) -> None:
    net, spec = _build(("stdp", "stdp", "stdp"), mods={0: {"mode": mode, "source": None, "eta_e": 0.237},
                                                       1: {"mode": mode, "source": None, "eta_e": 0.237}},
                       alpha_modes=("per_synapse", "none", "per_synapse"))
    _compare(net, spec, _inputs(3), _third(per_neuron))


def test_learnable_parameters_match_reference_via_ir() -> None:
    """Learnable (raw, constrained) parameters: the reference runs on the mapped values of ``to_ir``."""
    torch.manual_seed(0)
    net, _ = _build(("stdp", "hebb", "oja"), mods={2: {"mode": "retroactive", "source": "h", "eta_e": 0.2}},
                    learn=True, decays=(0.0, 0.0, 0.0))
    spec = spec_from_ir(net.to_ir())
    _compare(net, spec, _inputs(5))


def test_reference_detects_a_one_step_timing_error() -> None:
    """Sanity check of the comparison itself: a wrong synaptic lag must be caught."""
    net, spec = _build(("stdp", "stdp", "stdp"))
    x = _inputs()
    rec, _ = net(x)
    shifted = torch.cat([torch.zeros_like(x[:1]), x[:-1]])
    ref = simulate_reference(*spec, shifted.numpy())
    assert not torch.equal(rec.spikes["h"], torch.tensor(ref["spikes"]["h"]))
