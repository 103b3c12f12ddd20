"""from_snntorch: parameter mapping, spike trains equal snnTorch's shifted by the layer depth, errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeplastic import Network, from_snntorch
from spikeplastic.surrogate import ATan, FastSigmoid, StraightThrough

snn = pytest.importorskip("snntorch")
F64 = torch.float64
T, B = 80, 3


def _model(reset: str, *, scale: float = 2.5, seed: int = 0, spike_grad=None) -> nn.Sequential:
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Linear(4, 6, bias=False),
        snn.Leaky(beta=0.83, threshold=0.75, reset_mechanism=reset, spike_grad=spike_grad),
        nn.Linear(6, 3, bias=False),
        snn.Synaptic(alpha=0.71, beta=torch.tensor([0.9, 0.8, 0.95]), threshold=0.625, reset_mechanism=reset,
                     reset_delay=reset != "zero"),
    )
    with torch.no_grad():
        m[0].weight.mul_(scale)
        m[2].weight.mul_(scale).add_(0.25)
    return m


def _snn_run(m: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    mem1 = m[1].reset_mem()
    syn2, mem2 = m[3].reset_mem()
    s1, s2, v1, v2 = [], [], [], []
    for t in range(x.shape[0]):
        spk1, mem1 = m[1](m[0](x[t]), mem1)
        spk2, syn2, mem2 = m[3](m[2](spk1.to(x.dtype)), syn2, mem2)  # snnTorch spikes are float32
        s1.append(spk1)
        s2.append(spk2)
        v1.append(mem1)
        v2.append(mem2)
    return torch.stack(s1), torch.stack(s2), torch.stack(v1), torch.stack(v2)


def _x(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((T, B, 4), 0.5), generator=g)


def test_parameter_mapping() -> None:
    m = _model("zero", spike_grad=snn.surrogate.fast_sigmoid(slope=7.5))
    net = from_snntorch(m)
    assert isinstance(net, Network) and list(net.pops) == ["l1", "l2"]
    assert net.topology == {"in_to_l1": ("in", "l1"), "l1_to_l2": ("l1", "l2")}
    torch.testing.assert_close(net.projs["in_to_l1"].weight(), m[0].weight.detach(), rtol=0, atol=0)
    torch.testing.assert_close(net.projs["l1_to_l2"].weight(), m[2].weight.detach(), rtol=0, atol=0)
    p1, p2 = net.pops["l1"].params(), net.pops["l2"].params()
    torch.testing.assert_close(p1.du, torch.tensor(1.0), rtol=0, atol=0)
    torch.testing.assert_close(p1.dv, 1 - m[1].beta, rtol=0, atol=0)
    torch.testing.assert_close(p1.vth, m[1].threshold, rtol=0, atol=0)
    torch.testing.assert_close(p2.du, (1 - m[3].alpha).expand(3), rtol=0, atol=0)
    torch.testing.assert_close(p2.dv, 1 - m[3].beta, rtol=0, atol=0)  # per-neuron beta
    assert p2.dv.shape == (3,)
    assert net.pops["l1"].reset == "zero" and not any(pr.plastic for pr in net.projs.values())
    assert isinstance(net.pops["l1"].spike_fn, FastSigmoid) and net.pops["l1"].spike_fn.slope == 7.5
    assert isinstance(net.pops["l2"].spike_fn, ATan)  # snnTorch's default
    assert isinstance(from_snntorch(_model("zero", spike_grad=snn.surrogate.straight_through_estimator()))
                      .pops["l1"].spike_fn, StraightThrough)
    assert {n for n, p in from_snntorch(m, learn=True).named_parameters()} >= {"projs.in_to_l1.weight.raw"}
    assert not list(from_snntorch(m, learn=False).parameters())


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_spikes_equal_snntorch_shifted_by_depth(reset: str) -> None:
    m = _model(reset)
    x = _x()
    s1, s2, v1, v2 = _snn_run(m, x)
    assert 30 < s1.sum() < 0.7 * s1.numel() and 20 < s2.sum() < 0.7 * s2.numel()
    rec, _ = from_snntorch(m)(x, record=("spikes", "voltages"))
    # layer L lags snnTorch's layer L by L steps; before that it is silent
    torch.testing.assert_close(rec.spikes["l1"][1:], s1[:-1], rtol=0, atol=0)
    torch.testing.assert_close(rec.spikes["l2"][2:], s2[:-2], rtol=0, atol=0)
    assert rec.spikes["l1"][0].sum() == 0 and rec.spikes["l2"][:2].sum() == 0
    # membranes agree (snnTorch shows the un-reset membrane on a spike step with reset_delay=True)
    keep1 = 1 - s1[:-1] if reset == "zero" else torch.ones_like(s1[:-1])
    torch.testing.assert_close(rec.voltages["l1"][1:], v1[:-1] * keep1, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rec.voltages["l2"][2:], v2[:-2], rtol=1e-6, atol=1e-6)


def test_spikes_equal_snntorch_float64() -> None:
    m = _model("subtract").double()
    x = _x(2).double()
    s1, s2, _, _ = _snn_run(m, x)
    net = from_snntorch(m).double()
    rec, _ = net(x)
    torch.testing.assert_close(rec.spikes["l1"][1:], s1[:-1].double(), rtol=0, atol=0)
    torch.testing.assert_close(rec.spikes["l2"][2:], s2[:-2].double(), rtol=0, atol=0)


ERRORS = {
    "not sequential": (lambda: nn.ModuleList([nn.Linear(2, 2), snn.Leaky(0.9)]), TypeError, "nn.Sequential"),
    "odd length": (lambda: nn.Sequential(nn.Linear(2, 2)), ValueError, "alternate"),
    "empty": (lambda: nn.Sequential(), ValueError, "alternate"),
    "conv layer": (lambda: nn.Sequential(nn.Conv1d(1, 1, 1), snn.Leaky(0.9)), TypeError, r"model\[0\]"),
    "other neuron": (lambda: nn.Sequential(nn.Linear(2, 2), snn.Alpha(alpha=0.9, beta=0.8)), TypeError, r"model\[1\]"),
    "reset none": (lambda: nn.Sequential(nn.Linear(2, 2), snn.Leaky(0.9, reset_mechanism="none")), ValueError,
                   "reset_mechanism"),
    "subtract without delay": (lambda: nn.Sequential(nn.Linear(2, 2), snn.Leaky(0.9, reset_delay=False)), ValueError,
                               "reset_delay"),
    "synaptic zero with delay": (lambda: nn.Sequential(nn.Linear(2, 2), snn.Synaptic(0.8, 0.9, reset_mechanism="zero")),
                                 ValueError, "reset_delay"),
    "inhibition": (lambda: nn.Sequential(nn.Linear(2, 2), snn.Leaky(0.9, inhibition=True)), ValueError, "inhibition"),
    "graded spikes": (lambda: nn.Sequential(nn.Linear(2, 2), snn.Leaky(0.9, graded_spikes_factor=2.0)), ValueError,
                      "graded_spikes_factor"),
    "bias before synaptic": (lambda: nn.Sequential(nn.Linear(2, 2), snn.Synaptic(0.8, 0.9)), ValueError, "bias"),
    "unknown surrogate": (lambda: nn.Sequential(nn.Linear(2, 2, bias=False), snn.Leaky(0.9, spike_grad=snn.surrogate.SSO())),
                          ValueError, "spike_grad"),
}


@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature")
@pytest.mark.parametrize("case", list(ERRORS))
def test_unsupported_models_raise(case: str) -> None:
    make, exc, match = ERRORS[case]
    with pytest.raises(exc, match=match):
        from_snntorch(make())


def test_bptt_weight_gradients_equal_snntorch() -> None:
    """Gradients flow through the spikes of hidden layers exactly as in snnTorch (subtract reset: both
    detach the reset): the loss on the last layer's spikes gives the same weight gradients."""
    m = _model("subtract")
    x = _x(3)
    _, s2, _, _ = _snn_run(m, x)
    c = torch.linspace(-1, 1, (T - 2) * B * 3).reshape(T - 2, B, 3)
    (s2[:-2] * c).sum().backward()
    net = from_snntorch(m)
    rec, _ = net(x)
    (rec.spikes["l2"][2:] * c).sum().backward()
    g_net = [net.projs["in_to_l1"].weight.raw.grad, net.projs["l1_to_l2"].weight.raw.grad]
    g_snn = [m[0].weight.grad, m[2].weight.grad]
    for a, b in zip(g_net, g_snn):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
