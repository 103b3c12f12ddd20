"""One equation, one place: every lean kernel against the composition of ``spikeplastic.functional``.

The reference kernels call ``functional`` themselves; the in-place and fused kernels re-express its
math for speed. Here each kernel's single step is checked in float64 against the functional
composition (forward: to 1e-15 relative; the un-step kernels that invert the update: ``H`` back to
1e-12; backward kernels: against autograd through the functional step), and the layer's LIF step
against :func:`~spikeplastic.functional.lif.lif_step`. The fused kernels run eagerly here (same
code, float64); a few configurations also run compiled, where a C++ compiler exists.
"""
from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch import Tensor

from spikeplastic.functional.lif import LIFState, lif_step
from spikeplastic.functional.plasticity import STDPTraces, decay_factor, hebb_step, stdp_traces_step, stdp_update
from spikeplastic.functional.synapse import plastic_current, plastic_part, synaptic_update
from spikeplastic.lean import backend as lean_backend
from spikeplastic.lean import hebb as K_hebb
from spikeplastic.lean import stdp as K_stdp
from spikeplastic.lean.layer_step import LayerFlags, LIFConsts, ProjStep, _layer_fwd_step, _lif_chunk
from spikeplastic.surrogate import surrogate

DT = torch.float64
B, NO, NI = 3, 5, 7
MODES = ["per_synapse", "shared", "none"]
STDP_CASES = list(itertools.product(MODES, [None, 0.9], [None, 0.5]))
IDS = [f"{m}-gamma{g}-clip{c}" for m, g, c in STDP_CASES]


def close(got: Tensor, want: Tensor, rtol: float = 1e-15, msg: str = "") -> None:
    """Relative to the tensor's scale (reductions of O(1) terms round to a few ulp of the sum)."""
    scale = max(1.0, float(want.abs().max()))
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * scale, msg=msg or None)


def stdp_case(mode: str, gamma: float | None, clip: float | None, seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=DT)

    alpha = {"per_synapse": rnd(NO, NI), "shared": torch.tensor(0.7, dtype=DT), "none": None}[mode]
    tau_p, tau_m = torch.tensor(5.0, dtype=DT), torch.tensor(4.0, dtype=DT)
    decay = None if gamma is None else torch.tensor(1.0 - gamma, dtype=DT)
    k = K_stdp.StdpArgs(alpha, torch.tensor(0.3, dtype=DT), torch.tensor(0.2, dtype=DT), decay_factor(tau_p),
                        decay_factor(tau_m), None if decay is None else 1 - decay, mode, clip, tau_p, tau_m, decay)
    return dict(
        k=k, w=rnd(NO, NI), H=0.4 * rnd(B, NO, NI),
        P=torch.bernoulli(torch.full((B, NI), 0.5, dtype=DT), generator=g),
        R=torch.bernoulli(torch.full((B, NO), 0.5, dtype=DT), generator=g),
        X=torch.rand(B, NI, generator=g, dtype=DT), Y=torch.rand(B, NO, generator=g, dtype=DT),
    )


