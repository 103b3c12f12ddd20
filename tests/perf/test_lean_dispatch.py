"""Automatic dispatch to the lean whole-episode ops (``lean="auto" | "on" | "off"``).

A model's whole-sequence ``forward`` (what supervised episodes call) runs ``spikeplastic.lean``
when the model has a lean op, the setting allows it and -- for ``"auto"`` -- gradients are on;
``"off"`` is the per-step loop. Both give the same losses and gradients (float64 to rounding) and
the same training run (float32), and the harness (``TrainConfig.lean``, ``--lean``) passes the
setting through.
"""
from __future__ import annotations

from typing import Any

import pytest
import torch

from spikeplastic import lean
from spikeplastic.baselines import rate_plastic
from spikeplastic.cli import main
from spikeplastic.meta import TrainConfig
from spikeplastic.meta.trainer import Trainer, apply_lean, config_from_checkpoint, train
from spikeplastic.models import make_model
from spikeplastic.tasks import make_task

SMALL_PATTERN = {"n_bits": 16, "n_patterns": 3, "cycles": 2, "present_steps": 3, "gap_steps": 2, "test_steps": 3}


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the calls of the two lean ops the models dispatch to."""
    calls = {"network_forward": 0, "plastic_rnn_forward": 0}
    owner = {"network_forward": lean, "plastic_rnn_forward": rate_plastic}  # where each is looked up
    for name in calls:
        real = getattr(owner[name], name)

        def wrapped(*a: Any, _real: Any = real, _name: str = name, **k: Any) -> Any:
            calls[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(owner[name], name, wrapped)
    return calls


def _setup(model_id: str, task_id: str, task_kw: dict[str, Any] | None = None, *, batch: int = 2,
           dtype: torch.dtype = torch.float64) -> tuple[Any, Any, Any]:
    task = make_task(task_id, **(task_kw or {}))
    torch.manual_seed(0)
    model = make_model(model_id, task).to(dtype)
    ep = task.sample(batch, torch.Generator().manual_seed(3))
    return task, model, ep


CASES = [("snn-stdp", "pattern50", None, "network_forward"),
         ("snn-static", "pattern50", None, "network_forward"),
         ("rate-hebb", "pattern", SMALL_PATTERN, "plastic_rnn_forward")]


# ---- (a) which path runs -----------------------------------------------------------------------
@pytest.mark.parametrize("model_id,task_id,task_kw,op", CASES)
def test_auto_uses_lean_op_with_grad_only(spy: dict[str, int], model_id: str, task_id: str,
                                          task_kw: dict[str, Any] | None, op: str) -> None:
    _, model, ep = _setup(model_id, task_id, task_kw)
    assert model.lean == "auto" and model.lean_unsupported() is None
    model(ep.inputs.double())
    assert spy[op] == 1
    with torch.no_grad():  # evaluation: the step loop
        model(ep.inputs.double())
    assert spy[op] == 1
    model.lean = "off"
    model(ep.inputs.double())
    assert spy[op] == 1
    model.lean = "on"  # "on" also without gradients
    with torch.no_grad():
        model(ep.inputs.double())
    assert spy[op] == 2


@pytest.mark.parametrize("model_id,task_id,task_kw", [("snn-stdp-mod", "pattern50", None),
                                                      ("rate-oja", "pattern", SMALL_PATTERN),
                                                      ("rnn", "pattern", SMALL_PATTERN)])
def test_auto_keeps_step_loop_for_ineligible_models(spy: dict[str, int], model_id: str, task_id: str,
                                                    task_kw: dict[str, Any] | None) -> None:
    _, model, ep = _setup(model_id, task_id, task_kw)
    assert model.lean == "auto" and model.lean_unsupported() is not None
    out, _ = model(ep.inputs.double())
    out.sum().backward()
    assert spy == {"network_forward": 0, "plastic_rnn_forward": 0}


def test_lava_fixed_integer_state_is_not_eligible() -> None:
    task = make_task("pattern50")
    model = make_model("snn-stdp", task, encoder="rate", lava="fixed")
    assert "integer state" in (model.lean_unsupported() or "")


def test_trainer_sets_lean_and_rl_steps(spy: dict[str, int]) -> None:
    cfg = TrainConfig(task="pattern", model="rate-hebb", episodes=1, progress=False, task_kwargs=SMALL_PATTERN)
    assert Trainer(cfg.replace(lean="off")).model.lean == "off"
    tr = Trainer(cfg)
    assert tr.model.lean == "auto"
    tr.step()
    assert spy["plastic_rnn_forward"] == 1
    tr.evaluate()  # no_grad: step loop
    assert spy["plastic_rnn_forward"] == 1
    # RL: A2C steps one observation at a time, never the lean op
    rl = Trainer(TrainConfig(task="maze", model="rate-hebb", episodes=1, batch=2, progress=False,
                             task_kwargs={"episode_steps": 5}, model_kwargs={"n_hidden": 8}))
    rl.step()
    assert spy["plastic_rnn_forward"] == 1


# ---- (b) same losses and gradients ------------------------------------------------------------
@pytest.mark.parametrize("model_id,task_id,task_kw,op", CASES)
def test_auto_matches_off_float64(spy: dict[str, int], model_id: str, task_id: str,
                                  task_kw: dict[str, Any] | None, op: str) -> None:
    task, model, ep = _setup(model_id, task_id, task_kw, batch=3)
    x = ep.inputs.double()
    got = {}
    for mode in ("off", "auto"):
        model.lean = mode
        model.zero_grad(set_to_none=True)
        out, st = model(x)
        loss = task.loss(out, ep)
        loss.backward()
        got[mode] = (out.detach(), loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                   if p.grad is not None}, st)
    assert spy[op] == 1
    (o0, l0, g0, s0), (o1, l1, g1, s1) = got["off"], got["auto"]
    assert o0.shape == o1.shape == (x.shape[0], x.shape[1], model.n_out)
    torch.testing.assert_close(o1, o0, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(l1, l0, rtol=1e-8, atol=0)
    assert set(g0) == set(g1) and g0
    for n in g0:
        torch.testing.assert_close(g1[n], g0[n], rtol=1e-8, atol=1e-10 * float(g0[n].abs().max()), msg=n)
    # the final state (plastic weights, traces, neuron state) too
    leaves0, spec0 = torch.utils._pytree.tree_flatten(s0)
    leaves1, spec1 = torch.utils._pytree.tree_flatten(s1)
    assert spec0 == spec1
    for a, b in zip(leaves0, leaves1):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(b.detach(), a.detach(), rtol=1e-8, atol=1e-12)
        else:
            assert a == b


def test_spiking_multi_step_frames_match() -> None:
    """steps_per_frame = 2 (the non-memory layout) with a linear readout and a given state."""
    task = make_task("pattern", **SMALL_PATTERN)
    torch.manual_seed(0)
    model = make_model("snn-stdp", task, input_map="dense", readout="linear", steps_per_frame=2,
                       n_hidden=12, w_init_std=0.5).double()
    x = task.sample(2, torch.Generator().manual_seed(1)).inputs.double() / 10
    outs = {}
    for mode in ("off", "on"):
        model.lean = mode
        model.zero_grad(set_to_none=True)
        st = model.initial_state(2)
        out, _ = model(x[:5], st)          # then continue from the returned state
        out2, _ = model(x[5:], _)
        (out.square().sum() + out2.square().sum()).backward()
        outs[mode] = (torch.cat([out, out2]).detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None])
    torch.testing.assert_close(outs["on"][0], outs["off"][0], rtol=1e-8, atol=1e-10)
    for a, b in zip(outs["on"][1], outs["off"][1]):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10 * float(b.abs().max()))


# ---- (c) the same training run ----------------------------------------------------------------
@pytest.mark.parametrize("model_id,task_id,task_kw,batch", [("rate-hebb", "pattern", SMALL_PATTERN, 1),
                                                            ("snn-stdp", "pattern50", {}, 2)])
def test_train_auto_matches_off(spy: dict[str, int], model_id: str, task_id: str, task_kw: dict[str, Any],
                                batch: int) -> None:
    losses = {}
    for mode in ("off", "auto"):
        cfg = TrainConfig(task=task_id, model=model_id, episodes=3, batch=batch, lr=3e-3, progress=False,
                          task_kwargs=task_kw, lean=mode)
        res = train(cfg)
        losses[mode] = [r["loss"] for r in res.history if r["phase"] == "train"]
    assert sum(spy.values()) == 3
    assert len(losses["auto"]) == 3
    for a, b in zip(losses["auto"], losses["off"]):
        assert a == pytest.approx(b, rel=1e-5)


# ---- (d) lean="on" without a lean op ----------------------------------------------------------
def test_on_with_ineligible_model_raises() -> None:
    task = make_task("pattern50")
    model = make_model("snn-stdp-mod", task, lean="on")
    with pytest.raises(ValueError, match=r"lean='on'.*neuromodulation"):
        model(task.sample(1, torch.Generator().manual_seed(0)).inputs)
    small = make_task("pattern", **SMALL_PATTERN)
    for mid, why in [("rate-oja", "rule='oja'"), ("backpropamine", "no memory-lean")]:
        m = make_model(mid, small)
        with pytest.raises(ValueError, match=r"lean='on'.*" + why.replace("(", r"\(")):
            m.use_lean("on")
        with pytest.raises(ValueError, match="lean='on'"):
            Trainer(TrainConfig(task="pattern", model=mid, episodes=1, task_kwargs=SMALL_PATTERN, lean="on"))
    with pytest.raises(ValueError, match=r"lean='on'.*RL task"):
        apply_lean(make_model("rate-hebb", make_task("maze")), make_task("maze"), "on")


def test_cli_lean_flag(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["train", "--task", "pattern", "--no-progress", *(f"--task-kw={k}={v}" for k, v in SMALL_PATTERN.items()),
            "--episodes", "1"]
    assert main([*base, "--model", "rate-oja", "--lean", "on", "--out", str(tmp_path / "a")]) == 2
    assert "--lean" in capsys.readouterr().err
    assert main([*base, "--model", "rate-hebb", "--lean", "sometimes"]) == 2
    assert main([*base, "--model", "rate-hebb", "--model-kw", "lean=off"]) == 2
    out = tmp_path / "b"
    assert main([*base, "--model", "rate-hebb", "--lean", "on", "--out", str(out)]) == 0
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert config_from_checkpoint(ck).lean == "on"
    # lean is not a resume field: continue the same run with the step loop
    assert main([*base[:-1], "2", "--model", "rate-hebb", "--lean", "off", "--out", str(out), "--resume"]) == 0


# ---- (e) bad values ---------------------------------------------------------------------------
def test_bad_values_raise() -> None:
    with pytest.raises(ValueError, match="lean must be one of"):
        TrainConfig(task="pattern", model="rate-hebb", lean="fast")
    with pytest.raises(ValueError, match="lean must be one of"):
        TrainConfig(task="pattern", model="rate-hebb", lean=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model_kwargs must not hold 'lean'"):
        TrainConfig(task="pattern", model="rate-hebb", model_kwargs={"lean": "off"})
    task = make_task("pattern", **SMALL_PATTERN)
    with pytest.raises(ValueError, match="lean must be one of"):
        make_model("rate-hebb", task, lean="yes")
    with pytest.raises(ValueError, match="lean must be one of"):
        make_model("snn-stdp", task, lean=None)
    m = make_model("rnn", task)
    with pytest.raises(ValueError, match="lean must be one of"):
        m.lean = "always"
    assert m.lean == "auto"


def test_config_round_trip() -> None:
    cfg = TrainConfig(task="pattern", model="rate-hebb", lean="off")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["lean"]  # a checkpoint written before the field existed
    assert TrainConfig.from_dict(old).lean == "auto"
