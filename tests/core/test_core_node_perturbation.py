"""Node perturbation (issue 14): the noise stream, the functional step and the rule against equations
written out here by hand (numpy, independent of spikeplastic), float64 gradchecks of its learnable
coefficients, module errors, and a whole network against a hand-written numpy loop."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.autograd import gradcheck

import spikeplastic as sp
from spikeplastic import LIF, Network, Neuromodulation, NodePerturbation, PlasticLinear
from spikeplastic import ir as _ir
from spikeplastic.functional import (
    NPState,
    node_perturbation_step,
    perturbation_noise,
    reward_baseline_step,
)
from test_core_gradients import _rand, _spiky, gradcheck_module

F64 = torch.float64
B = 2


# ----------------------------------------------------------------------------- the noise stream
def _hash32_np(x: np.ndarray) -> np.ndarray:
    """lowbias32 in uint64 with explicit 32-bit wrap-around (written from the published constants)."""
    m = np.uint64(0xFFFFFFFF)
    x = x & m
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & m
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & m
    x ^= x >> np.uint64(16)
    return x


def noise_np(seed: int, step: int, n: int) -> np.ndarray:
    """xi = sqrt(3) (2u - 1), u = (h + 1/2) / 2^32, h = hash(hash(hash(seed) ^ step) ^ i)."""
    h = _hash32_np(_hash32_np(np.uint64(seed % 2**32)) ^ np.uint64(step % 2**32))
    h = _hash32_np(h ^ np.arange(n, dtype=np.uint64))
    u = (h.astype(np.float64) + 0.5) * 2.0**-32
    return (2.0 * u - 1.0) * math.sqrt(3.0)


def test_noise_is_the_hash_written_out_bit_for_bit() -> None:
    seeds = [0, 1, 7, 2**31 + 5, 2**32 - 1]
    steps = [0, 1, 2, 1000, 2**33 + 3]  # a step >= 2^32 wraps
    xi = perturbation_noise(torch.tensor(seeds), torch.tensor(steps), 11, F64)
    for b, (s, t) in enumerate(zip(seeds, steps)):
        np.testing.assert_array_equal(xi[b].numpy(), noise_np(s, t, 11), err_msg=f"seed {s}, step {t}")
    assert perturbation_noise(torch.tensor([3]), torch.tensor([4]), 5).dtype == torch.get_default_dtype()
    with pytest.raises(TypeError, match="int64"):
        perturbation_noise(torch.tensor([3.0]), torch.tensor([4]), 5)


def test_noise_statistics() -> None:
    xi = perturbation_noise(torch.arange(400), torch.zeros(400, dtype=torch.int64), 250, F64)
    nxt = perturbation_noise(torch.arange(400), torch.ones(400, dtype=torch.int64), 250, F64)
    assert abs(float(xi.mean())) < 0.01 and abs(float(xi.var()) - 1.0) < 0.01, (xi.mean(), xi.var())
    assert float(xi.abs().max()) < math.sqrt(3.0)
    # no correlation between neighbouring steps, seeds or neurons
    for a, b, what in ((xi, nxt, "steps"), (xi[:-1], xi[1:], "seeds"), (xi[:, :-1], xi[:, 1:], "neurons")):
        assert abs(float((a * b).mean())) < 0.01, what


# ----------------------------------------------------------------------------- functional steps
def test_node_perturbation_step_written_out() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(B, 3, generator=g, dtype=F64)
    s_pre = torch.bernoulli(torch.full((B, 3), 0.5, dtype=F64), generator=g)
    noise = torch.randn(B, 2, generator=g, dtype=F64)
    tau, eta = 7.3, 0.037
    e, xn = node_perturbation_step(x, s_pre, noise, tau, eta)
    for b in range(B):
        for j in range(3):
            want_x = x[b, j].item() * math.exp(-1.0 / tau) + eta * s_pre[b, j].item()
            assert xn[b, j].item() == pytest.approx(want_x, rel=1e-15)
            for i in range(2):
                assert e[b, i, j].item() == pytest.approx(noise[b, i].item() * want_x, rel=1e-15)


def test_reward_baseline_step_written_out() -> None:
    b0, r = torch.tensor([[0.2, -0.1]], dtype=F64), torch.tensor([[1.0, 1.0]], dtype=F64)
    m, b1 = reward_baseline_step(b0, r, 0.25)
    torch.testing.assert_close(m, torch.tensor([[0.8, 1.1]], dtype=F64), rtol=0, atol=1e-15)
    torch.testing.assert_close(b1, torch.tensor([[0.2 + 0.25 * 0.8, -0.1 + 0.25 * 1.1]], dtype=F64), rtol=0, atol=1e-15)


def test_gradcheck_functional_coefficients() -> None:
    """sigma (through noise = sigma * xi), tau, eta and the baseline rate eta_b, float64."""
    x, s_pre = _rand(B, 3, lo=0, hi=1, seed=1), _spiky((B, 3), 2)
    xi = perturbation_noise(torch.tensor([1, 2]), torch.tensor([5, 5]), 2, F64)
    sigma, tau, eta = _rand((), lo=0.05, hi=0.3, seed=3), _rand((), lo=2, hi=20, seed=4), _rand((), lo=0.01, hi=0.1, seed=5)
    assert gradcheck(lambda x, sigma, tau, eta: node_perturbation_step(x, s_pre, sigma * xi, tau, eta),
                     (x, sigma, tau, eta))
    base, r, eta_b = _rand(B, 2, seed=6), _rand(B, 2, lo=-1, hi=1, seed=7), _rand((), lo=0.05, hi=0.9, seed=8)
    assert gradcheck(lambda base, r, eta_b: reward_baseline_step(base, r, eta_b), (base, r, eta_b))


@pytest.mark.parametrize("mode", ["simple", "retroactive"])
def test_gradcheck_plastic_linear_raw_coefficients(mode: str, default_f64: None) -> None:
    """Two steps of update + perturbation of a projection w.r.t. the rule's raw parameters
    (sigma, tau, eta, eta_b): the noise current, H, E and the baseline."""
    rule = NodePerturbation(0.137, 7.3, 0.0731, 0.23)
    layer = PlasticLinear(3, 2, rule=rule, modulation=Neuromodulation(mode, None, eta_e=0.25, learn_eta=False),
                          learn_weight=False, learn_alpha=False)
    pre = [_spiky((B, 3), 1), _spiky((B, 3), 2)]
    ext = [torch.tensor([0.7, -0.4], dtype=F64), torch.tensor([0.3, 0.9], dtype=F64)]

    def fn(m, H):
        st = m.initial_state(B, noise_seed=5)._replace(H=H)
        st = st._replace(rule=st.rule._replace(step=st.rule.step + 3))  # not a fresh state: the baseline moves
        outs = []
        for k in range(2):
            st = m.update(st, pre[k], None, m.modulation.signal(None, ext[k]))
            noise, st = m.perturbation(st)
            outs += [noise, st.H, st.rule.baseline]
        return tuple(outs) + (() if st.E is None else (st.E,))

    expect = {"rule.sigma.raw", "rule.tau.raw", "rule.eta.raw", "rule.eta_b.raw"}
    gradcheck_module(layer, fn, [_rand(B, 2, 3, seed=4)], expect)


# ----------------------------------------------------------------------------- the module
def test_module_state_shapes_and_reproducible_seeds(default_f64: None) -> None:
    rule = NodePerturbation()
    like = torch.zeros(())
    st = rule.initial_state(3, 4, 5, like, seed=9)
    assert isinstance(st, NPState)
    assert st.x.shape == (3, 4) and st.xi.shape == (3, 5) and st.baseline.shape == (3, 5)
    assert st.seed.tolist() == [9, 9, 9] and st.step.tolist() == [0, 0, 0] and st.seed.dtype == torch.int64
    np.testing.assert_array_equal(st.xi[0].numpy(), noise_np(9, 0, 5))
    noise, st2 = rule.perturbation(st)
    torch.testing.assert_close(noise, rule.sigma() * st.xi, rtol=0, atol=0)
    assert st2.step.tolist() == [1, 1, 1]
    np.testing.assert_array_equal(st2.xi[1].numpy(), noise_np(9, 1, 5))
    torch.manual_seed(0)
    a = rule.initial_state(4, 4, 5, like).seed
    torch.manual_seed(0)
    assert torch.equal(a, rule.initial_state(4, 4, 5, like).seed) and len(set(a.tolist())) == 4


def test_gate_subtracts_the_running_baseline_but_not_before_the_first_step(default_f64: None) -> None:
    rule = NodePerturbation(eta_b=0.25)
    st = rule.initial_state(2, 3, 4, torch.zeros(()), seed=1)
    m = torch.tensor([1.0, -2.0]).view(2, 1, 1)
    g, st1 = rule.gate(st, m)  # a fresh state: the update of step -1
    torch.testing.assert_close(g, m.expand(2, 4, 1))
    assert torch.equal(st1.baseline, st.baseline)
    st1 = st1._replace(step=st1.step + 1)
    g, st2 = rule.gate(st1, m)
    torch.testing.assert_close(st2.baseline, 0.25 * m.view(2, 1).expand(2, 4))
    g3, _ = rule.gate(st2, m)
    torch.testing.assert_close(g3, (m.view(2, 1) - 0.25 * m.view(2, 1)).expand(2, 4).unsqueeze(-1))
    off = NodePerturbation(baseline=False)
    g, st4 = off.gate(st2, m)
    assert g is m and st4 is st2


def test_errors_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="third factor.*modulation=Neuromodulation"):
        PlasticLinear(3, 2, rule=NodePerturbation())
    with pytest.raises(ValueError, match="sigma"):
        NodePerturbation(sigma=-0.1)
    with pytest.raises(ValueError, match="tau"):
        NodePerturbation(tau=0.5)
    with pytest.raises(ValueError, match="eta_b"):
        NodePerturbation(eta_b=1.5)
    with pytest.raises(ValueError, match="sigma.*learnable"):
        NodePerturbation(sigma=0.0)  # softplus never reaches 0: learn=False holds it there
    NodePerturbation(sigma=0.0, learn=False)
    with pytest.raises(TypeError, match="baseline"):
        NodePerturbation(baseline=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        NodePerturbation().initial_state(2, 3, 4, torch.zeros(()), seed=-1)
    net = _net(torch.float64)
    with pytest.raises(ValueError, match="noise_seed"):
        net.initial_state(2, noise_seed=2**32 - 1)
    with pytest.raises(ValueError, match="needs a modulation"):
        _ir.Projection("p", "a", "b", np.zeros((2, 2)), rule=_ir.NodePerturbationRule(0.1, 5.0, 0.1, 0.1))
    with pytest.raises(ValueError, match="eta_b"):
        _ir.NodePerturbationRule(0.1, 5.0, 0.1, 1.5)
    bad = _ir.NodePerturbationRule(0.1, 5.0, 0.1, 0.1, noise="gaussian-philox")
    with pytest.raises(ValueError, match="noise.*uniform-hash32"):
        sp.rules.rule_from_ir(bad)
    assert sp.NodePerturbation is NodePerturbation and "NodePerturbation" in sp.__all__


# ----------------------------------------------------------------------------- a whole network by hand
N_IN, N = 6, 5


def _net(dtype: torch.dtype, mode: str = "retroactive", source: str | None = None) -> Network:
    torch.manual_seed(3)
    mod = Neuromodulation(mode, source, eta_e=0.25, learn_eta=False)
    rec = PlasticLinear(N, N, rule=NodePerturbation(0.3, 4.0, 0.5, 0.2, learn=False), alpha_init=torch.empty(N, N).uniform_(-2, 2),
                        modulation=mod, weight_scale=1.0)
    return Network(N_IN, {"h": LIF(N, du=0.6, dv=0.3, vth=0.5)},
                   [("in", "h", PlasticLinear(N_IN, N, weight_scale=2.5)), ("h", "h", rec)]).to(dtype)


def _by_hand(net: Network, x: np.ndarray, r: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The network written out: LIF, one step of synaptic delay, W = w + alpha*H two updates behind,
    noise sigma*xi[t] added to the input current at t, e = outer(sigma*xi[t+1], x_pre[t]),
    retroactive gate (r[t] - b), b += eta_b (r[t] - b)."""
    p_in, p_rec = net.projs["in_to_h"], net.projs["h_to_h"]
    w_in = p_in.weight().detach().numpy()
    w, alpha = p_rec.weight().detach().numpy(), p_rec.alpha().detach().numpy()
    sigma, tau, eta, eta_b, eta_e = 0.3, 4.0, 0.5, 0.2, 0.25
    seed_rec = seed + 1  # projection index 1
    T = x.shape[0]
    u = v = s = np.zeros(N)
    H, E, xtr, b = np.zeros((N, N)), np.zeros((N, N)), np.zeros(N), 0.0
    x_prev = np.zeros(N_IN)
    spikes, weights = [], []
    for t in range(T):
        # plasticity of step t-1 (its spikes s, its reward r[t-1]), applied before this step's current
        H_cur = H
        if t > 0:
            xtr = xtr * math.exp(-1.0 / tau) + eta * s
            e = np.outer(sigma * noise_np(seed_rec, t, N), xtr)
            m = r[t - 1] - b
            b = b + eta_b * (r[t - 1] - b)
            H_new, E = H + m * E, E + eta_e * (e - E)
        else:
            H_new = H
        a = w_in @ x_prev + (w + alpha * H_cur) @ s + sigma * noise_np(seed_rec, t, N)
        H = H_new
        u = u * 0.4 + a
        v = v * 0.7 + u
        s = (v > 0.5).astype(np.float64)
        v = np.where(s > 0, 0.0, v)
        x_prev = x[t]
        spikes.append(s)
        # recorded W[t]: after the plasticity of step t
        weights.append(w + alpha * (H + (r[t] - b) * E))
    return np.array(spikes), np.array(weights)


