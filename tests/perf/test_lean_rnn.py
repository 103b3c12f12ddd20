"""The lean Hebbian rate path against plain autograd through the core ``PlasticRNN`` (float64).

``lean_rnn.plastic_rnn_forward(model, x, state)`` and ``model(x, state)`` must give the same outputs and
final state and the same gradients w.r.t. ``w``, ``alpha``, ``eta``, the input/readout maps, the
inputs and the initial state, with reverse reconstruction, exact copies and chunked recomputation.
"""
from __future__ import annotations

from typing import Any

import pytest
import torch

from spikeplastic import lean
from spikeplastic.baselines import PlasticRNN, lean_rnn
from spikeplastic.baselines.rate_plastic import PlasticRNNState

DT = torch.float64
T, B, N = 25, 3, 6


def make(eta: float = 0.1, **kw: Any) -> PlasticRNN:
    torch.manual_seed(0)
    # lean="off": model(x) is the plain-autograd step loop (the reference), not the automatic lean path
    return PlasticRNN(N, w_init_std=0.5, alpha_init_std=0.5, eta_init=eta, lean="off", **kw).to(DT)


def episode(model: PlasticRNN, seed: int = 1) -> tuple[torch.Tensor, PlasticRNNState]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, model.n_in, generator=g, dtype=DT)
    if model.clamp:
        x[..., ::2] = 0.0
    st = model.initial_state(B)
    st = PlasticRNNState(0.4 * torch.rand(st.y.shape, generator=g, dtype=DT) - 0.2,
                         0.4 * torch.rand(st.hebb.shape, generator=g, dtype=DT) - 0.2)
    return x, st


def compare(model: PlasticRNN, *, exact: bool, **kw: Any) -> None:
    x, st = episode(model)
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad] + ["x", "y0", "H0"]

    def run(f: Any) -> tuple[torch.Tensor, Any, tuple[torch.Tensor, ...]]:
        xr = x.clone().requires_grad_(True)
        s0 = PlasticRNNState(st.y.clone().requires_grad_(True), st.hebb.clone().requires_grad_(True))
        out, fin = f(xr, s0)
        g = torch.Generator().manual_seed(3)
        loss = sum((t * torch.randn(t.shape, generator=g, dtype=DT)).sum() for t in (out, fin.y, fin.hebb))
        return out, fin, torch.autograd.grad(loss, params + [xr, s0.y, s0.hebb])

    o0, f0, g0 = run(lambda xr, s0: model(xr, s0))
    o1, f1, g1 = run(lambda xr, s0: lean_rnn.plastic_rnn_forward(model, xr, s0, **kw))
    cmp = torch.equal if exact else (lambda a, b: torch.allclose(a, b, rtol=1e-12, atol=1e-13))
    assert cmp(o0, o1) and cmp(f0.y, f1.y) and cmp(f0.hebb, f1.hebb)
    for name, a, b in zip(names, g0, g1):
        assert a.abs().max() > 0, f"vacuous gradient for {name}"
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12 * max(1.0, float(a.abs().max())), msg=name)


CASES: dict[str, dict[str, Any]] = {
    "per_synapse": {},
    "bias_unit": {"bias_unit": True},
    "shared_alpha": {"alpha": "shared"},
    "clamp": {"clamp": True},
    "linear_maps": {"n_hidden": 5, "input_map": "linear", "readout": "linear", "n_out": 3},
    "fixed_eta": {"learn_eta": False, "bias_unit": True},
}


@pytest.mark.parametrize("backend", ["reference", "inplace"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_matches_core_plastic_rnn(case: str, backend: str) -> None:
    compare(make(**CASES[case]), exact=backend == "reference", backend=backend)


@pytest.mark.parametrize(
    ("eta", "kw"),
    [
        (0.1, {"reconstruct": "never"}),
        (0.1, {"reconstruct": "never", "checkpoint_every": 4}),
        (0.1, {"checkpoint_every": 3}),
        (0.4, {}),    # (1-eta)^-K <= MAX_AMPLIFICATION: exact copies every few steps
        (0.7, {}),    # so many copies that chunked recomputation is chosen
    ],
    ids=["recompute", "recompute_k4", "reverse_k3", "reverse_with_copies", "auto_recompute"],
)
def test_backward_modes(eta: float, kw: dict[str, Any]) -> None:
    compare(make(eta=eta, bias_unit=True), exact=True, backend="reference", **kw)


def test_wrapper_and_pattern_sized_float32() -> None:
    torch.manual_seed(0)
    model = PlasticRNN(40, bias_unit=True, lean="off")
    lm = lean_rnn.LeanPlasticRNN(model, backend="inplace")
    assert lm.n_in == 40 and {id(p) for p in lm.parameters()} == {id(p) for p in model.parameters()}
    x = 20.0 * torch.sign(torch.randn(30, 2, 40))
    out0, _ = model(x)
    out1, _ = lm(x)
    torch.testing.assert_close(out1, out0, rtol=1e-5, atol=1e-6)
    g0 = torch.autograd.grad(out0[-1].pow(2).sum(), [model.alpha, model.eta.raw])
    g1 = torch.autograd.grad(out1[-1].pow(2).sum(), [model.alpha, model.eta.raw])
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_hebb_rnn_gradcheck() -> None:
    torch.manual_seed(0)
    n, nu = 3, 4
    args = [torch.randn(5, 2, n, dtype=DT), 0.5 * torch.randn(n, nu, dtype=DT), 0.5 * torch.randn(n, nu, dtype=DT),
            torch.tensor(0.3, dtype=DT), 0.2 * torch.randn(2, n, dtype=DT), 0.2 * torch.randn(2, n, nu, dtype=DT)]
    args = [a.requires_grad_(True) for a in args]
    f = lambda *a: lean.hebb_rnn(*a, bias_unit=True, backend="inplace")  # noqa: E731
    assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_unsupported_rule_raises() -> None:
    with pytest.raises(ValueError, match="oja"):
        lean_rnn.LeanPlasticRNN(PlasticRNN(4, rule="oja"))
    with pytest.raises(TypeError, match="PlasticRNN"):
        lean_rnn.plastic_rnn_forward(torch.nn.Linear(2, 2), torch.zeros(2, 1, 2))


@pytest.mark.slow
def test_compile_backend_matches() -> None:
    compare(make(bias_unit=True), exact=False, backend="compile")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("backend", ["inplace", "compile"])
def test_cuda_matches_cpu(backend: str) -> None:
    model = make(bias_unit=True)
    x, st = episode(model)
    o0, _ = lean_rnn.plastic_rnn_forward(model, x, st, backend="reference")
    g0 = torch.autograd.grad(o0.pow(2).sum(), [model.alpha])[0]
    model = model.cuda()
    o1, _ = lean_rnn.plastic_rnn_forward(model, x.cuda(), PlasticRNNState(st.y.cuda(), st.hebb.cuda()), backend=backend)
    g1 = torch.autograd.grad(o1.pow(2).sum(), [model.alpha])[0]
    torch.testing.assert_close(o1.cpu(), o0, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g1.cpu(), g0, rtol=1e-9, atol=1e-12)
