"""Registry and a generic suite run over every registered task."""
from __future__ import annotations

import pytest
import torch

from spikeplastic.protocol import RLTask, SupervisedTask
from spikeplastic.tasks import TASKS, make_task
import spikeplastic.tasks as tasks_pkg

# small overrides so that the generic suite stays fast
SMALL = {
    "pattern": {"n_bits": 40},
    "pattern50": {},
    "images": {"patch_size": 8, "present_steps": 2},
    "oneshot": {},
    "oneshot-cpu": {},
    "maze": {"episode_steps": 20},
    "maze13": {"episode_steps": 20},
    "cue": {"episode_steps": 30},
    "maze-cpu": {"episode_steps": 20},
    "maze13-cpu": {"episode_steps": 20},
    "cue-small": {},
    "cue-cpu": {"episode_steps": 30},
    "images-cpu": {"patch_size": 8, "present_steps": 2},
}


def test_registry_ids_and_errors() -> None:
    assert {"pattern", "pattern50", "images", "oneshot", "maze", "cue"} <= set(TASKS)
    assert set(SMALL) == set(TASKS)
    with pytest.raises(ValueError, match="pattern50"):
        make_task("nope")
    with pytest.raises(TypeError, match="n_bitz"):
        make_task("pattern", n_bitz=3)
    t = make_task("pattern", n_bits=10)
    assert t.n_in == 10 and t.name == "pattern"
    assert make_task("pattern50").T == 11 and make_task("maze13").T == 200
    small = make_task("cue-small")
    assert (small.T, small.n_in, small.config.n_cues, small.config.cues_per_trial) == (60, 16, 2, 1)
    for name in tasks_pkg.__all__:
        assert hasattr(tasks_pkg, name), name



def test_each_task_holds_its_training_defaults() -> None:
    """The registry is the one place of each task's outer-loop defaults; meta.config, the CLI and
    compare read them (the values themselves: tests/tasks/test_tasks_presets.py)."""
    from spikeplastic.meta.config import TASK_DEFAULTS, recommended, task_fields
    from spikeplastic.tasks import TrainDefaults

    assert {k: spec.train.as_dict() for k, spec in TASKS.items()} == TASK_DEFAULTS
    assert recommended("cue") == TASK_DEFAULTS["cue"] and recommended("unknown") == {"lr": 3e-4, "batch": 1}
    assert recommended("unknown") == TrainDefaults().as_dict() == recommended("unknown", "rnn")
    assert recommended("pattern50", "rnn")["lr"] == 3e-5 and recommended("pattern50")["lr"] == 3e-4
    assert task_fields("cue-small") == {"clip": 2.0, "entropy_kind": "shannon", "entropy_coef": 0.03, "adam_eps": 1e-6}
    assert task_fields("pattern") == {"clip": None} and task_fields("pattern", "snn-stdp") == {"clip": 10.0}
    assert {k for k, spec in TASKS.items() if spec.data_field} == {"oneshot", "oneshot-cpu", "images"}
    for k, spec in TASKS.items():  # the --data field is a field of the task's config
        if spec.data_field is not None:
            assert hasattr(spec.config, spec.data_field), k


def test_train_defaults_validation() -> None:
    from spikeplastic.tasks import TrainDefaults

    with pytest.raises(TypeError, match=r"models\['rnn'\].*lrr"):
        TrainDefaults(models={"rnn": {"lrr": 1.0}})
    with pytest.raises(TypeError, match="models"):
        TrainDefaults(models=[("rnn", {})])  # type: ignore[arg-type]
    d = TrainDefaults(lr=1e-3, clip=0, models={"rnn": {"clip": 5.0}})
    assert d.as_dict() == {"lr": 1e-3, "batch": 1, "clip": None} and d.as_dict("rnn")["clip"] == 5.0
    with pytest.raises(TypeError):
        d.models["rnn"]["clip"] = 1.0  # type: ignore[index]


@pytest.mark.parametrize("name", sorted(TASKS))
def test_generic_task_contract(name: str, gen) -> None:
    task = make_task(name, **SMALL[name])
    assert task.name == name
    if isinstance(task, SupervisedTask):
        ep = task.sample(3, gen(0))
        assert ep.inputs.shape == (task.T, 3, task.n_in) and ep.inputs.dtype == torch.float32
        assert ep.mask is not None and ep.mask.shape == (task.T, 3)
        again = task.sample(3, gen(0))
        assert torch.equal(ep.inputs, again.inputs) and torch.equal(ep.targets, again.targets)
        out = torch.randn(task.T, 3, task.n_out, requires_grad=True)
        loss = task.loss(out, ep)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        assert out.grad is not None and out.grad[:-1].abs().sum() == 0 and out.grad[-1].abs().sum() > 0
        assert isinstance(task.metric(out, ep), float)
    else:
        assert isinstance(task, RLTask) and task.n_out == task.n_actions + 1
        obs = task.reset(3, gen(0))
        assert obs.shape == (3, task.n_in)
        g = gen(1)
        trace = []
        for _ in range(task.T):
            obs, r = task.step(torch.randint(0, task.n_actions, (3,), generator=g))
            assert obs.shape == (3, task.n_in) and r.shape == (3,)
            trace.append(torch.cat([obs, r[:, None]], 1))
        obs2 = task.reset(3, gen(0))
        g = gen(1)
        for t in range(task.T):
            o, r = task.step(torch.randint(0, task.n_actions, (3,), generator=g))
            assert torch.equal(torch.cat([o, r[:, None]], 1), trace[t])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(TASKS))
def test_same_episode_on_cuda(name: str, gen) -> None:
    task = make_task(name, **SMALL[name])
    if isinstance(task, SupervisedTask):
        a, b = task.sample(2, gen(0)), task.sample(2, gen(0), device="cuda")
        assert b.inputs.device.type == "cuda"
        torch.testing.assert_close(a.inputs, b.inputs.cpu())
        torch.testing.assert_close(a.targets, b.targets.cpu())
    else:
        a = task.reset(2, gen(0))
        b = task.reset(2, gen(0), device="cuda")
        torch.testing.assert_close(a, b.cpu())
        o, r = task.step(torch.zeros(2, dtype=torch.long, device="cuda"))
        assert o.device.type == "cuda" and r.device.type == "cuda"
