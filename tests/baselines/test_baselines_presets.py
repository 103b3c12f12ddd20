"""The controls and sizes of the papers' presets (docs/REPRODUCTION.md) and the model options that
express them: the RNN = the plastic net with plasticity off, the original pattern LSTM (inputs x100,
clamping, output from the first units), parameter-matched maze13 sizes, the originals' inits."""
from __future__ import annotations

import pytest
import torch

from spikeplastic.baselines import LSTM, RNN, Backpropamine, OneShotPlastic, PlasticRNN, count_parameters
from spikeplastic.baselines.lean_rnn import plastic_rnn_forward
from spikeplastic.models import make_model
from spikeplastic.tasks import make_task

#: (task, model) -> (class, hidden units, attributes): the originals' sizes and inits
MODEL_PRESETS = {
    ("pattern50", "rnn"): (PlasticRNN, 2050, dict(plastic=False, bias_unit=True, input_map="first", n_units=2051)),
    ("pattern50", "lstm"): (LSTM, 2000, dict(input_scale=5.0, clamp=True, readout_kind="first")),
    ("pattern50", "rate-hebb"): (PlasticRNN, 50, dict(plastic=True, bias_unit=True, n_units=51)),
    ("pattern", "rnn"): (PlasticRNN, 1000, dict(plastic=False, n_units=1001)),
    ("images", "rnn"): (PlasticRNN, 1024, dict(plastic=False, clamp=True, n_units=1025)),
    ("maze", "rate-oja"): (PlasticRNN, 200, dict(rule="oja", init="uniform")),
    ("maze", "rnn"): (RNN, 200, dict(init="uniform")),
    ("maze13", "backpropamine"): (Backpropamine, 100, dict(mode="retroactive")),
    ("maze13", "backpropamine-simple"): (Backpropamine, 100, dict(mode="simple")),
    ("maze13", "backpropamine-none"): (Backpropamine, 101, dict(mode="none")),
    ("maze13", "rnn"): (RNN, 139, dict(init="uniform")),
    ("maze13", "rate-oja"): (PlasticRNN, 200, dict(init="normal")),
    ("cue", "rnn"): (RNN, 200, dict(init="uniform")),
    ("cue-small", "rnn"): (RNN, 32, dict(init="default")),
    ("maze-cpu", "rnn"): (RNN, 64, dict(init="uniform")),
    ("maze13-cpu", "backpropamine-none"): (Backpropamine, 32, dict(mode="none")),
    ("maze13-cpu", "rnn"): (RNN, 43, dict(init="uniform")),
}


@pytest.mark.parametrize("key", list(MODEL_PRESETS))
def test_model_presets(key: tuple[str, str]) -> None:
    cls, hidden, attrs = MODEL_PRESETS[key]
    torch.manual_seed(0)
    model = make_model(key[1], make_task(key[0], **({"patch_size": 32} if key[0] == "images" else {})))
    assert type(model) is cls and model.n_hidden == hidden
    assert {k: getattr(model, k) for k in attrs} == attrs
    w = model.w.weight if isinstance(model, RNN) else getattr(model, "w", None)
    if attrs.get("init") == "uniform" or cls is Backpropamine:  # 0.01 * U[0, 1): all positive
        assert w is not None and 0.0 <= w.min() and w.max() < 0.01


def test_maze13_sizes_are_parameter_matched() -> None:
    task = make_task("maze13")
    counts = [count_parameters(make_model(m, task)) for m in ("backpropamine", "backpropamine-none", "rnn")]
    assert max(counts) / min(counts) < 1.02, counts  # the original's: 22407, 22731, 22523


def test_oneshot_alpha_all_positive_like_the_original() -> None:
    torch.manual_seed(0)
    assert OneShotPlastic(31 * 31, 5).alpha.min() >= 0.0
    assert OneShotPlastic(31 * 31, 5, alpha_init="normal").alpha.min() < 0.0
    with pytest.raises(ValueError, match="alpha_init"):
        OneShotPlastic(31 * 31, 5, alpha_init="foo")


def test_rnn_uniform_init_and_errors() -> None:
    torch.manual_seed(0)
    w = RNN(3, 2, n_hidden=30, init="uniform", w_init_std=0.5).w.weight
    assert 0.0 <= w.min() and w.max() < 0.5 and w.max() > 0.4
    with pytest.raises(ValueError, match="init"):
        RNN(3, 2, init="foo")