def test_network_matches_the_dynamics_written_out(default_f64: None) -> None:
    net = _net(F64)
    rng = np.random.default_rng(0)
    T = 60
    x = (rng.random((T, N_IN)) < 0.4).astype(np.float64)
    r = rng.normal(size=T)
    with torch.no_grad():
        rec, _ = net(torch.from_numpy(x)[:, None], net.initial_state(1, noise_seed=11), record=("spikes", "weights"),
                     third_factor=torch.from_numpy(r)[:, None])
    s_ref, w_ref = _by_hand(net, x, r, 11)
    s = rec.spikes["h"][:, 0].numpy()
    np.testing.assert_array_equal(s, s_ref)
    dw = np.abs(w_ref - w_ref[0]).max()
    assert s.sum() > 20 and dw > 1e-3, f"the check needs spikes and learning: {int(s.sum())} spikes, max |dW| {dw:.3g}"
    np.testing.assert_allclose(rec.weights["h_to_h"][:, 0].numpy(), w_ref, rtol=0, atol=1e-12)


def test_noise_changes_the_spikes_and_simulate_reproduces_a_seed(default_f64: None) -> None:
    net = _net(F64)
    rng = np.random.default_rng(1)
    x = torch.from_numpy((rng.random((80, 1, N_IN)) < 0.4).astype(np.float64))
    r = torch.from_numpy(rng.normal(size=(80, 1)))
    with torch.no_grad():
        a, _ = net(x, net.initial_state(1, noise_seed=0), third_factor=r)
        b, _ = net(x, net.initial_state(1, noise_seed=100), third_factor=r)
    assert int((a.spikes["h"] != b.spikes["h"]).sum()) > 0, "the noise must reach the spikes"
    ref = sp.simulate(net.to_ir(), x[:, 0], third_factor=r[:, 0], noise_seed=0)
    torch.testing.assert_close(ref.spikes["h"], a.spikes["h"], rtol=0, atol=0)


