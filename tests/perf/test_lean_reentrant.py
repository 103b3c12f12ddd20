"""The lean backward is reentrant: it never writes into what the graph saved (float64).

The lean ops rebuild the plastic matrix ``H`` backwards in time in place. They must do so in a
workspace of their own: if they rebuilt it in storage the graph holds, a second backward on the same
graph (``retain_graph=True``, or ``gradcheck``'s reentrancy check) would start from a reconstructed
final ``H`` instead of the saved one and differ from the first by rounding -- by luck of the host's
rounding zero or not. Three checks, for every lean op, backend and backward mode (the compiled
backend in ``test_lean_compile.py``):

- every tensor the graph node holds (its saved tensors and every tensor reachable from its
  attributes: chunk copies of ``H``, neuron-state checkpoints, currents, spike bits) and every output
  is bit-identical before and after a backward -- this fails on any host if the backward writes
  into one of them, whatever the rounding;
- two backward passes give bit-identical gradients (``torch.equal``: the same ops in the same order)
  (both: the ``reentrant`` fixture, ``conftest.py``);
- ``torch.autograd.gradcheck(..., nondet_tol=0)`` on every lean op.

Spikes are a step function, so the spiking layer is gradchecked with a surrogate whose derivative is
zero (the true derivative wherever no spike flips): that checks every other path -- currents,
voltages, the plasticity rule, the reconstruction of ``H`` -- against finite differences; the
surrogate path itself is compared with plain autograd in ``test_lean_network.py``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from spikeplastic import LIF, STDP, Network, PlasticLinear, lean
from spikeplastic.surrogate import ATan, Surrogate

DT = torch.float64


class ZeroGrad(Surrogate):
    """Heaviside with derivative 0: the exact derivative of the spike wherever no spike flips."""

    name = "zero"

    def grad(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)


# =================================================================================================
# the ops, with their differentiable inputs
# =================================================================================================
def hebb_args(*, T: int = 12, B: int = 2, n: int = 3, bias_unit: bool = True, shared: bool = False,
              eta: float = 0.1, seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    nu = n + int(bias_unit)
    alpha = torch.tensor(0.6, dtype=DT) if shared else 0.5 * torch.randn(n, nu, generator=g, dtype=DT)
    args = [torch.randn(T, B, n, generator=g, dtype=DT), 0.5 * torch.randn(n, nu, generator=g, dtype=DT), alpha,
            torch.tensor(eta, dtype=DT), 0.2 * torch.randn(B, n, generator=g, dtype=DT),
            0.2 * torch.randn(B, n, nu, generator=g, dtype=DT)]
    return [a.requires_grad_(True) for a in args]


HEBB_CASES: dict[str, dict[str, Any]] = {
    "reverse": {},
    "reverse_k3": {"checkpoint_every": 3},
    "reverse_with_copies": {"eta": 0.4},            # (1-eta)^-K <= MAX_AMPLIFICATION: copies of H
    "auto_recompute": {"eta": 0.7},                 # so many copies that recomputation is chosen
    "recompute": {"reconstruct": "never"},
    "recompute_k4": {"reconstruct": "never", "checkpoint_every": 4},
    "shared_alpha": {"shared": True},
    "clamp": {"clamp": True},
    "no_bias_unit": {"bias_unit": False},
}


def run_hebb(case: dict[str, Any], backend: str) -> tuple[Callable[..., Any], list[Tensor]]:
    kw = dict(case)
    arg_kw = {k: kw.pop(k) for k in ("shared", "eta", "bias_unit") if k in kw}
    args = hebb_args(**arg_kw)
    if kw.get("clamp"):
        with torch.no_grad():
            args[0][..., ::2] = 0.0

    def f(*a: Tensor) -> tuple[Tensor, Tensor]:
        return lean.hebb_rnn(*a, bias_unit=arg_kw.get("bias_unit", True), backend=backend, **kw)

    return f, args


def layer_inputs(*, T: int, B: int, n_in: int, n: int, recurrent: bool, rec_plastic: bool, alpha: str,
                 decay: bool, seed: int) -> tuple[dict[str, Tensor], list[str]]:
    """Named leaf tensors of a lean layer (all differentiable)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, scale: float = 1.0) -> Tensor:
        return scale * torch.randn(*shape, generator=g, dtype=DT)

    t: dict[str, Tensor] = {
        "x": torch.bernoulli(torch.full((T, B, n_in), 0.5, dtype=DT), generator=g) * rnd(T, B, n_in).abs(),
        "x_prev": rnd(B, n_in, scale=0.5).abs(),
        "u": rnd(B, n, scale=0.3), "v": rnd(B, n, scale=0.3),
        "s": torch.bernoulli(torch.full((B, n), 0.5, dtype=DT), generator=g),
        "du": torch.tensor(0.3, dtype=DT), "dv": torch.tensor(0.2, dtype=DT),
        "vth": torch.tensor(0.8, dtype=DT), "bias": rnd(n, scale=0.1),
    }
    projs = ["ff"] + (["rec"] if recurrent else [])
    for p in projs:
        m = n_in if p == "ff" else n
        t[f"{p}.w"] = 0.1 + rnd(n, m, scale=0.6)
        if p == "ff" or rec_plastic:
            if alpha == "per_synapse":
                t[f"{p}.alpha"] = rnd(n, m)
            elif alpha == "shared":
                t[f"{p}.alpha"] = torch.tensor(0.7, dtype=DT)
            t[f"{p}.a_plus"] = torch.tensor(0.3, dtype=DT)
            t[f"{p}.a_minus"] = torch.tensor(0.25, dtype=DT)
            t[f"{p}.tau_plus"] = torch.tensor(5.0, dtype=DT)
            t[f"{p}.tau_minus"] = torch.tensor(4.0, dtype=DT)
            if decay:
                t[f"{p}.decay"] = torch.tensor(0.05, dtype=DT)
            t[f"{p}.H"] = rnd(B, n, m, scale=0.3)
            t[f"{p}.X"] = rnd(B, m, scale=0.3).abs()
            t[f"{p}.Y"] = rnd(B, n, scale=0.3).abs()
    names = list(t)
    for v in t.values():
        v.requires_grad_(True)
    return t, names


