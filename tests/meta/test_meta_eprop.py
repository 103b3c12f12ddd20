"""e-prop as the outer loop (``outer="eprop"``): equal to BPTT where e-prop is exact (no recurrence, rule
inputs and reset detached on the BPTT side, float64), close to it with recurrence, state independent of
the episode length, the trainer and CLI (checkpoint, exact resume) and the errors for what it does not support."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from meta_toys import TINY_PATTERN
from spikeplastic.cli import main
from spikeplastic.meta import TrainConfig, Trainer, read_metrics, train
from spikeplastic.meta.eprop import EPROP_MODELS, check_eprop, eprop_gradients, eprop_run
from spikeplastic.models import SpikingModel, make_model
from spikeplastic.network import Network
from spikeplastic.neurons import LIF
from spikeplastic.plastic import PlasticLinear
from spikeplastic.protocol import Episode
from spikeplastic.rules import STDP
from spikeplastic.tasks import make_task

#: every meta-parameter of the feed-forward plastic layer, and the readout's
FF_PARAMS = ["network.projs.in_to_hidden." + k for k in ("weight.raw", "alpha.raw", "decay.raw", "rule.a_plus.raw",
                                                         "rule.a_minus.raw", "rule.tau_plus.raw", "rule.tau_minus.raw")]
FF_PARAMS += ["network.pops.hidden.bias.raw", "readout.weight", "readout.bias"]


def _feedforward(reset: str, seed: int = 0) -> SpikingModel:
    """A SpikingModel whose only projection is a plastic in -> hidden one (pair STDP, per-synapse alpha,
    learnable decay, rule inputs detached): no recurrence. float64, CUBA LIF with memory in u and v."""
    torch.manual_seed(seed)
    n_in, n = 6, 5
    m = SpikingModel(n_in, 3, n_hidden=n, input_map="dense", readout="linear", output="tanh", lava="none",
                     lean="off", steps_per_frame=2)
    lif = LIF(n, du=0.7, dv=0.3, vth=1.0, learn_bias=True, reset=reset)
    proj = PlasticLinear(n_in, n, rule=STDP(0.3, 0.2, 3.0, 4.0), alpha="per_synapse",
                         alpha_init=torch.rand(n, n_in), decay=0.05, learn_decay=True, weight=torch.randn(n, n_in),
                         rule_input_grad=False)
    m.network = Network(n_in, {"hidden": lif}, [("in", "hidden", proj)], input_kind="current")
    return m.double()


def _bptt(model: torch.nn.Module, x: torch.Tensor, loss: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    out, _ = model(x)
    loss(out).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return out.detach(), grads


def _cos(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    va = torch.cat([a[k].flatten() for k in sorted(a)])
    vb = torch.cat([b[k].flatten() for k in sorted(a)])
    return float(va @ vb / (va.norm() * vb.norm()))


# ---- exact where e-prop is exact -----------------------------------------------------------------------
@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("signal", ["every_step", "final_output"])
def test_feedforward_equals_bptt(reset: str, signal: str) -> None:
    """No recurrence + rule inputs and reset detached: e-prop's gradient is BPTT's for every meta-parameter
    (w, alpha, A+-, tau+-, decay, the LIF bias, the readout), to 1e-10 relative, in float64; the outputs are
    the model's forward outputs bit for bit."""
    model = _feedforward(reset)
    g = torch.Generator().manual_seed(1)
    T, B = 20, 4
    x = torch.randn(T, B, 6, generator=g, dtype=torch.float64) * 1.5
    c = torch.randn(T, B, 3, generator=g, dtype=torch.float64)
    if signal == "every_step":  # a loss of every output: the learning signal is online at every frame
        out_b, gb = _bptt(model, x, lambda y: (y * c).sum())
        out_e, ge = eprop_run(model, x, lambda t, y: c[t])
    else:
        out_b, gb = _bptt(model, x, lambda y: ((y[-1] - c[-1]) ** 2).sum())
        out_e, loss, ge = eprop_gradients(model, x, lambda y: ((y[-1] - c[-1]) ** 2).sum())
        torch.testing.assert_close(loss, ((out_b[-1] - c[-1]) ** 2).sum(), rtol=0, atol=0)
    assert torch.equal(out_e, out_b)
    with torch.no_grad():  # the layer spikes (and not always): the surrogate paths are exercised
        rate = float(model.network(model.encode(x))[0].spikes["hidden"].mean())
    assert 0.05 < rate < 0.95, rate
    assert sorted(ge) == sorted(FF_PARAMS) == sorted(gb)
    for k in FF_PARAMS:
        nb = float(gb[k].norm())
        assert nb > 1e-6, (k, nb)  # every meta-parameter gets a non-zero gradient
        rel = float((ge[k] - gb[k]).norm()) / nb
        assert rel < 1e-10, (k, rel, nb)


