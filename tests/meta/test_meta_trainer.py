"""Trainer: determinism, exact resume, NaN/inf skipping, checkpoints, A2C."""
from __future__ import annotations

import json
import math

import pytest
import torch

from meta_toys import TINY_PATTERN, Bandit, InfGrad, Recall
from spikeplastic.baselines import RNN
from spikeplastic.meta import TrainConfig, Trainer, load_checkpoint, load_ir, read_metrics, train
from spikeplastic.meta.episodes import discounted_returns


def _cfg(**kw) -> TrainConfig:
    d = dict(task="pattern", model="rnn", episodes=4, batch=2, progress=False,
             task_kwargs=TINY_PATTERN, model_kwargs={"n_hidden": 8})
    d.update(kw)
    return TrainConfig(**d)


def _params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_same_seed_same_parameters_different_seed_differs() -> None:
    a = _params(train(_cfg(seed=3)).model)
    b = _params(train(_cfg(seed=3)).model)
    c = _params(train(_cfg(seed=4)).model)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("model,task,tkw,mkw", [
    ("snn-stdp-mod", "pattern", TINY_PATTERN, {}),
    ("rate-hebb", "cue", {"episode_steps": 12}, {"n_hidden": 8}),
])
def test_resume_is_exact(tmp_path, model, task, tkw, mkw) -> None:
    kw = dict(task=task, model=model, task_kwargs=tkw, model_kwargs=mkw, checkpoint_every=3)
    straight = train(_cfg(episodes=6, out=str(tmp_path / "a"), **kw))
    train(_cfg(episodes=3, out=str(tmp_path / "b"), **kw))
    resumed = train(_cfg(episodes=6, out=str(tmp_path / "b"), **kw), resume=True)
    a, b = _params(straight.model), _params(resumed.model)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    strip = lambda rs: [(r["episode"], r["loss"], r["metric"]) for r in rs]  # noqa: E731
    assert strip(read_metrics(tmp_path / "a")) == strip(read_metrics(tmp_path / "b"))
    assert load_checkpoint(tmp_path / "b")["episode"] == 6


def test_resume_rejects_a_different_config(tmp_path) -> None:
    train(_cfg(episodes=2, out=str(tmp_path)))
    with pytest.raises(ValueError, match="lr"):
        train(_cfg(episodes=4, out=str(tmp_path), lr=1e-2), resume=True)
    with pytest.raises(FileNotFoundError):
        train(_cfg(episodes=4, out=str(tmp_path / "none")), resume=True)


def test_nan_loss_is_skipped_and_logged(tmp_path) -> None:
    task = Recall(nan_on_call=2)
    torch.manual_seed(0)
    model = RNN(4, 4, n_hidden=6)
    res = train(_cfg(task="recall", model="rnn", episodes=4, out=str(tmp_path)), task=task, model=model)
    recs = read_metrics(tmp_path)
    assert [r["skipped"] for r in recs] == [False, True, False, False]
    assert math.isnan(recs[1]["loss"])
    assert res.skipped == 1
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
    line = (tmp_path / "metrics.jsonl").read_text().splitlines()[1]
    assert json.loads(line)["loss"] == "nan"  # valid JSON


def test_inf_gradient_is_skipped() -> None:
    model = InfGrad(bad_call=2)
    res = train(_cfg(task="recall", model="inf", episodes=3, lr=0.1), task=Recall(), model=model)
    assert [r["skipped"] for r in res.history] == [False, True, False]
    assert torch.isfinite(model.p).all()


def test_snn_checkpoint_holds_the_network_ir(tmp_path) -> None:
    train(_cfg(model="snn-stdp", episodes=2, out=str(tmp_path), model_kwargs={}))
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {"model_state", "optimizer_state", "rng", "config", "history", "episode"} <= set(ck)
    assert {"torch", "task", "action", "python", "numpy"} <= set(ck["rng"])
    net_ir = load_ir(tmp_path)
    assert [p.name for p in net_ir.projections] == ["in_to_hidden", "hidden_to_hidden"]
    assert net_ir.meta["model"] == "snn-stdp" and net_ir.meta["steps_per_frame"] == 1
    rate = tmp_path / "rate"
    train(_cfg(episodes=1, out=str(rate)))
    with pytest.raises(ValueError, match="no network IR"):
        load_ir(rate)


def test_eval_does_not_disturb_training_streams() -> None:
    a = _params(train(_cfg(episodes=4)).model)
    b = _params(train(_cfg(episodes=4, eval_every=2, eval_batch=2)).model)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_discounted_returns() -> None:
    r = torch.tensor([[1.0], [0.0], [2.0]])
    torch.testing.assert_close(discounted_returns(r, 0.5), torch.tensor([[1.5], [1.0], [2.0]]))


def test_a2c_improves_on_a_bandit() -> None:
    task = Bandit(T=5)
    torch.manual_seed(0)
    model = RNN(3, 3, n_hidden=16)
    cfg = _cfg(task="bandit", model="rnn", episodes=150, batch=16, lr=1e-2, entropy_coef=0.01)
    trainer = Trainer(cfg, task=task, model=model)
    before = trainer.evaluate(64)["metric"]
    trainer.run()
    after = trainer.evaluate(64)["metric"]
    assert before < 3.2           # chance: 2.5 of 5
    assert after > 4.3, (before, after)


def test_config_validation() -> None:
    with pytest.raises(TypeError, match="unexpected keyword|bogus"):
        TrainConfig(task="pattern", model="rnn", bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="bogus"):
        TrainConfig.from_dict({"task": "pattern", "model": "rnn", "bogus": 1})
    with pytest.raises(ValueError, match="episodes"):
        TrainConfig(task="pattern", model="rnn", episodes=0)
    with pytest.raises(ValueError, match="device"):
        TrainConfig(task="pattern", model="rnn", device="tpu")
    with pytest.raises(TypeError):
        TrainConfig("pattern", "rnn")  # type: ignore[misc]  # keyword-only
    cfg = _cfg()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(Exception):
        cfg.lr = 1.0  # type: ignore[misc]  # frozen


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no CUDA GPU"):
        Trainer(_cfg(device="cuda"))