LAYER_CASES: dict[str, dict[str, Any]] = {
    "ff_per_synapse": {"recurrent": False},
    "ff_rec_per_synapse": {},
    "ff_rec_shared_alpha": {"alpha": "shared"},
    "ff_rec_no_alpha": {"alpha": "none"},
    "ff_rec_decay": {"decay": True},
    # clip is not invertible: chunked recomputation. With decay, H held at the bound moves off it
    # (gradcheck's finite differences need a value that is not exactly on the kink)
    "ff_rec_clip": {"clip": 0.25, "decay": True},
    "ff_rec_never_reconstruct": {"reconstruct": "never", "checkpoint_every": 3},
    "ff_rec_chunks_k3": {"checkpoint_every": 3},
    "rebuilt_currents": {"store_currents": False, "decay": True},
    "rebuilt_currents_k4": {"store_currents": False, "checkpoint_every": 4},
    "static_rec": {"rec_plastic": False},
    "rec_first_subtract": {"rec_first": True, "reset": "subtract", "detach_reset": False},
}


def run_layer(case: dict[str, Any], backend: str, *, spike_fn: Surrogate | None = None, T: int = 10,
              B: int = 2, n_in: int = 4, n: int = 3, seed: int = 0) -> tuple[Callable[..., Any], list[Tensor]]:
    kw = dict(case)
    recurrent = kw.pop("recurrent", True)
    rec_plastic = kw.pop("rec_plastic", True)
    alpha = kw.pop("alpha", "per_synapse")
    decay = kw.pop("decay", False)
    clip = kw.pop("clip", None)
    reset = kw.pop("reset", "zero")
    detach_reset = kw.pop("detach_reset", True)
    t, names = layer_inputs(T=T, B=B, n_in=n_in, n=n, recurrent=recurrent, rec_plastic=rec_plastic, alpha=alpha,
                            decay=decay, seed=seed)
    sfn = spike_fn if spike_fn is not None else ATan()

    def f(*vals: Tensor) -> tuple[Tensor, ...]:
        a = dict(zip(names, vals))

        def proj(p: str) -> lean.LeanProjection:
            if f"{p}.a_plus" not in a:
                return lean.LeanProjection(a[f"{p}.w"])
            stdp = lean.STDPParams(a[f"{p}.a_plus"], a[f"{p}.a_minus"], a[f"{p}.tau_plus"], a[f"{p}.tau_minus"])
            return lean.LeanProjection(a[f"{p}.w"], stdp, alpha=a.get(f"{p}.alpha"), decay=a.get(f"{p}.decay"),
                                       clip=clip)

        lif = lean.LeanLIF(a["du"], a["dv"], a["vth"], a["bias"], sfn, reset, detach_reset)
        st = lean.LayerState(a["u"], a["v"], a["s"], a["x_prev"], a.get("ff.H"), a.get("ff.X"), a.get("ff.Y"),
                             a.get("rec.H"), a.get("rec.X"), a.get("rec.Y"))
        out, fin = lean.plastic_lif_layer(a["x"], proj("ff"), lif, proj("rec") if recurrent else None, st,
                                          record_voltages=True, record_currents=True, backend=backend, **kw)
        return tuple(v for v in (*out, *fin) if v is not None)

    return f, [t[k] for k in names]


