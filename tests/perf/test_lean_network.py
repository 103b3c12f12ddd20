"""The lean spiking path against plain autograd through the core ``Network`` (float64).

Two methods that must agree: ``spikeplastic.lean.network_forward(net, x)`` and ``net(x)`` give the
same spikes, voltages and final state, and the same gradients w.r.t. every learnable parameter
(weights, alpha, STDP impulses and time constants, decay, LIF decays / threshold / bias) and the
input, for every supported feature, backend and backward mode (reverse reconstruction, reverse
with exact copies, chunked recomputation).
"""
from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from spikeplastic import LIF, STDP, Hebb, Network, Neuromodulation, PlasticLinear, lean
from spikeplastic.surrogate import Surrogate, surrogate as make_surrogate

DT = torch.float64
T, B, N_IN, N = 40, 3, 12, 10


def make_net(
    *,
    recurrent: bool = False,
    rec_plastic: bool = True,
    ff_plastic: bool = True,
    alpha: str = "per_synapse",
    decay: float = 0.0,
    learn_decay: bool = False,
    clip: float | None = None,
    reset: str = "zero",
    detach_reset: bool = True,
    per_neuron: bool = False,
    surrogate: str | Surrogate = "atan",
    two_layers: bool = False,
    rec_first: bool = False,
    rule_input_grad: bool = True,
) -> Network:
    torch.manual_seed(0)
    lif = dict(du=0.3, dv=0.2, vth=1.0, reset=reset, detach_reset=detach_reset, per_neuron=per_neuron,
               learn_decay=True, learn_threshold=True, learn_bias=True, surrogate=surrogate)
    lin = dict(alpha=alpha, alpha_init=0.5, decay=decay, learn_decay=learn_decay, clip=clip, weight_scale=3.0,
               rule_input_grad=rule_input_grad)
    pops = {"l1": LIF(N, **lif)}
    ff = ("in", "l1", PlasticLinear(N_IN, N, rule=STDP(0.3, 0.35, 5.0, 6.0) if ff_plastic else None, **lin))
    projs = [ff]
    if recurrent:
        rec = ("l1", "l1", PlasticLinear(N, N, rule=STDP(0.2, 0.25, 4.0, 3.0) if rec_plastic else None, **lin))
        projs = [rec, ff] if rec_first else [ff, rec]
    if two_layers:
        pops["l2"] = LIF(7, **lif)
        projs.append(("l1", "l2", PlasticLinear(N, 7, rule=STDP(0.3, 0.2, 5.0, 6.0), **lin)))
    net = Network(N_IN, pops, projs).to(DT)
    with torch.no_grad():  # random, sign-mixed plasticity coefficients
        for p in net.projs.values():
            if p.alpha is not None and p.alpha.learn:
                p.alpha.raw.normal_(0.0, 1.0)
    return net


def inputs(seed: int = 1, t: int = T) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((t, B, N_IN), 0.3, dtype=DT), generator=g)


