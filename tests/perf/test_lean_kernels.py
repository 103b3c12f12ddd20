"""The fused plastic step against the core's step functions, and reconstruction accuracy."""
from __future__ import annotations

import pytest
import torch

from spikeplastic import lean
from spikeplastic.lean import layer_chunk
from spikeplastic.functional.plasticity import STDPTraces, stdp_traces_step, stdp_update

DT = torch.float64
B, NO, NI = 3, 5, 7


def _case(alpha_mode: str, decay: float | None, clip: float | None):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(NO, NI, generator=g, dtype=DT)
    alpha = {"per_synapse": torch.randn(NO, NI, generator=g, dtype=DT), "shared": torch.tensor(0.7, dtype=DT),
             "none": None}[alpha_mode]
    rule = lean.STDPParams(torch.tensor(0.3, dtype=DT), torch.tensor(0.2, dtype=DT),
                           torch.tensor(5.0, dtype=DT), torch.tensor(4.0, dtype=DT))
    proj = lean.LeanProjection(w, rule, alpha=alpha, decay=None if decay is None else torch.tensor(decay, dtype=DT),
                               clip=clip)
    H = torch.randn(B, NO, NI, generator=g, dtype=DT)
    s_pre = torch.bernoulli(torch.full((B, NI), 0.5, dtype=DT), generator=g)
    s_post = torch.bernoulli(torch.full((B, NO), 0.5, dtype=DT), generator=g)
    x, y = torch.rand(B, NI, generator=g, dtype=DT), torch.rand(B, NO, generator=g, dtype=DT)
    return proj, H, s_pre, s_post, x, y


def _core_step(proj, H, s_pre, s_post, x, y):
    """The same step written with the core's step functions (PlasticLinear's composition)."""
    r = proj.stdp
    Wp = H if proj.alpha is None else proj.alpha * H
    a = s_pre @ proj.weight.t() + torch.einsum("boi,bi->bo", Wp, s_pre)
    tr = stdp_traces_step(STDPTraces(x, y), s_pre, s_post, r.a_plus, r.a_minus, r.tau_plus, r.tau_minus)
    Hn = (H if proj.decay is None else (1 - proj.decay) * H) + stdp_update(tr, s_pre, s_post)
    if proj.clip is not None:
        Hn = Hn.clamp(-proj.clip, proj.clip)
    return a, Hn, tr.x, tr.y


@pytest.mark.parametrize("backend", ["reference", "inplace"])
@pytest.mark.parametrize("alpha_mode", ["per_synapse", "shared", "none"])
@pytest.mark.parametrize(("decay", "clip"), [(None, None), (0.1, None), (0.1, 0.5)], ids=["plain", "decay", "clip"])
def test_fused_step_matches_core(backend: str, alpha_mode: str, decay, clip) -> None:
    proj, H, s_pre, s_post, x, y = _case(alpha_mode, decay, clip)
    want = _core_step(proj, H, s_pre, s_post, x, y)
    H_in = H.clone()
    got = lean.fused_stdp_step(H_in, s_pre, s_post, x, y, proj, backend=backend)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    if backend == "inplace":
        assert got[1] is H_in  # updated in place, no new [B, n_post, n_pre] tensor


def test_fused_step_rejects_static() -> None:
    proj, H, s_pre, s_post, x, y = _case("none", None, None)
    with pytest.raises(ValueError, match="plastic"):
        lean.fused_stdp_step(H, s_pre, s_post, x, y, proj._replace(stdp=None))


@pytest.mark.parametrize("decay", [0.0, 0.01, 0.1])
def test_float32_reconstruction_over_long_episodes(decay: float) -> None:
    """float32, T = 600: gradients through the reverse reconstruction (with the exact copies the
    amplification bound asks for) agree with float64 ones as well as plain float32 BPTT does."""
    from spikeplastic import LIF, STDP, Network, PlasticLinear

    torch.manual_seed(0)
    net = Network(24, {"l1": LIF(16, du=0.5, dv=0.1)},
                  [("in", "l1", PlasticLinear(24, 16, rule=STDP(0.05, 0.06, 20.0, 20.0), decay=decay,
                                              alpha_init=1.0, weight_scale=3.0))])
    x = torch.bernoulli(torch.full((600, 2, 24), 0.15), generator=torch.Generator().manual_seed(1))
    p = net.projs["in_to_l1"].alpha.raw

    def grad(dtype: torch.dtype, backend: str) -> torch.Tensor:
        net.to(dtype)
        rec, st = lean.network_forward(net, x.to(dtype), backend=backend)
        return torch.autograd.grad(rec.spikes["l1"].sum() + st.synapses["in_to_l1"].H.sum(), [p])[0].double()

    g64 = grad(DT, "reference")
    g32 = grad(torch.float32, "inplace")
    net.to(torch.float32)
    rec, st = net(x)
    g32_plain = torch.autograd.grad(rec.spikes["l1"].sum() + st.synapses["in_to_l1"].H.sum(), [p])[0].double()
    err_lean = float((g32 - g64).abs().max() / g64.abs().max())
    err_plain = float((g32_plain - g64).abs().max() / g64.abs().max())
    assert err_lean < max(1e-4, 10 * err_plain), (err_lean, err_plain)


@pytest.mark.parametrize(("T", "rebuilt"), [(8, False), (30, True)])
def test_currents_stored_or_rebuilt_by_default(monkeypatch, T: int, rebuilt: bool) -> None:
    """Default: store each step's input current when that costs less than one more H (T <= n_in)."""
    from spikeplastic import STDP, Network, PlasticLinear

    calls = []
    orig = layer_chunk._stdp_unstep_cur_eager
    monkeypatch.setattr(layer_chunk, "_stdp_unstep_cur_eager", lambda *a: calls.append(1) or orig(*a))
    torch.manual_seed(0)
    net = Network.feedforward([12, 6], rule=lambda: STDP(), linear={"weight_scale": 4.0})
    x = torch.bernoulli(torch.full((T, 2, 12), 0.3))
    rec, _ = lean.network_forward(net, x, backend="inplace")
    rec.spikes["l1"].sum().backward()
    assert bool(calls) == rebuilt
