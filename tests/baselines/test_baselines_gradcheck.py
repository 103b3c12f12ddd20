"""float64 ``torch.autograd.gradcheck`` of one ``step`` w.r.t. parameters, the input and the state."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch.func import functional_call

from spikeplastic.baselines import LSTM, RNN, Backpropamine, OneShotPlastic, PlasticRNN
from spikeplastic.protocol import EpisodeModel

B = 2


def _random_state(model: EpisodeModel, gen: torch.Generator):
    """A non-trivial state: every field uniform in (-0.4, 0.4)."""
    zero = model.initial_state(B)
    return type(zero)(*(0.8 * torch.rand(t.shape, generator=gen, dtype=torch.float64) - 0.4 for t in zero))


def _gradcheck_step(model: EpisodeModel, param_names: list[str], x: torch.Tensor, *, wrt_x: bool = True) -> None:
    """Gradcheck ``(params, x, state) -> (out, *new_state)`` for one step.

    ``x`` is excluded where the step branches on ``x != 0`` (clamping, label detection): those
    masks are piecewise constant in ``x``, so finite differences at exact zeros are meaningless.
    """
    model = model.double()
    gen = torch.Generator().manual_seed(0)
    state = _random_state(model, gen)
    params = dict(model.named_parameters())
    missing = [n for n in param_names if n not in params]
    assert not missing, f"{missing} not in {sorted(params)}"
    fixed = {n: p.detach() for n, p in params.items() if n not in param_names}
    n_p = len(param_names)
    leaves = [params[n].detach().clone().requires_grad_(True) for n in param_names]
    x = x.double().clone().requires_grad_(wrt_x)
    state_leaves = [t.clone().requires_grad_(True) for t in state]

    def one_step(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p = dict(zip(param_names, args[:n_p]))
        s = type(state)(*args[n_p + 1 :])
        # forward() over a length-1 sequence is exactly one step()
        out, new = functional_call(model, {**fixed, **p}, (args[n_p].unsqueeze(0), s))
        return (out[0], *new)

    # guard against a vacuous pass (analytic and numerical gradients both zero)
    outs = one_step(*leaves, x, *state_leaves)
    probe = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    grads = torch.autograd.grad(probe, leaves)
    for n, g in zip(param_names, grads):
        assert g.abs().sum() > 0, f"step does not depend on {n}"
    assert torch.autograd.gradcheck(one_step, (*leaves, x, *state_leaves), eps=1e-6, atol=1e-6, rtol=1e-4)


CASES: list[tuple[str, Callable[[], EpisodeModel], list[str], bool]] = [
    ("plastic_hebb_bias", lambda: PlasticRNN(4, bias_unit=True), ["w", "alpha", "eta.raw"], True),
    (
        "plastic_oja_shared_linear",
        lambda: PlasticRNN(3, 2, n_hidden=4, rule="oja", alpha="shared", readout="linear"),
        ["w", "alpha", "eta.raw", "in_proj.weight", "readout.weight", "readout.bias"],
        True,
    ),
    ("plastic_clamp", lambda: PlasticRNN(4, clamp=True, rule="oja"), ["w", "alpha", "eta.raw"], False),
    (
        "bpa_simple",
        lambda: Backpropamine(3, 2, n_hidden=4, mode="simple"),
        ["w", "alpha", "modulation.weight", "modulation.bias", "w_in.weight", "readout.weight"],
        True,
    ),
    (
        "bpa_retroactive",
        lambda: Backpropamine(3, 2, n_hidden=4, mode="retroactive"),
        ["w", "alpha", "eta.raw", "modulation.weight", "modulation.bias", "w_in.bias"],
        True,
    ),
    ("bpa_none", lambda: Backpropamine(3, 2, n_hidden=4, mode="none"), ["w", "alpha", "eta.raw"], True),
    ("rnn", lambda: RNN(3, 2, n_hidden=4), ["w_in.weight", "w.weight", "readout.weight"], True),
    ("lstm", lambda: LSTM(3, 2, n_hidden=4), ["cell.weight_hh", "cell.bias_ih", "readout.weight"], True),
    (
        "oneshot",
        lambda: OneShotPlastic(7 * 7, 3, channels=3, n_conv=2),
        ["w", "alpha", "eta.raw", "embed.0.weight", "embed.2.bias"],
        False,
    ),
]


@pytest.mark.parametrize(("name", "make", "params", "wrt_x"), CASES, ids=[c[0] for c in CASES])
def test_step_gradcheck(name: str, make, params: list[str], wrt_x: bool) -> None:
    torch.manual_seed(1)
    model = make()
    # larger plastic coefficients than the default 0.01 so the plastic path carries weight
    with torch.no_grad():
        if isinstance(model, PlasticRNN | Backpropamine | OneShotPlastic):
            model.alpha.normal_(0.0, 0.5)
        if isinstance(model, PlasticRNN | Backpropamine):
            model.w.normal_(0.0, 0.5)
    x = torch.randn(B, model.n_in, generator=torch.Generator().manual_seed(2))
    if isinstance(model, PlasticRNN) and model.clamp:
        x[:, :2] = 0.0
    if isinstance(model, OneShotPlastic):
        x[:, model.img_pixels :] = 0.0
        x[0, model.img_pixels + 1] = 1.0  # element 0 labelled, element 1 a query
    _gradcheck_step(model, params, x, wrt_x=wrt_x)