def probe_loss(rec: Any, st: Any) -> torch.Tensor:
    """A random linear functional of everything the run returns (spikes, voltages, final state)."""
    g = torch.Generator().manual_seed(5)

    def r(t: torch.Tensor) -> torch.Tensor:
        return (t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum()

    loss = sum(r(s) for s in rec.spikes.values())
    if rec.voltages is not None:
        loss = loss + sum(r(v) for v in rec.voltages.values())
    if rec.currents is not None:
        loss = loss + sum(r(v) for v in rec.currents.values())
    for n in st.neurons.values():
        loss = loss + r(n.u) + r(n.v)
    for syn in st.synapses.values():
        if syn.H is not None:
            loss = loss + r(syn.H) + r(syn.rule[0]) + r(syn.rule[1])
    return loss


class _MarginProbe(Surrogate):
    """Wraps a population's surrogate and records the smallest ``|v - vth|`` it is called on."""

    name = "margin_probe"

    def __init__(self, inner: Surrogate) -> None:
        self.inner, self.min = inner, math.inf

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.grad(x)

    def scaled_grad(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.scaled_grad(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.min = min(self.min, float(x.detach().abs().min()))
        return self.inner(x)


def spike_margin(net: Network, x: torch.Tensor, state: Any = None) -> float:
    """Smallest distance of any membrane to its threshold in the core run ``net(x, state)``.

    Two computations that round differently (fused kernels, float32 vs float64) give the same spikes
    wherever their voltages differ by less than this; tests that compare such spikes exactly check
    it first, so that their equality holds on any host, not by luck of rounding."""
    pops = list(net.pops.values())
    inner = [p.spike_fn for p in pops]
    probes = [_MarginProbe(f) for f in inner]
    try:
        for p, pr in zip(pops, probes):
            p.spike_fn = pr
        with torch.no_grad():
            net(x, state)
    finally:
        for p, f in zip(pops, inner):
            p.spike_fn = f
    return min(pr.min for pr in probes)


def compare(net: Network, x: torch.Tensor, *, exact: bool, state: Any = None, record=("spikes", "voltages"),
            **kw: Any) -> None:
    params = [p for p in net.parameters() if p.requires_grad]
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    xr = x.clone().requires_grad_(True)
    rec0, st0 = net(xr, state, record=record)
    g0 = torch.autograd.grad(probe_loss(rec0, st0), params + [xr], allow_unused=True)
    x1 = x.clone().requires_grad_(True)
    rec1, st1 = lean.network_forward(net, x1, state, record=record, **kw)
    g1 = torch.autograd.grad(probe_loss(rec1, st1), params + [x1], allow_unused=True)
    if not exact:
        # the fused backends round differently from the core (~1e-15 relative in float64): spikes
        # can only differ where a membrane lands that close to its threshold (smallest margin
        # measured over these cases: 1.0e-4)
        assert spike_margin(net, x, state) > 1e-9
    n_spikes = 0.0
    for k in rec0.spikes:
        assert torch.equal(rec0.spikes[k], rec1.spikes[k]), f"spikes of {k} differ"
        n_spikes += float(rec0.spikes[k].detach().sum())
    assert n_spikes > 0.05 * sum(s.numel() for s in rec0.spikes.values()), "vacuous test: too few spikes"
    # exact: the reference backend runs the core's ops in the core's order, bit-identical anywhere
    cmp = torch.equal if exact else (lambda a, b: torch.allclose(a, b, rtol=1e-12, atol=1e-12))
    if rec0.voltages is not None:
        for k in rec0.voltages:
            assert cmp(rec0.voltages[k], rec1.voltages[k]), f"voltages of {k} differ"
    for k in st0.neurons:
        for a, b in zip(st0.neurons[k], st1.neurons[k]):
            assert cmp(a, b)
    for k, syn in st0.synapses.items():
        if syn.H is not None:
            assert cmp(syn.H, st1.synapses[k].H)
            assert cmp(syn.rule[0], st1.synapses[k].rule[0]) and cmp(syn.rule[1], st1.synapses[k].rule[1])
    assert torch.equal(st0.x_prev, st1.x_prev)
    for name, a, b in zip(names + ["x"], g0, g1):
        assert (a is None) == (b is None), f"gradient presence differs for {name}"
        if a is None:
            continue
        assert a.abs().max() > 0 or name in ("x",), f"vacuous gradient for {name}"
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11 * max(1.0, float(a.abs().max())), msg=name)


CASES: dict[str, dict[str, Any]] = {
    "stdp_per_synapse": {},
    "stdp_shared_alpha": {"alpha": "shared"},
    "stdp_alpha_none": {"alpha": "none"},
    "decay_fixed": {"decay": 0.05},
    "decay_learned": {"decay": 0.05, "learn_decay": True},
    "recurrent_plastic": {"recurrent": True},
    "recurrent_static": {"recurrent": True, "rec_plastic": False},
    "recurrent_first_in_order": {"recurrent": True, "rec_first": True},
    "static_ff_plastic_rec": {"recurrent": True, "ff_plastic": False},
    "reset_subtract": {"reset": "subtract"},
    "reset_not_detached": {"detach_reset": False},
    "subtract_not_detached": {"reset": "subtract", "detach_reset": False},
    "per_neuron_lif": {"per_neuron": True},
    "fast_sigmoid": {"surrogate": "fast_sigmoid"},
    "damped_surrogate": {"recurrent": True, "surrogate": make_surrogate("atan", scale=0.3)},
    "clip_fallback": {"clip": 0.5},
    "two_layers": {"two_layers": True, "recurrent": True},
    # the rule's spike inputs as constants in the backward (the snn-* models' default)
    "rule_input_grad_off": {"recurrent": True, "decay": 0.05, "learn_decay": True, "rule_input_grad": False},
    "rule_input_grad_off_shared": {"recurrent": True, "alpha": "shared", "rule_input_grad": False},
    "rule_input_grad_off_two_layers": {"two_layers": True, "recurrent": True, "rule_input_grad": False},
    "rule_input_grad_off_clip": {"recurrent": True, "clip": 0.5, "rule_input_grad": False},
}


@pytest.mark.parametrize("backend", ["reference", "inplace"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_matches_core_network(case: str, backend: str) -> None:
    # T = 40 > n_in: the default rebuilds the input currents in the backward; stored ones are tested
    # in test_backward_modes
    net = make_net(**CASES[case])
    compare(net, inputs(), exact=backend == "reference", backend=backend)


@pytest.mark.parametrize("store_currents", [True, False], ids=["stored_currents", "rebuilt_currents"])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"reconstruct": "never"},                       # chunked recomputation everywhere
        {"reconstruct": "never", "checkpoint_every": 7},
        {"checkpoint_every": 5},                        # reverse, small vector chunks
        {"checkpoint_every": 1},
    ],
    ids=["reverse", "recompute", "recompute_k7", "reverse_k5", "reverse_k1"],
)
@pytest.mark.parametrize("rule_input_grad", [True, False], ids=["rule_grad", "no_rule_grad"])
def test_backward_modes(kw: dict[str, Any], store_currents: bool, rule_input_grad: bool) -> None:
    kw = {**kw, "store_currents": store_currents}
    net = make_net(recurrent=True, decay=0.05, learn_decay=True, rule_input_grad=rule_input_grad)
    compare(net, inputs(), exact=True, backend="reference", **kw)


@pytest.mark.parametrize("store_currents", [True, False], ids=["stored_currents", "rebuilt_currents"])
@pytest.mark.parametrize("decay", [0.3, 0.5, 1.0], ids=["reverse_with_copies", "auto_recompute", "not_invertible"])
def test_strong_decay(decay: float, store_currents: bool) -> None:
    # gamma = 0.7: exact copies of H every few steps; 0.5: so many that recomputation is chosen;
    # 1.0: gamma = 0, nothing to invert
    net = make_net(recurrent=True, decay=decay, learn_decay=decay < 1.0)
    compare(net, inputs(), exact=True, backend="reference", store_currents=store_currents)


def test_from_nonzero_state_and_currents() -> None:
    net = make_net(recurrent=True, decay=0.05)
    with torch.no_grad():
        _, st = net(inputs(seed=7, t=15))
    compare(net, inputs(), exact=True, state=st, record=("spikes", "voltages", "currents"), backend="reference")


def test_module_wrapper_and_parameters_are_shared() -> None:
    net = make_net(recurrent=True)
    lnet = lean.LeanNetwork(net, backend="inplace")
    assert {id(p) for p in lnet.parameters()} == {id(p) for p in net.parameters()}
    x = inputs()
    rec0, _ = net(x)
    rec1, _ = lnet(x)
    assert spike_margin(net, x) > 1e-9  # see compare (measured: 1.4e-2)
    assert torch.equal(rec0.spikes["l1"], rec1.spikes["l1"])


@pytest.mark.parametrize("store_currents", [True, False], ids=["stored_currents", "rebuilt_currents"])
def test_float32_agrees(store_currents: bool) -> None:
    """float32: same spikes as the core, and gradients as close to the float64 ones as the core's."""
    net = make_net(recurrent=True)
    x = inputs()
    w = net.projs["in_to_l1"].weight.raw

    def grad(run) -> tuple[torch.Tensor, torch.Tensor]:
        rec, _ = run()
        return rec.spikes["l1"].detach(), torch.autograd.grad(rec.spikes["l1"].sum(), [w])[0].double()

    # float32 voltages here differ from float64 ones by up to 4.6e-5 (lean vs core float32: 1.1e-5,
    # measured); no membrane comes that close to its threshold (measured margin 1.4e-2), so the three
    # runs must spike alike on any host
    assert spike_margin(net, x) > 1e-3
    s64, g64 = grad(lambda: net(x))
    net.float()
    s32, g32 = grad(lambda: net(x.float()))
    sl, gl = grad(lambda: lean.network_forward(net, x.float(), backend="inplace", store_currents=store_currents))
    assert torch.equal(s32, sl) and torch.equal(s32.double(), s64)
    err_core = float((g32 - g64).abs().max() / g64.abs().max())
    err_lean = float((gl - g64).abs().max() / g64.abs().max())
    assert err_lean < max(1e-5, 10 * err_core), (err_lean, err_core)


def test_unsupported_features_raise() -> None:
    torch.manual_seed(0)
    net = Network(4, {"l1": LIF(3)}, [("in", "l1", PlasticLinear(4, 3, rule="stdp", modulation=Neuromodulation()))])
    with pytest.raises(ValueError, match="neuromodulation"):
        lean.LeanNetwork(net)
    net = Network(4, {"l1": LIF(3)}, [("in", "l1", PlasticLinear(4, 3, rule=Hebb()))])
    with pytest.raises(ValueError, match="Hebb"):
        lean.network_forward(net, torch.zeros(2, 1, 4))
    net = Network(4, {"l1": LIF(3), "l2": LIF(3)},
                  [("in", "l1", PlasticLinear(4, 3)), ("l1", "l2", PlasticLinear(3, 3)), ("l2", "l1", PlasticLinear(3, 3))])
    with pytest.raises(ValueError, match="feed-forward projection"):
        lean.check_network(net)
    net = Network(4, {"l1": LIF(3), "l2": LIF(3)},
                  [("in", "l1", PlasticLinear(4, 3)), ("l2", "l2", PlasticLinear(3, 3))])
    with pytest.raises(ValueError, match="no feed-forward input"):
        lean.check_network(net)
    net = Network.feedforward([4, 3], rule="stdp")
    with pytest.raises(ValueError, match="weights"):
        lean.network_forward(net, torch.zeros(2, 1, 4), record=("spikes", "weights"))
    with pytest.raises(ValueError, match="backend"):
        lean.network_forward(net, torch.zeros(2, 1, 4), backend="fast")
    with pytest.raises(ValueError, match="spikes"):
        lean.network_forward(net, torch.full((2, 1, 4), 0.5))
    with pytest.raises(ValueError, match="checkpoint_every"):
        lean.network_forward(net, torch.zeros(2, 1, 4), checkpoint_every=0)
    from spikeplastic.quant import loihi_legal

    net = loihi_legal(Network.feedforward([4, 3], rule="stdp"))
    with pytest.raises(ValueError, match="integer state"):
        lean.check_network(net)


def test_second_backward_with_retain_graph() -> None:
    net = make_net(recurrent=True)
    rec, _ = lean.network_forward(net, inputs(), backend="inplace")
    loss = rec.spikes["l1"].sum()
    w = net.projs["in_to_l1"].alpha.raw
    g1 = torch.autograd.grad(loss, [w], retain_graph=True)[0]
    g2 = torch.autograd.grad(loss, [w])[0]
    assert torch.equal(g2, g1)  # the same ops from the same saved state (test_lean_reentrant.py)


def test_no_grad_inference_saves_nothing() -> None:
    net = make_net(recurrent=True)
    with torch.no_grad():
        rec0, _ = net(inputs())
        rec1, st1 = lean.network_forward(net, inputs(), backend="inplace")
    assert spike_margin(net, inputs()) > 1e-9  # see compare (measured: 1.4e-2)
    assert torch.equal(rec0.spikes["l1"], rec1.spikes["l1"])
    assert rec1.spikes["l1"].grad_fn is None and st1.synapses["in_to_l1"].H.grad_fn is None


@pytest.mark.slow
def test_compile_backend_matches() -> None:
    net = make_net(recurrent=True, decay=0.05, learn_decay=True)
    compare(net, inputs(), exact=False, backend="compile")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", ["inplace", "compile"])
def test_cuda_matches_cpu(backend: str) -> None:
    net = make_net(recurrent=True)
    x = inputs()
    assert spike_margin(net, x) > 1e-9  # see compare (measured: 1.4e-2)
    rec0, _ = lean.network_forward(net, x, backend="reference")
    g0 = torch.autograd.grad(rec0.spikes["l1"].sum(), [net.projs["in_to_l1"].alpha.raw])[0]
    net = net.cuda()
    rec1, _ = lean.network_forward(net, x.cuda(), backend=backend)
    g1 = torch.autograd.grad(rec1.spikes["l1"].sum(), [net.projs["in_to_l1"].alpha.raw])[0]
    assert torch.equal(rec0.spikes["l1"], rec1.spikes["l1"].cpu())
    torch.testing.assert_close(g1.cpu(), g0, rtol=1e-9, atol=1e-12)