def test_detached_rule_inputs_are_what_eprop_computes() -> None:
    """With the rule reading differentiable spikes (rule_input_grad=True) BPTT differs from e-prop even
    without recurrence: the equality above is not vacuous."""
    model = _feedforward("zero")
    x = torch.randn(20, 4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 1.5
    _, ge = eprop_run(model, x, lambda t, y: torch.ones_like(y))
    model.network.projs["in_to_hidden"].rule_input_grad = True
    _, gb = _bptt(model, x, lambda y: y.sum())
    k = "network.projs.in_to_hidden.rule.a_plus.raw"
    assert float((ge[k] - gb[k]).norm()) > 1e-6 * float(gb[k].norm())


# ---- with recurrence: an approximation ---------------------------------------------------------------------
def test_recurrent_snn_stdp_close_to_bptt() -> None:
    """``snn-stdp`` on ``pattern50`` (plastic recurrent layer): e-prop ignores the spike -> recurrent current
    -> spike paths, so it is not BPTT's gradient, but points the same way. Measured cosines (float64,
    batch 8, seeds 0-2): 0.975, 0.983, 0.962."""
    task = make_task("pattern50")
    coss = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = make_model("snn-stdp", task, lean="off").double()
        ep = task.sample(8, torch.Generator().manual_seed(seed + 10))
        ep = Episode(ep.inputs.double(), ep.targets.double(), ep.mask, ep.info)
        out_b, gb = _bptt(model, ep.inputs, lambda y: task.loss(y, ep))
        out_e, _, ge = eprop_gradients(model, ep.inputs, lambda y: task.loss(y, ep))
        assert torch.equal(out_e, out_b)
        assert sorted(ge) == sorted(gb)
        coss.append(_cos(ge, gb))
        w = "network.projs.hidden_to_hidden.weight.raw"
        assert float((ge[w] - gb[w]).norm()) > 1e-3 * float(gb[w].norm())  # not equal
    print("e-prop vs BPTT cosine on pattern50 snn-stdp:", coss)
    assert min(coss) > 0.95, coss


# ---- memory -------------------------------------------------------------------------------------------------
def test_state_size_independent_of_episode_length() -> None:
    """The bytes held between steps (eligibility traces, accumulated gradients, network state) are the same
    at T = 100 and T = 1000, and constant over the episode."""
    sizes = {}
    for gap in (45, 495):  # T = 2 * (3 + gap) + 3 = 99, 999
        task = make_task("pattern50", gap_steps=gap)
        torch.manual_seed(0)
        model = make_model("snn-stdp", task)
        ep = task.sample(2, torch.Generator().manual_seed(0))
        seen: list[int] = []
        eprop_run(model, ep.inputs, lambda t, y: torch.ones_like(y) if t == task.T - 1 else None, state_bytes=seen)
        assert len(seen) == task.T and len(set(seen)) == 1
        sizes[task.T] = seen[-1]
    assert sizes[99] == sizes[999] > 0, sizes


# ---- trainer and CLI ----------------------------------------------------------------------------------------
def _cfg(**kw: Any) -> TrainConfig:
    d = dict(task="pattern", model="snn-stdp", episodes=3, batch=2, progress=False, task_kwargs=TINY_PATTERN,
             outer="eprop", lr=0.01)
    d.update(kw)
    return TrainConfig(**d)


def test_trainer_trains_and_resumes_exactly(tmp_path) -> None:
    straight = train(_cfg(episodes=4, out=str(tmp_path / "a"), checkpoint_every=2))
    train(_cfg(episodes=2, out=str(tmp_path / "b"), checkpoint_every=2))
    resumed = train(_cfg(episodes=4, out=str(tmp_path / "b"), checkpoint_every=2), resume=True)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    recs = read_metrics(tmp_path / "a")
    assert [r["loss"] for r in recs] == [r["loss"] for r in read_metrics(tmp_path / "b")]
    assert all(r["outer"] == "eprop" and r["grad_norm"] > 0 and not r["skipped"] for r in recs)
    init = Trainer(_cfg()).model
    moved = {k for k, v in straight.model.state_dict().items() if not torch.equal(v, init.state_dict()[k])}
    assert any(".rule." in k for k in moved) and any("hidden_to_hidden.weight" in k for k in moved), moved


def test_cli_train_and_resume(tmp_path, capsys) -> None:
    out = str(tmp_path / "run")
    base = ["train", "--task", "pattern50", "--model", "snn-stdp", "--outer", "eprop", "--out", out, "--no-progress"]
    assert main(base + ["--episodes", "3"]) == 0
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert main(base + ["--episodes", "5", "--resume"]) == 0
    recs = [r for r in read_metrics(out) if r["phase"] == "train"]
    assert [r["episode"] for r in recs] == [1, 2, 3, 4, 5] and all(r["outer"] == "eprop" for r in recs)


@pytest.mark.parametrize("model", ["rate-hebb", "snn-stdp-mod", "snn-np"])
def test_unsupported_model_is_refused_before_training(tmp_path, model: str) -> None:
    out = tmp_path / "x"
    with pytest.raises(ValueError, match=r"outer='eprop' supports the models \['snn-stdp'"):
        Trainer(_cfg(model=model, out=str(out)))
    assert not out.exists() or not any(out.iterdir())


def test_cli_unsupported_model_and_rl_task(capsys) -> None:
    assert main(["train", "--task", "pattern50", "--model", "rate-hebb", "--outer", "eprop", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "--outer" in err and "outer='eprop' supports the models" in err and "rate-hebb" in err
    with pytest.raises(ValueError, match="outer='eprop' trains supervised tasks only"):
        check_eprop(make_model("snn-stdp", make_task("cue-small")), make_task("cue-small"), "snn-stdp")


def test_supported_models_and_config() -> None:
    task = make_task("pattern", **TINY_PATTERN)
    for m in EPROP_MODELS:
        check_eprop(make_model(m, task), task, m)
    with pytest.raises(ValueError, match="lava='fixed'"):
        check_eprop(make_model("snn-stdp", task, lava="fixed", encoder="rate"), task, "snn-stdp")
    with pytest.raises(ValueError, match="outer: expected one of .*'eprop'"):
        _cfg(outer="eprob")
    assert TrainConfig.from_dict(_cfg().to_dict()).outer == "eprop"


def test_loss_of_earlier_outputs_is_refused() -> None:
    model = _feedforward("zero")
    x = torch.zeros(3, 2, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="depends on outputs before the last one"):
        eprop_gradients(model, x, lambda y: y.sum())


@pytest.mark.parametrize("model", EPROP_MODELS)
def test_every_supported_model_trains(model: str) -> None:
    """Each model of EPROP_MODELS takes e-prop steps with finite, non-zero gradients (snn-static: no plasticity,
    static recurrent weights, readout and bias)."""
    res = train(_cfg(model=model, episodes=2))
    assert all(r["outer"] == "eprop" and 0 < r["grad_norm"] < float("inf") and not r["skipped"] for r in res.history)