def make_net(*, seed: int = 0) -> Network:
    torch.manual_seed(seed)
    lin = dict(alpha_init=0.5, decay=0.05, learn_decay=True, weight_scale=3.0)
    lif = dict(du=0.3, dv=0.2, vth=1.0, learn_decay=True, learn_threshold=True, learn_bias=True)
    net = Network(6, {"l1": LIF(5, **lif), "l2": LIF(4, **lif)},
                  [("in", "l1", PlasticLinear(6, 5, rule=STDP(0.3, 0.35, 5.0, 6.0), **lin)),
                   ("l1", "l1", PlasticLinear(5, 5, rule=STDP(0.2, 0.25, 4.0, 3.0), **lin)),
                   ("l1", "l2", PlasticLinear(5, 4, rule=STDP(0.3, 0.2, 5.0, 6.0), **lin))]).to(DT)
    with torch.no_grad():
        for p in net.projs.values():
            p.alpha.raw.normal_(0.0, 1.0)
    return net


def net_input(T: int = 12, B: int = 2, seed: int = 1) -> Tensor:
    return torch.bernoulli(torch.full((T, B, 6), 0.4, dtype=DT), generator=torch.Generator().manual_seed(seed))


def flat_outputs(rec: Any, st: Any) -> list[Tensor]:
    leaves = [*rec.spikes.values(), *(rec.voltages or {}).values(), *(rec.currents or {}).values()]
    leaves += [t for t in torch.utils._pytree.tree_leaves(st) if isinstance(t, Tensor) and t.requires_grad]
    return leaves


# =================================================================================================
# (1) reentrancy: nothing saved is written, two backward passes are bit-identical
# =================================================================================================
@pytest.mark.parametrize("backend", ["reference", "inplace"])
@pytest.mark.parametrize("case", list(HEBB_CASES), ids=list(HEBB_CASES))
def test_hebb_rnn_reentrant(case: str, backend: str, reentrant: Any) -> None:
    f, args = run_hebb(HEBB_CASES[case], backend)
    reentrant(list(f(*args)), args)


