"""The model registry builds every model id for every task id, and one step runs."""
from __future__ import annotations

import pytest
import torch

from spikeplastic import Network
from spikeplastic.protocol import RLTask
from spikeplastic.models import MODELS, SpikingModel, count_parameters, make_model
from spikeplastic.tasks import TASKS, make_task

_TASKS: dict[str, object] = {}


def _task(tid: str):
    if tid not in _TASKS:
        _TASKS[tid] = make_task(tid)
    return _TASKS[tid]


@pytest.mark.parametrize("tid", list(TASKS))
@pytest.mark.parametrize("mid", list(MODELS))
def test_every_model_on_every_task(mid: str, tid: str) -> None:
    task = _task(tid)
    torch.manual_seed(0)
    if not MODELS[mid].supports(task):
        with pytest.raises(ValueError, match=f"model '{mid}' is built for"):
            make_model(mid, task)
        return
    model = make_model(mid, task)
    assert count_parameters(model) > 0
    g = torch.Generator().manual_seed(0)
    x = task.reset(2, g) if isinstance(task, RLTask) else task.sample(2, g).inputs[0]
    with torch.no_grad():
        out, state = model.step(x, model.initial_state(2))
    n_out = task.n_actions + 1 if isinstance(task, RLTask) else task.n_out
    assert out.shape == (2, n_out)
    assert torch.isfinite(out).all()
    if mid.startswith("snn") and mid != "snn-oneshot":
        assert isinstance(model, SpikingModel) and isinstance(model.network, Network)


def test_rl_sizes_and_cue_eta() -> None:
    # 200 hidden units on the papers' RL tasks, 32 on the reduced cue task; backpropamine's eta
    # starts at 0.1 on the cue tasks (the original runs) and at the class default elsewhere
    assert make_model("rnn", _task("cue")).n_hidden == 200
    for mid in ("rnn", "lstm", "backpropamine", "backpropamine-none", "rate-hebb"):
        assert make_model(mid, _task("cue-small")).n_hidden == 32, mid
    assert make_model("snn-stdp-mod", _task("cue-small")).n_hidden == 32
    for tid in ("cue", "cue-small"):
        assert make_model("backpropamine", _task(tid)).eta().item() == pytest.approx(0.1)
        assert make_model("backpropamine-none", _task(tid)).eta().item() == pytest.approx(0.1)
    assert make_model("backpropamine", _task("maze")).eta().item() == pytest.approx(0.01)
    assert make_model("backpropamine", _task("cue"), eta_init=0.3).eta().item() == pytest.approx(0.3)


def test_unknown_model_lists_ids() -> None:
    with pytest.raises(ValueError, match="valid ids.*snn-stdp"):
        make_model("snn-foo", _task("pattern50"))


def test_bad_override_names_the_model() -> None:
    with pytest.raises(TypeError, match="rnn"):
        make_model("rnn", _task("pattern50"), bogus=1)


def test_spiking_model_options() -> None:
    task = _task("pattern50")
    for enc in ("rate", "latency"):
        m = make_model("snn-stdp", task, encoder=enc, steps_per_frame=2)
        out, _ = m(task.sample(1, torch.Generator().manual_seed(0)).inputs)
        assert out.shape == (11, 1, 50)
    with pytest.raises(ValueError, match="one_to_one"):
        SpikingModel(4, 4, n_hidden=5, input_map="one_to_one")
    with pytest.raises(ValueError, match="encoder"):
        SpikingModel(4, 4, encoder="morse")


@pytest.mark.parametrize("mid,keys", [
    ("snn-stdp", ("alpha.raw", "a_plus.raw", "tau_minus.raw", "decay.raw", "readout_gain")),
    ("snn-stdp-mod", ("alpha.raw", "a_minus.raw", "tau_plus.raw", "modulation.weight", "eta_e.raw")),
])
def test_snn_gradients_reach_plasticity_parameters(mid: str, keys: tuple[str, ...]) -> None:
    task = _task("pattern50")
    torch.manual_seed(0)
    m = make_model(mid, task)
    ep = task.sample(2, torch.Generator().manual_seed(0))
    out, _ = m(ep.inputs)
    task.loss(out, ep).backward()
    named = dict(m.named_parameters())
    for key in keys:
        hits = [n for n in named if key in n]
        assert hits, key
        assert any(named[n].grad is not None and named[n].grad.abs().sum() > 0 for n in hits), key


def test_rate_hebb_shared_has_one_alpha_and_otherwise_is_rate_hebb() -> None:
    # the images task's shared-alpha control: one alpha for every synapse, everything else as rate-hebb
    task = make_task("images", patch_size=4)
    torch.manual_seed(0)
    per = make_model("rate-hebb", task)
    torch.manual_seed(0)
    shared = make_model("rate-hebb-shared", task)
    assert per.alpha.shape == per.w.shape and shared.alpha.dim() == 0
    assert count_parameters(per) - count_parameters(shared) == per.w.numel() - 1
    assert shared.w.shape == per.w.shape and shared.clamp and shared.bias_unit
    # with the per-synapse alpha set to the shared value everywhere, both give the same episode
    with torch.no_grad():
        per.alpha.fill_(float(shared.alpha))
        per.w.copy_(shared.w)
    x = task.sample(2, torch.Generator().manual_seed(1)).inputs
    out_p, _ = per(x)
    out_s, _ = shared(x)
    torch.testing.assert_close(out_p, out_s, rtol=1e-5, atol=1e-6)
    assert out_s.abs().sum() > 0
    assert make_model("rate-hebb-shared", task, alpha="per_synapse").alpha.shape == per.w.shape