def functional_step(c: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``PlasticLinear.current`` + ``STDP.step`` + ``PlasticLinear.update``: (current incl. w, H', X', Y')."""
    k = c["k"]
    a = plastic_current(c["w"], c["H"], k.alpha, c["P"], k.mode)
    tr = stdp_traces_step(STDPTraces(c["X"], c["Y"]), c["P"], c["R"], k.a_plus, k.a_minus, k.tau_plus, k.tau_minus)
    Hn, _ = synaptic_update(c["H"], stdp_update(tr, c["P"], c["R"]), decay=k.decay, clip=k.clip)
    return a, Hn, tr.x, tr.y


def compiled_or_skip() -> None:
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as exc:
        pytest.skip(f"torch.compile has no C++ compiler here: {exc}")
    if lean_backend._COMPILE_BROKEN:
        pytest.fail(f"torch.compile failed earlier in this process: {lean_backend._COMPILE_BROKEN[0][:300]}")


def compiled(fused: Any, eager: Any, *args: Any) -> Any:
    out = lean_backend._call_kernel("compile", fused, eager, *args)
    assert not lean_backend._COMPILE_BROKEN, lean_backend._COMPILE_BROKEN[0][:300]
    return out


STDP_FWD = {"reference": K_stdp._stdp_fwd_reference, "inplace": K_stdp._stdp_fwd_inplace,
            "fused": K_stdp._stdp_fwd_fused}


# ---- STDP forward step ------------------------------------------------------------------------
def test_plastic_part_is_plastic_current_without_w() -> None:
    for mode in MODES:
        c = stdp_case(mode, None, None)
        got = c["P"] @ c["w"].T + plastic_part(c["H"], c["k"].alpha, c["P"], mode)
        assert torch.equal(got, plastic_current(c["w"], c["H"], c["k"].alpha, c["P"], mode))


@pytest.mark.parametrize("kind", list(STDP_FWD))
@pytest.mark.parametrize(("mode", "gamma", "clip"), STDP_CASES, ids=IDS)
def test_stdp_forward_step(kind: str, mode: str, gamma: float | None, clip: float | None) -> None:
    c = stdp_case(mode, gamma, clip)
    want = functional_step(c)
    H = c["H"].clone()
    buf = torch.empty_like(H)
    cur, Hn, Xn, Yn = STDP_FWD[kind](H, c["P"], c["R"], c["X"], c["Y"], c["k"], buf)
    got = (c["P"] @ c["w"].T + cur, Hn, Xn, Yn)
    for name, a, b in zip(("current", "H'", "X'", "Y'"), got, want):
        if kind == "reference":
            assert torch.equal(a, b), name  # it *is* the functional composition
        close(a, b, msg=f"{kind} {name}")
    if kind != "reference":
        assert Hn is H  # updated in place


@pytest.mark.parametrize(("mode", "gamma", "clip"), [("per_synapse", 0.9, 0.5), ("shared", None, None),
                                                     ("none", 0.9, None)])
def test_stdp_forward_step_compiled(mode: str, gamma: float | None, clip: float | None) -> None:
    compiled_or_skip()
    c = stdp_case(mode, gamma, clip)
    want = functional_step(c)
    H = c["H"].clone()
    cur, Hn, Xn, Yn = compiled(K_stdp._stdp_fwd_fused, K_stdp._stdp_fwd_inplace,
                               H, c["P"], c["R"], c["X"], c["Y"], c["k"], None)
    for name, a, b in zip(("current", "H'", "X'", "Y'"), (c["P"] @ c["w"].T + cur, H, Xn, Yn), want):
        close(a, b, msg=f"compiled {name}")


# ---- STDP: the update inverted (reverse reconstruction, currents rebuilt backwards) ----------------
@pytest.mark.parametrize(("mode", "gamma"), list(itertools.product(MODES, [None, 0.9])))
def test_stdp_unstep_recovers_H(mode: str, gamma: float | None) -> None:
    c = stdp_case(mode, gamma, None)
    want_a, H1, Xn, Yn = functional_step(c)
    k, P, R, H0 = c["k"], c["P"], c["R"], c["H"]
    for name, fn in (("recon_eager", K_stdp._stdp_recon_eager), ("recon_fused", K_stdp._stdp_recon_fused)):
        H = H1.clone()
        fn(H, P, R, Xn, Yn, k.gamma)
        close(H, H0, rtol=1e-12, msg=name)
    for name, fn in (("unstep_eager", K_stdp._stdp_unstep_cur_eager), ("unstep_fused", K_stdp._stdp_unstep_cur_fused)):
        H = H1.clone()
        cur = fn(H, P, R, Xn, Yn, k, torch.empty_like(H))
        close(H, H0, rtol=1e-12, msg=name)
        close(P @ c["w"].T + cur, want_a, rtol=1e-12, msg=f"{name} current")


def test_stdp_unstep_recovers_H_compiled() -> None:
    compiled_or_skip()
    c = stdp_case("per_synapse", 0.9, None)
    want_a, H1, Xn, Yn = functional_step(c)
    H = H1.clone()
    compiled(K_stdp._stdp_recon_fused, K_stdp._stdp_recon_eager, H, c["P"], c["R"], Xn, Yn, c["k"].gamma)
    close(H, c["H"], rtol=1e-12, msg="recon compiled")
    H = H1.clone()
    cur = compiled(K_stdp._stdp_unstep_cur_fused, K_stdp._stdp_unstep_cur_eager, H, c["P"], c["R"], Xn, Yn,
                   c["k"], None)
    close(H, c["H"], rtol=1e-12, msg="unstep compiled")
    close(c["P"] @ c["w"].T + cur, want_a, rtol=1e-12, msg="unstep compiled current")


# ---- STDP backward step against autograd through the functional step ------------------------------
# reconstruct: H[k] rebuilt from H[k+1] first (not for a clipped update: not invertible)
BWD_CASES = [(m, g, c, r) for (m, g, c), r in itertools.product(STDP_CASES, [False, True]) if not (r and c)]


@pytest.mark.parametrize("kind", ["eager", "fused"])
@pytest.mark.parametrize("rule_grad", [True, False], ids=["rule_grad", "no_rule_grad"])
@pytest.mark.parametrize(("mode", "gamma", "clip", "reconstruct"), BWD_CASES,
                         ids=[f"{m}-gamma{g}-clip{c}-{'from_H_k+1' if r else 'H_k'}" for m, g, c, r in BWD_CASES])
def test_stdp_backward_step(kind: str, rule_grad: bool, mode: str, gamma: float | None, clip: float | None,
                            reconstruct: bool) -> None:
    c = stdp_case(mode, gamma, clip)
    k = c["k"]
    g = torch.Generator().manual_seed(1)
    gH1, gc = torch.randn(B, NO, NI, generator=g, dtype=DT), torch.randn(B, NO, generator=g, dtype=DT)
    _, H1, Xn, Yn = functional_step(c)
    # autograd through the functional step; the traces X', Y' are inputs here (their own step is linear)
    H, P, R, Xr, Yr = (t.clone().requires_grad_(True) for t in (c["H"], c["P"], c["R"], Xn, Yn))
    alpha = None if k.alpha is None else k.alpha.clone().requires_grad_(True)
    decay = None if k.decay is None else k.decay.clone().requires_grad_(True)
    Pu, Ru = (P, R) if rule_grad else (P.detach(), R.detach())
    cur = plastic_part(H, alpha, P, mode)
    Hn, _ = synaptic_update(H, stdp_update(STDPTraces(Xr, Yr), Pu, Ru), decay=decay, clip=clip)
    loss = (gH1 * Hn).sum() + (gc * cur).sum()
    leaves = {"H": H, "P": P, "R": R, "X": Xr, "Y": Yr, "alpha": alpha, "decay": decay}
    leaves = {n: t for n, t in leaves.items() if t is not None}
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    want = {n: torch.zeros_like(t) if d is None else d for (n, t), d in zip(leaves.items(), grads)}
    Hk = (H1 if reconstruct else c["H"]).clone()
    gH = gH1.clone()
    galpha = torch.zeros_like(k.alpha) if mode == "per_synapse" else None
    f = K_stdp.StdpBwdFlags(reconstruct, gamma is not None, mode != "none", rule_grad)
    kern = K_stdp._stdp_bwd_fused if kind == "fused" else K_stdp._stdp_bwd_eager
    gR, gP, gXn, gYn, s_gamma, s_alpha = kern(Hk, gH, c["P"], c["R"], Xn, Yn, gc, k, galpha, f,
                                                torch.empty_like(Hk))
    rtol = 1e-13
    if reconstruct:
        close(Hk, c["H"], rtol=1e-12, msg="H[k] rebuilt")
    for name, got in (("H", gH), ("P", gP), ("R", gR), ("X", gXn), ("Y", gYn)):
        close(got, want[name], rtol=rtol, msg=f"d{name}")
    if gamma is not None:
        close(-s_gamma, want["decay"], rtol=rtol, msg="d decay")
    if mode != "none":
        close(galpha if mode == "per_synapse" else s_alpha, want["alpha"], rtol=rtol, msg="d alpha")


# ---- Hebbian rate step -------------------------------------------------------------------------
def hebb_case(shared: bool, clamp: bool) -> dict[str, Any]:
    g = torch.Generator().manual_seed(2)
    n, nu = 5, 6

    def rnd(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=DT)

    inp = rnd(B, n)
    if clamp:
        inp[:, ::2] = 0.0
    alpha = torch.tensor(0.6, dtype=DT) if shared else 0.5 * rnd(n, nu)
    return dict(k=K_hebb.HebbArgs(0.5 * rnd(n, nu), alpha, torch.tensor(0.2, dtype=DT)), H=0.3 * rnd(B, n, nu),
                pre=torch.tanh(rnd(B, nu)), inp=inp, c=(inp != 0).to(DT) if clamp else None)


def hebb_functional(c: dict[str, Any], H: Tensor | None = None, pre: Tensor | None = None, w=None, alpha=None,
                    eta=None, inp=None) -> tuple[Tensor, Tensor]:
    """``PlasticRNN.step`` (rule="hebb") from ``functional``: ``y``, ``H'``."""
    k = c["k"]
    H, pre, inp = c["H"] if H is None else H, c["pre"] if pre is None else pre, c["inp"] if inp is None else inp
    w, alpha, eta = k.w if w is None else w, k.alpha if alpha is None else alpha, k.eta if eta is None else eta
    y = torch.tanh(plastic_current(w, H, alpha, pre, "per_synapse") + inp)
    if c["c"] is not None:
        y = y * (1.0 - c["c"]) + inp * c["c"]
    return y, hebb_step(H, pre, y, eta)


HEBB_CASES = list(itertools.product([False, True], [False, True]))
HEBB_IDS = [f"{'shared' if s else 'per_synapse'}-{'clamp' if c else 'free'}" for s, c in HEBB_CASES]


@pytest.mark.parametrize("kind", ["reference", "inplace", "fused"])
@pytest.mark.parametrize(("shared", "clamp"), HEBB_CASES, ids=HEBB_IDS)
def test_hebb_forward_step(kind: str, shared: bool, clamp: bool) -> None:
    c = hebb_case(shared, clamp)
    want = hebb_functional(c)
    fn = {"reference": K_hebb._hebb_fwd_reference, "inplace": K_hebb._hebb_fwd_inplace,
          "fused": K_hebb._hebb_fwd_fused}[kind]
    H = c["H"].clone()
    got = fn(H, c["pre"], c["inp"], c["c"], c["k"], torch.empty_like(H))
    for name, a, b in zip(("y", "H'"), got, want):
        if kind == "reference":
            assert torch.equal(a, b), name
        close(a, b, msg=f"{kind} {name}")


@pytest.mark.parametrize("kind", ["eager", "fused"])
@pytest.mark.parametrize("reconstruct", [False, True], ids=["H_t", "from_H_t+1"])
@pytest.mark.parametrize(("shared", "clamp"), HEBB_CASES, ids=HEBB_IDS)
def test_hebb_backward_step(kind: str, reconstruct: bool, shared: bool, clamp: bool) -> None:
    c = hebb_case(shared, clamp)
    k = c["k"]
    g = torch.Generator().manual_seed(3)
    _, H1 = hebb_functional(c)
    gH1, gy = torch.randn(H1.shape, generator=g, dtype=DT), torch.randn(B, H1.shape[1], generator=g, dtype=DT)
    H, pre, w, alpha, eta, inp = (t.clone().requires_grad_(True) for t in (c["H"], c["pre"], k.w, k.alpha, k.eta,
                                                                           c["inp"]))
    y, Hn = hebb_functional(c, H, pre, w, alpha, eta, inp)
    loss = (gH1 * Hn).sum() + (gy * y).sum()
    dH, dpre, dw, dalpha, deta, dinp = torch.autograd.grad(loss, [H, pre, w, alpha, eta, inp])
    Hk = (H1 if reconstruct else c["H"]).clone()
    gH = gH1.clone()
    galpha = None if shared else torch.zeros_like(k.alpha)
    f = K_hebb.HebbBwdFlags(reconstruct, True, True)
    kern = K_hebb._hebb_bwd_fused if kind == "fused" else K_hebb._hebb_bwd_eager
    ga, gyt, gpre, s_eta, s_alpha = kern(Hk, gH, c["pre"], y.detach(), gy, c["c"], k, galpha, f,
                                         torch.empty_like(Hk))
    rtol = 1e-13
    if reconstruct:
        close(Hk, c["H"], rtol=1e-12, msg="H[t] rebuilt")
    close(gH, dH, rtol=rtol, msg="dH")
    close(gpre + ga @ k.w, dpre, rtol=rtol, msg="dpre")
    close((ga.unsqueeze(2) * c["pre"].unsqueeze(1)).sum(0), dw, rtol=rtol, msg="dw")
    close(ga if c["c"] is None else ga + gyt * c["c"], dinp, rtol=rtol, msg="dinp")
    close(s_eta, deta, rtol=rtol, msg="d eta")
    close(s_alpha if shared else galpha, dalpha, rtol=rtol, msg="d alpha")


# ---- the LIF of the layer step -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["reference", "inplace", "fused"])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("per_neuron", [False, True], ids=["scalar", "per_neuron"])
def test_layer_step_lif_is_lif_step(kind: str, reset: str, per_neuron: bool) -> None:
    """The layer step's LIF (a static projection feeding it) against ``lif_step``, over 30 steps."""
    g = torch.Generator().manual_seed(4)
    w = 2.0 * torch.randn(NO, NI, generator=g, dtype=DT)
    shape = (NO,) if per_neuron else ()
    du, dv = 0.2 + 0.5 * torch.rand(shape, generator=g, dtype=DT), 0.1 + 0.5 * torch.rand(shape, generator=g, dtype=DT)
    vth, bias = 1.0 + 0.2 * torch.rand(shape, generator=g, dtype=DT), 0.1 * torch.randn(shape, generator=g, dtype=DT)
    lif = LIFConsts(1 - du, 1 - dv, vth, bias)
    flags = LayerFlags(reset, True, False)
    st = LIFState(*(torch.zeros(B, NO, dtype=DT) for _ in range(3)))
    s, u, v = st.s, st.u, st.v
    n_spikes = 0.0
    for _ in range(30):
        P = torch.bernoulli(torch.full((B, NI), 0.4, dtype=DT), generator=g)
        s, u, v, cur, *_ = _layer_fwd_step(kind, P, s, u, v, None, ProjStep(w), None, lif, flags)
        st = lif_step(P @ w.T, st, du, dv, vth, bias, surrogate("atan"), reset=reset)
        assert torch.equal(cur, P @ w.T)
        for name, a, b in zip("suv", (s, u, v), (st.s, st.u, st.v)):
            assert torch.equal(a, b), name  # same ops in the same order
        n_spikes += float(s.sum())
    assert 0.05 * 30 * B * NO < n_spikes < 0.95 * 30 * B * NO, "vacuous: too few or too many spikes"


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_lif_chunk_replays_lif_step(reset: str) -> None:
    """The backward's LIF replay from stored currents and spikes: ``u``, post-reset ``v`` and the
    pre-threshold ``v - vth`` of ``lif_step`` (seen by the surrogate)."""
    g = torch.Generator().manual_seed(5)
    du, dv, vth, bias = (torch.tensor(x, dtype=DT) for x in (0.3, 0.2, 1.0, 0.05))
    C = 1.5 * torch.rand(12, B, NO, generator=g, dtype=DT)
    seen: list[Tensor] = []
    sur = surrogate("atan")

    def spike_fn(x: Tensor) -> Tensor:
        seen.append(x)
        return sur(x)

    st = LIFState(0.1 * torch.rand(B, NO, generator=g, dtype=DT), 0.5 * torch.rand(B, NO, generator=g, dtype=DT),
                  torch.zeros(B, NO, dtype=DT))
    U, V, S = [st.u], [st.v], [st.s]
    for i in range(12):
        st = lif_step(C[i], st, du, dv, vth, bias, spike_fn, reset=reset)
        U.append(st.u), V.append(st.v), S.append(st.s)
    Uc, Vc, VPc = _lif_chunk(C, torch.stack(S), U[0], V[0], LIFConsts(1 - du, 1 - dv, vth, bias), reset)
    assert 0 < float(torch.stack(S).sum()) < S[0].numel() * 12
    assert torch.equal(Uc, torch.stack(U)) and torch.equal(Vc, torch.stack(V))
    assert torch.equal(VPc - vth, torch.stack(seen))


@pytest.mark.parametrize("kind", ["reference", "inplace", "fused"])
def test_layer_step_threshold_is_strict(kind: str) -> None:
    """Membranes exactly on the threshold do not spike (``v > vth``), as in ``lif_step``: with
    ``du = dv = 1``, no bias and 0/1 weights, ``v`` is the count of active inputs, often exactly 1."""
    g = torch.Generator().manual_seed(6)
    w = torch.bernoulli(torch.full((NO, NI), 0.3, dtype=DT), generator=g)
    one, zero = torch.tensor(1.0, dtype=DT), torch.tensor(0.0, dtype=DT)
    P = torch.bernoulli(torch.full((B, NI), 0.4, dtype=DT), generator=g)
    z = torch.zeros(B, NO, dtype=DT)
    s, u, v, *_ = _layer_fwd_step(kind, P, z, z, z, None, ProjStep(w), None, LIFConsts(zero, zero, one, zero),
                                  LayerFlags("zero", True, False))
    st = lif_step(P @ w.T, LIFState(z, z, z), one, one, one, zero, surrogate("atan"))
    assert bool((u == 1.0).any()) and bool((u > 1.0).any()), "vacuous: no membrane on or above the threshold"
    assert torch.equal(s, st.s) and torch.equal(s, (u > 1.0).to(DT))