@pytest.mark.parametrize("backend", ["reference", "inplace"])
@pytest.mark.parametrize("case", list(LAYER_CASES), ids=list(LAYER_CASES))
def test_plastic_lif_layer_reentrant(case: str, backend: str, reentrant: Any) -> None:
    f, args = run_layer(LAYER_CASES[case], backend, T=20)
    outs = list(f(*args))
    assert outs[0].sum() > 0.05 * outs[0].numel(), "vacuous: too few spikes"
    reentrant(outs, args)


@pytest.mark.parametrize("backend", ["reference", "inplace"])
def test_network_forward_reentrant(backend: str, reentrant: Any) -> None:
    net = make_net()
    x = net_input(T=20).requires_grad_(True)
    rec, st = lean.network_forward(net, x, record=("spikes", "voltages", "currents"), backend=backend)
    assert all(s.sum() > 0 for s in rec.spikes.values()), "vacuous: a silent population"
    reentrant(flat_outputs(rec, st), [p for p in net.parameters() if p.requires_grad] + [x])


def test_returned_H_is_what_the_backward_starts_from() -> None:
    """The final ``H`` handed to the caller is the tensor the graph saved: modifying it in place
    before the backward is caught by autograd's version check, never silently used."""
    f, args = run_hebb({}, "inplace")
    Y, H = f(*args)
    with torch.no_grad():
        H.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(Y.sum() + H.sum(), args)


# =================================================================================================
# (2) gradcheck (float64, nondet_tol=0: gradcheck itself repeats each backward and wants equality)
# =================================================================================================
GRADCHECK = dict(eps=1e-6, atol=1e-7, rtol=1e-5, nondet_tol=0.0)


@pytest.mark.parametrize("backend", ["reference", "inplace"])
@pytest.mark.parametrize("case", ["reverse", "reverse_with_copies", "recompute", "shared_alpha", "clamp"])
def test_hebb_rnn_gradcheck(case: str, backend: str) -> None:
    f, args = run_hebb(HEBB_CASES[case], backend)
    inp = args[0][:6].detach().clone()  # T = 6: fewer columns
    if case == "clamp":  # clamping is decided by inp != 0: keep inp fixed
        assert torch.autograd.gradcheck(lambda *a: f(inp, *a), args[1:], **GRADCHECK)
    else:
        assert torch.autograd.gradcheck(f, [inp.requires_grad_(True), *args[1:]], **GRADCHECK)


LAYER_GRADCHECK = ["ff_per_synapse", "ff_rec_per_synapse", "ff_rec_shared_alpha", "ff_rec_no_alpha",
                   "ff_rec_decay", "ff_rec_clip", "rebuilt_currents", "static_rec", "rec_first_subtract"]


@pytest.mark.parametrize("backend", ["reference", "inplace"])
@pytest.mark.parametrize("case", LAYER_GRADCHECK)
def test_plastic_lif_layer_gradcheck(case: str, backend: str) -> None:
    f, args = run_layer(LAYER_CASES[case], backend, spike_fn=ZeroGrad(), T=6, n_in=3, n=3)
    S = f(*args)[0]
    assert 0 < S.sum() < S.numel(), "vacuous: no spikes or all spikes"
    assert torch.autograd.gradcheck(f, args, **GRADCHECK)


@pytest.mark.parametrize("backend", ["reference", "inplace"])
def test_network_forward_gradcheck(backend: str) -> None:
    net = make_net()
    for pop in net.pops.values():
        pop.spike_fn = ZeroGrad()
    names = [n for n, p in net.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_(True) for n, p in net.named_parameters() if p.requires_grad]
    x = net_input(T=6, B=1)

    def f(*vals: Tensor) -> tuple[Tensor, ...]:
        lnet = lean.LeanNetwork(net, backend=backend)
        rec, st = torch.func.functional_call(lnet, {f"net.{k}": v for k, v in zip(names, vals)}, (x,),
                                             {"record": ("spikes", "voltages", "currents")})
        return tuple(flat_outputs(rec, st))

    S = f(*params)[0]
    assert 0 < S.sum() < S.numel()
    assert torch.autograd.gradcheck(f, params, **GRADCHECK)