def test_plastic_rnn_without_plasticity_is_the_plastic_net_minus_alpha() -> None:
    torch.manual_seed(0)
    net = PlasticRNN(3, n_hidden=5, bias_unit=True, plastic=False, input_map="first")
    assert net.alpha is None and net.eta is None and count_parameters(net) == 5 * 6
    assert net.lean_unsupported() is not None
    x = torch.randn(4, 2, 3)
    out, state = net(x)
    y = torch.zeros(2, 5)
    for t in range(4):  # y_t = tanh(W [y, 1] + [x_t, 0, 0]), output the first 3 units
        u = torch.cat([y, torch.ones(2, 1)], 1)
        y = torch.tanh(u @ net.w.t() + torch.cat([x[t], torch.zeros(2, 2)], 1))
        torch.testing.assert_close(out[t], y[:, :3])
    assert state.hebb.shape == (2, 0, 0)
    with pytest.raises(ValueError, match="n_in <= n_hidden"):
        PlasticRNN(6, n_hidden=5, input_map="first")
    with pytest.raises(ValueError, match="init"):
        PlasticRNN(3, init="foo")


def test_plastic_rnn_uniform_init_and_first_input_map_on_the_lean_path() -> None:
    torch.manual_seed(0)
    net = PlasticRNN(3, n_hidden=6, bias_unit=True, input_map="first", init="uniform")
    for p in (net.w, net.alpha):
        assert 0.0 <= p.min() and p.max() < 0.01
    x = torch.randn(5, 2, 3)
    net.lean = "off"
    ref, ref_state = net(x)
    lean, lean_state = plastic_rnn_forward(net, x, backend="reference")
    torch.testing.assert_close(lean, ref)
    torch.testing.assert_close(lean_state.hebb, ref_state.hebb)


def _original_clamped_cell(lstm: LSTM) -> torch.nn.LSTMCell:
    """The clamping trick written out as the original applies it: overwrite the cell's parameters."""
    cell = torch.nn.LSTMCell(lstm.n_in, lstm.n_hidden)
    cell.load_state_dict(lstm.cell.state_dict())
    H = lstm.n_hidden
    with torch.no_grad():
        cell.bias_hh.fill_(0.0)
        for i in range(lstm.n_in):
            cell.weight_ih[2 * H + i].fill_(0.0)
            cell.weight_ih[2 * H + i, i] = 10.0
            for gate, value in enumerate((10.0, -1000.0, 0.0, 10.0)):
                cell.bias_ih[gate * H + i] = value
    return cell


def test_lstm_clamping_input_scale_and_first_units_readout() -> None:
    torch.manual_seed(0)
    net = LSTM(3, 2, n_hidden=7, input_scale=5.0, clamp=True, readout="first")
    ref = _original_clamped_cell(net)
    x = torch.randn(4, 2, 3)
    out, state = net(x)
    h = c = torch.zeros(2, 7)
    for t in range(4):
        h, c = ref(5.0 * x[t], (h, c))
        torch.testing.assert_close(out[t], h[:, :2])
    torch.testing.assert_close(state.c, c)
    out[-1].sum().backward()  # the clamped entries are fixed: no gradient reaches them
    assert net.cell.weight_ih.grad[14:17].abs().sum() == 0 and net.cell.weight_ih.grad[17:].abs().sum() > 0
    assert net.cell.bias_ih.grad[[0, 7, 14, 21]].abs().sum() == 0 and not net.cell.bias_hh.requires_grad
    assert count_parameters(net) == count_parameters(LSTM(3, 2, n_hidden=7, readout="first")) - 4 * 7
    plain = LSTM(3, 2, n_hidden=4)
    scaled = LSTM(3, 2, n_hidden=4, input_scale=2.0)
    scaled.load_state_dict(plain.state_dict())
    torch.testing.assert_close(scaled(x)[0], plain(2.0 * x)[0])


@pytest.mark.parametrize("kw, match", [
    (dict(n_hidden=2, clamp=True), "n_hidden >= n_in"),
    (dict(n_hidden=1, readout="first"), "n_hidden >= n_out"),
    (dict(readout="foo"), "readout"),
    (dict(input_scale=0.0), "input_scale"),
])
def test_lstm_option_errors(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LSTM(3, 2, **kw)
