"""The STDP window written out by hand: one pre/post pair at delay dt, at three levels
(functional steps, the ``STDP`` rule module, a ``PlasticLinear`` driven by a ``Network``),
plus the trace's closed form and the documented two-step weight lag."""
from __future__ import annotations

import math

import pytest
import torch

from spikeplastic import LIF, STDP, Network, PlasticLinear
from spikeplastic.functional import STDPTraces, stdp_traces_step, stdp_update, trace_step

F64 = torch.float64
# learned-style values: no power of two anywhere
PARAMS = [
    dict(a_plus=0.0731, a_minus=0.0853, tau_plus=13.7, tau_minus=21.3),
    dict(a_plus=0.517, a_minus=0.366, tau_plus=3.3, tau_minus=7.9),
]
DTS = [0, 1, 2, 5, 11]


def expected_dw(p: dict[str, float], dt: int) -> float:
    """The pair-STDP window: dt = t_post - t_pre."""
    if dt > 0:
        return p["a_plus"] * math.exp(-dt / p["tau_plus"])
    if dt < 0:
        return -p["a_minus"] * math.exp(dt / p["tau_minus"])
    return p["a_plus"] - p["a_minus"]


def _pair(t_pre: int, t_post: int, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    pre = torch.zeros(T, 1, 1, dtype=F64)
    post = torch.zeros(T, 1, 1, dtype=F64)
    pre[t_pre] = 1.0
    post[t_post] = 1.0
    return pre, post


@pytest.mark.parametrize("p", PARAMS)
@pytest.mark.parametrize("dt", DTS + [-d for d in DTS if d])
def test_functional_stdp_window(p: dict[str, float], dt: int) -> None:
    T = 30
    t_pre, t_post = (3, 3 + dt) if dt >= 0 else (3 - dt, 3)
    pre, post = _pair(t_pre, t_post, T)
    tr = STDPTraces(torch.zeros(1, 1, dtype=F64), torch.zeros(1, 1, dtype=F64))
    H = torch.zeros(1, 1, 1, dtype=F64)
    for t in range(T):
        tr = stdp_traces_step(tr, pre[t], post[t], p["a_plus"], p["a_minus"], p["tau_plus"], p["tau_minus"])
        dH = stdp_update(tr, pre[t], post[t])
        # nothing changes except at the second spike of the pair (both at dt = 0)
        want = expected_dw(p, dt) if t == max(t_pre, t_post) else 0.0
        torch.testing.assert_close(dH, torch.full_like(dH, want), rtol=1e-13, atol=1e-15)
        H = H + dH
    torch.testing.assert_close(H.item(), expected_dw(p, dt), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("p", PARAMS)
@pytest.mark.parametrize("dt", DTS + [-d for d in DTS if d])
def test_stdp_rule_module_window(p: dict[str, float], dt: int, default_f64: None) -> None:
    """Through the module (fixed values and learnable raw parameters mapped back to the same values)."""
    T = 30
    t_pre, t_post = (2, 2 + dt) if dt >= 0 else (2 - dt, 2)
    pre, post = _pair(t_pre, t_post, T)
    for learn in (False, True):
        rule = STDP(**p, learn=learn)
        if learn:  # the learnable parametrisation reproduces the requested values
            for k, v in p.items():
                torch.testing.assert_close(getattr(rule, k)().item(), v, rtol=1e-12, atol=0)
        st = rule.initial_state(1, 1, 1, torch.zeros((), dtype=F64))
        H = torch.zeros(1, 1, 1, dtype=F64)
        for t in range(T):
            e, st = rule.step(st, pre[t], post[t], H)
            H = H + e
        torch.testing.assert_close(H.item(), expected_dw(p, dt), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("tau, impulse", [(13.7, 0.0731), (2.9, 1.37)])
def test_trace_closed_form(tau: float, impulse: float) -> None:
    """x[t] = impulse * sum over spikes t_k <= t of exp(-(t - t_k)/tau)  (includes this step's spike)."""
    T = 40
    spikes_at = [3, 4, 9, 20]
    s = torch.zeros(T, 1, 1, dtype=F64)
    s[spikes_at] = 1.0
    x = torch.zeros(1, 1, dtype=F64)
    for t in range(T):
        x = trace_step(x, s[t], tau, impulse)
        want = impulse * sum(math.exp(-(t - tk) / tau) for tk in spikes_at if tk <= t)
        torch.testing.assert_close(x.item(), want, rtol=1e-13, atol=1e-300)
    # tensor tau gives the same
    x2 = trace_step(torch.full((1, 1), 0.4, dtype=F64), s[3], torch.tensor(tau, dtype=F64), torch.tensor(impulse, dtype=F64))
    torch.testing.assert_close(x2.item(), 0.4 * math.exp(-1 / tau) + impulse, rtol=1e-15, atol=0)


def _pair_network(p: dict[str, float], w0: float) -> Network:
    """in[0] -> pre (relay), in[1] -> post (relay); pre -> post plastic with coefficient 1.

    Relays have du = dv = 1 (v = a) and vth = 0.5, so a relay fires exactly one step after its input
    line; the plastic weight stays far below the post threshold, so post fires only when driven.
    """
    with torch.no_grad():
        old = torch.get_default_dtype()
        torch.set_default_dtype(F64)
        try:
            relay = dict(du=1.0, dv=1.0, vth=0.5)
            pops = {"pre": LIF(1, **relay), "post": LIF(1, **relay)}
            projs = [
                ("in", "pre", PlasticLinear(2, 1, weight=torch.tensor([[1.0, 0.0]]), learn_weight=False)),
                ("in", "post", PlasticLinear(2, 1, weight=torch.tensor([[0.0, 2.0]]), learn_weight=False)),
                ("pre", "post", PlasticLinear(1, 1, rule=STDP(**p, learn=False), alpha="none",
                                              weight=torch.tensor([[w0]]), learn_weight=False)),
            ]
            return Network(2, pops, projs)
        finally:
            torch.set_default_dtype(old)


@pytest.mark.parametrize("p", PARAMS[:1])
@pytest.mark.parametrize("dt", [0, 1, 3, 7, -1, -4])
def test_network_stdp_window_and_two_step_lag(p: dict[str, float], dt: int) -> None:
    T, w0 = 30, 0.0437
    i_pre, i_post = (4, 4 + dt) if dt >= 0 else (4 - dt, 4)
    x = torch.zeros(T, 1, 2, dtype=F64)
    x[i_pre, 0, 0] = 1.0
    x[i_post, 0, 1] = 1.0
    # a later probe spike of pre reads the plastic weight back through the post current
    i_probe = max(i_pre, i_post) + 6
    x[i_probe, 0, 0] = 1.0
    net = _pair_network(p, w0)
    rec, _ = net(x, record=("spikes", "weights", "currents"))
    s_pre, s_post = rec.spikes["pre"][:, 0, 0], rec.spikes["post"][:, 0, 0]
    # relays fire one step after their input line (index k of a record is step k + 1)
    assert s_pre.nonzero().flatten().tolist() == [i_pre + 1, i_probe + 1]
    assert s_post.nonzero().flatten().tolist() == [i_post + 1]
    W = rec.weights["pre_to_post"][:, 0, 0, 0]
    k2 = max(i_pre, i_post) + 1  # record index of the pair's second spike
    dw = expected_dw(p, dt)
    # W[t] is the weight after step t's plasticity: unchanged before the pair completes, w0 + dw after
    torch.testing.assert_close(W[:k2], torch.full((k2,), w0, dtype=F64), rtol=0, atol=0)
    # the probe spike (post silent, post trace decayed) then depresses by a_minus*exp(-(probe - post)/tau_minus)
    k3 = i_probe + 1
    torch.testing.assert_close(W[k2:k3], torch.full((k3 - k2,), w0 + dw, dtype=F64), rtol=1e-13, atol=1e-15)
    dep = p["a_minus"] * math.exp(-(i_probe - i_post) / p["tau_minus"])
    torch.testing.assert_close(W[k3].item(), w0 + dw - dep, rtol=1e-13, atol=1e-15)
    # forward pass lag: the post current at step t is W[t-2] @ s_pre[t-1] (+ its relay input, zero here)
    u_post = rec.currents["post"][:, 0, 0]
    torch.testing.assert_close(u_post[k3 + 1].item(), W[k3 - 1].item(), rtol=0, atol=0)
    torch.testing.assert_close(u_post[k3 + 1].item(), w0 + dw, rtol=1e-13, atol=1e-15)
    # the post current that sees the first pre spike uses the initial weight
    assert u_post[i_pre + 2].item() == pytest.approx(w0 + (2.0 if i_post == i_pre + 1 else 0.0), rel=1e-15)


def test_network_weights_seen_by_forward_lag_two_steps() -> None:
    """Whenever pre spikes at step t-1, the post current at t equals W[t-2] exactly (dense pre firing)."""
    p = PARAMS[1]
    T = 40
    g = torch.Generator().manual_seed(3)
    x = torch.bernoulli(torch.full((T, 1, 2), 0.5, dtype=F64), generator=g)
    x[:, 0, 1] *= torch.arange(T) % 3 == 0  # post driven every third step at most
    net = _pair_network(p, 0.0437)
    rec, _ = net(x, record=("spikes", "weights", "currents"))
    W = rec.weights["pre_to_post"][:, 0, 0, 0]
    s_pre = rec.spikes["pre"][:, 0, 0]
    u_post = rec.currents["post"][:, 0, 0]
    drive = 2.0 * torch.cat([torch.zeros(1, dtype=F64), x[:-1, 0, 1]])  # input line i reaches post at record index i + 1
    checked = 0
    for k in range(3, T):  # record index k is step t = k + 1: u[t] = W[t-2] s_pre[t-1] + drive
        if s_pre[k - 1] == 1:
            torch.testing.assert_close(u_post[k] - drive[k], W[k - 2], rtol=1e-13, atol=1e-15)
            checked += 1
    assert checked > 5
    assert (W[1:] != W[:-1]).sum() > 5  # the weight really moved