def test_ir_round_trip(tmp_path) -> None:
    net = _net(torch.float32, mode="simple", source="h")
    ir = net.to_ir()
    rule = ir.projections[1].rule
    assert isinstance(rule, _ir.NodePerturbationRule) and rule.noise == "uniform-hash32" and rule.baseline
    path = tmp_path / "np.npz"
    _ir.save(ir, path)
    back = _ir.load(path)
    assert back.projections[1].rule == rule
    rebuilt = Network.from_ir(back)
    assert isinstance(rebuilt.projs["h_to_h"].rule, NodePerturbation)
    assert rebuilt.projs["h_to_h"].rule.to_ir() == rule


def test_a_run_split_in_two_equals_one_run(default_f64: None) -> None:
    """The rule state carries the noise clock, so continuing from a state injects the same stream."""
    net = _net(F64, mode="retroactive", source=None)
    rng = np.random.default_rng(2)
    x = torch.from_numpy((rng.random((70, 2, N_IN)) < 0.4).astype(np.float64))
    r = torch.from_numpy(rng.normal(size=(70, 2)))
    with torch.no_grad():
        full, st = net(x, net.initial_state(2, noise_seed=3), record=("spikes", "weights"), third_factor=r)
        a, st_a = net(x[:29], net.initial_state(2, noise_seed=3), record=("spikes", "weights"), third_factor=r[:29])
        b, st_b = net(x[29:], st_a, record=("spikes", "weights"), third_factor=r[29:])
    torch.testing.assert_close(torch.cat([a.spikes["h"], b.spikes["h"]]), full.spikes["h"], rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([a.weights["h_to_h"], b.weights["h_to_h"]]), full.weights["h_to_h"],
                               rtol=0, atol=0)
    assert st_b.synapses["h_to_h"].rule.step.tolist() == [70, 70]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_noise_and_network_match_cpu() -> None:
    seeds, steps = torch.arange(64), torch.arange(64) * 977
    torch.testing.assert_close(perturbation_noise(seeds.cuda(), steps.cuda(), 300, F64).cpu(),
                               perturbation_noise(seeds, steps, 300, F64), rtol=0, atol=0)
    net = _net(F64)
    rng = np.random.default_rng(3)
    x = torch.from_numpy((rng.random((50, 2, N_IN)) < 0.4).astype(np.float64))
    r = torch.from_numpy(rng.normal(size=(50, 2)))
    with torch.no_grad():
        cpu, _ = net(x, net.initial_state(2, noise_seed=4), record=("spikes", "weights"), third_factor=r)
        net = net.to("cuda")
        gpu, _ = net(x.cuda(), net.initial_state(2, noise_seed=4), record=("spikes", "weights"), third_factor=r.cuda())
    torch.testing.assert_close(gpu.spikes["h"].cpu(), cpu.spikes["h"], rtol=0, atol=0)
    torch.testing.assert_close(gpu.weights["h_to_h"].cpu(), cpu.weights["h_to_h"], rtol=1e-10, atol=1e-12)
