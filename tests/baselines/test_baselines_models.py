"""Generic suite run over every baseline configuration in ``baselines_cases.CASES``."""
from __future__ import annotations

import pytest
import torch

from baselines_cases import CASE_IDS, CASES, Case
from spikeplastic.baselines import (
    LSTM,
    RNN,
    Backpropamine,
    OneShotPlastic,
    PlasticRNN,
    count_parameters,
)
from spikeplastic.protocol import EpisodeModel

PLASTIC = [c for c in CASES if c.plastic]
PLASTIC_IDS = [c.name for c in PLASTIC]


def _inputs(model: EpisodeModel, T: int, B: int, gen: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    x = torch.randn(T, B, model.n_in, generator=gen, dtype=dtype)
    if isinstance(model, OneShotPlastic):
        # one-hot labels on all but the last step, zero label on the query
        x[:, :, model.img_pixels :] = 0.0
        for t in range(T - 1):
            x[t, :, model.img_pixels + t % model.n_way] = 1.0
    if isinstance(model, PlasticRNN) and model.clamp:
        x[..., ::2] = 0.0  # half the units unclamped
    return x


def _plastic_trace(state) -> torch.Tensor:
    return state.hebb


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_shapes_and_episode(case: Case) -> None:
    torch.manual_seed(0)
    model = case.make()
    assert isinstance(model, EpisodeModel)
    gen = torch.Generator().manual_seed(1)
    T, B = 7, 3
    x = _inputs(model, T, B, gen)
    out, state = model(x)
    assert out.shape == (T, B, model.n_out)
    assert torch.isfinite(out).all()
    # stepping by hand gives the same thing as forward
    s = model.initial_state(B)
    for t in range(T):
        y, s = model.step(x[t], s)
        assert y.shape == (B, model.n_out)
        torch.testing.assert_close(y, out[t])
    assert type(s) is type(state)
    for a, b in zip(s, state):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_parameters_untouched_and_state_is_new(case: Case) -> None:
    """Running an episode never writes learned quantities into parameters or the given state."""
    torch.manual_seed(0)
    model = case.make()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s0 = model.initial_state(2)
    s0_copy = [t.clone() for t in s0]
    x = _inputs(model, 5, 2, torch.Generator().manual_seed(2))
    model(x, s0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    for a, b in zip(s0, s0_copy):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("case", PLASTIC, ids=PLASTIC_IDS)
def test_plastic_state_is_per_batch_element(case: Case) -> None:
    torch.manual_seed(0)
    model = case.make()
    gen = torch.Generator().manual_seed(3)
    x = _inputs(model, 6, 3, gen)
    x[:, 1] = x[:, 0]  # elements 0 and 1 identical, element 2 different
    if isinstance(model, OneShotPlastic):
        x[:, 2, : model.img_pixels] = torch.randn(6, model.img_pixels, generator=gen)
    elif isinstance(model, PlasticRNN) and model.clamp:
        x[:, 2, 1::2] = torch.randn(6, x.shape[-1] // 2, generator=gen)
    else:
        x[:, 2] = torch.randn(6, model.n_in, generator=gen)
    _, state = model(x)
    H = _plastic_trace(state)
    assert H.shape[0] == 3 and H.dim() == 3
    assert H.abs().sum() > 0
    torch.testing.assert_close(H[0], H[1])
    assert not torch.allclose(H[0], H[2])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_follows_dtype_and_device(case: Case) -> None:
    model = case.make().to(torch.float64)
    state = model.initial_state(2)
    assert all(t.dtype == torch.float64 for t in state)
    x = _inputs(model, 3, 2, torch.Generator().manual_seed(4), dtype=torch.float64)
    out, state = model(x)
    assert out.dtype == torch.float64
    assert all(t.dtype == torch.float64 for t in state)
    meta = case.make().to("meta")
    assert all(t.device.type == "meta" for t in meta.initial_state(2))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bptt_50_steps_reaches_every_parameter(case: Case) -> None:
    torch.manual_seed(0)
    model = case.make()
    x = _inputs(model, 50, 2, torch.Generator().manual_seed(5))
    out, _ = model(x)
    loss = (out[-1] ** 2).sum() + out[-1].sum()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_alpha_shapes() -> None:
    assert PlasticRNN(6, bias_unit=True).alpha.shape == (6, 7)
    assert PlasticRNN(6, alpha="shared").alpha.shape == ()
    assert Backpropamine(4, 3, n_hidden=5).alpha.shape == (5, 5)
    assert Backpropamine(4, 3, n_hidden=5, alpha="shared").alpha.shape == ()
    assert OneShotPlastic(31 * 31, 5).alpha.shape == (5, 64)
    assert OneShotPlastic(31 * 31, 5, alpha="shared").alpha.shape == ()
    net = PlasticRNN(6, alpha="shared")
    assert count_parameters(net) == 6 * 6 + 1 + 1


def test_eta_constrained_and_learnable_flag() -> None:
    net = PlasticRNN(4)
    torch.testing.assert_close(net.eta(), torch.tensor(0.01))
    assert any(n == "eta.raw" for n, _ in net.named_parameters())
    fixed = PlasticRNN(4, learn_eta=False, eta_init=0.2)
    assert all(n != "eta.raw" for n, _ in fixed.named_parameters())
    torch.testing.assert_close(fixed.eta(), torch.tensor(0.2))
    with torch.no_grad():
        net.eta.raw.fill_(50.0)
    assert 0.0 < net.eta().item() <= 1.0
    # only the modes that use them own eta / the modulator
    assert Backpropamine(3, 2, n_hidden=4, mode="simple").eta is None
    assert Backpropamine(3, 2, n_hidden=4, mode="none").modulation is None


def test_backpropamine_init_uniform_like_the_original_or_normal() -> None:
    torch.manual_seed(0)
    net = Backpropamine(4, 3, n_hidden=40)  # default: 0.01 * U[0, 1) as in sr/modul.py
    assert net.init == "uniform"
    for p in (net.w, net.alpha):
        assert p.min() >= 0.0 and p.max() < 0.01
        assert abs(p.mean().item() - 0.005) < 0.0005  # 1600 draws: std of the mean ~7e-5
    wide = Backpropamine(4, 3, n_hidden=40, w_init_std=2.0, alpha_init_std=3.0, alpha="shared")
    assert 0.0 <= wide.w.min() and wide.w.max() < 2.0 and wide.w.max() > 1.5
    assert 0.0 <= wide.alpha.item() < 3.0
    normal = Backpropamine(4, 3, n_hidden=40, init="normal")
    for p in (normal.w, normal.alpha):
        assert p.min() < 0.0 < p.max()
        assert abs(p.std().item() - 0.01) < 0.001
    assert "init='normal'" in repr(normal)


def test_standard_parameter_counts() -> None:
    # pattern task: 1000 inputs + bias unit -> W, alpha [1000, 1001], eta
    assert count_parameters(PlasticRNN(1000, bias_unit=True)) == 2 * 1000 * 1001 + 1
    n_in, n_act, h = 26, 2, 200
    bpa = Backpropamine(n_in, n_act + 1, n_hidden=h, mode="retroactive")
    expected = 2 * h * h + (n_in + 1) * h + (h + 1) * (n_act + 1) + (h + 1) + 1
    assert count_parameters(bpa) == expected
    assert count_parameters(RNN(n_in, 3, n_hidden=h)) == (n_in + 1) * h + h * h + (h + 1) * 3
    assert count_parameters(LSTM(n_in, 3, n_hidden=h)) == 4 * h * (n_in + h + 2) + (h + 1) * 3


@pytest.mark.parametrize(
    ("make", "arg", "options"),
    [
        (lambda: PlasticRNN(4, rule="foo"), "rule", "hebb"),
        (lambda: PlasticRNN(4, alpha="foo"), "alpha", "per_synapse"),
        (lambda: PlasticRNN(4, readout="foo"), "readout", "identity"),
        (lambda: PlasticRNN(4, input_map="foo"), "input_map", "linear"),
        (lambda: Backpropamine(4, 2, mode="foo"), "mode", "retroactive"),
        (lambda: Backpropamine(4, 2, alpha="foo"), "alpha", "shared"),
        (lambda: Backpropamine(4, 2, init="foo"), "init", "uniform"),
        (lambda: OneShotPlastic(49, 3, alpha="foo", n_conv=2), "alpha", "per_synapse"),
    ],
)
def test_bad_names_raise_value_error(make, arg: str, options: str) -> None:
    with pytest.raises(ValueError, match=arg) as info:
        make()
    assert options in str(info.value) and "foo" in str(info.value)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="perfect square"):
        OneShotPlastic(50, 5)
    with pytest.raises(ValueError, match="too small"):
        OneShotPlastic(8 * 8, 5)
    with pytest.raises(ValueError, match="n_out is required"):
        PlasticRNN(4, readout="linear")
    with pytest.raises(ValueError, match="n_out must be <="):
        PlasticRNN(4, 5)
    with pytest.raises(ValueError, match="input_map='identity'"):
        PlasticRNN(4, n_hidden=5, input_map="identity")
    with pytest.raises(ValueError, match="clamp"):
        PlasticRNN(4, n_hidden=5, clamp=True)
    with pytest.raises(ValueError, match="eta_init"):
        PlasticRNN(4, eta_init=1.5)
    with pytest.raises(TypeError, match="n_in"):
        PlasticRNN(4.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clip"):
        Backpropamine(4, 2, clip=0.0)
    with pytest.raises(TypeError, match="model"):
        count_parameters("net")  # type: ignore[arg-type]
    net = PlasticRNN(4)
    with pytest.raises(ValueError, match="x must have last dimension 4"):
        net.step(torch.zeros(2, 5), net.initial_state(2))
