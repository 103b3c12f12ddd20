"""Every model x task pair of the registry trains with finite, bounded gradients (issue: the
flagship spiking model's BPTT exploded on long episodes).

CI size: batch 2 and the tasks' own widths reduced where they are large, but episodes kept long
(``images``: T = 201 spiking steps, the RL tasks 60-100 steps x 2 spiking steps), because the
explosion grows with episode length. Measured on this code (3 outer steps, gradient norm before
clipping): every pair stays below 6e2 (largest: ``rnn`` on ``pattern50``, ~5.7e2; ``snn-stdp`` at most
~20). With the old gradient (``rule_input_grad=True``) ``snn-stdp`` on ``images`` here gives
``inf`` at the first step (:func:`test_bound_catches_the_old_explosion`).
"""
from __future__ import annotations

import math

import pytest
import torch

from spikeplastic.meta.config import TrainConfig, recommended
from spikeplastic.meta.trainer import Trainer
from spikeplastic.models import MODELS
from spikeplastic.tasks import TASKS, make_task

#: gradient-norm bound (before clipping) for every pair, at initialisation and after a few steps
BOUND = 1e4
STEPS = 3
CI_TASKS = {
    "pattern": {"n_bits": 40},
    "pattern50": {},
    "images": {"patch_size": 8},          # 64 pixels, the full 201-step episode
    "oneshot": {"image_size": 12},     # short episodes anyway (6 steps); 144 pixels
    "oneshot-cpu": {"image_size": 12},
    "maze": {"episode_steps": 100},
    "maze13": {"episode_steps": 100},
    "cue": {"episode_steps": 60},
    "cue-small": {},
    # CPU reductions: their parents' rules with smaller nets; long episodes are covered by the parents
    "maze-cpu": {"episode_steps": 30},
    "maze13-cpu": {"episode_steps": 30},
    "cue-cpu": {"episode_steps": 30},
    "images-cpu": {"patch_size": 8, "present_steps": 4},
}


def _trainer(task: str, model: str, **model_kwargs: object) -> Trainer:
    rec = recommended(task)
    rec.pop("lr", None)
    rec["batch"] = 2
    cfg = TrainConfig(task=task, model=model, episodes=STEPS, seed=0, task_kwargs=CI_TASKS[task],
                      model_kwargs=model_kwargs, progress=False, **rec)  # type: ignore[arg-type]
    return Trainer(cfg)


def test_ci_tasks_cover_the_registry() -> None:
    assert set(CI_TASKS) == set(TASKS)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("task", list(CI_TASKS))
def test_gradient_norm_finite_and_bounded(task: str, model: str) -> None:
    torch.manual_seed(0)
    if not MODELS[model].supports(make_task(task, **CI_TASKS[task])):
        pytest.skip(f"{model} is built for {sorted(MODELS[model].families or ())} tasks only")
    tr = _trainer(task, model)
    recs = [tr.step() for _ in range(STEPS)]
    norms = [r["grad_norm"] for r in recs]
    assert not any(r["skipped"] for r in recs), norms
    assert all(math.isfinite(n) and 0.0 < n < BOUND for n in norms), f"{task} x {model}: {norms}"


def test_bound_catches_the_old_explosion() -> None:
    """The test above can fail: the exact surrogate gradient through the STDP update explodes here."""
    tr = _trainer("images", "snn-stdp", rule_input_grad=True)
    norm = tr.step()["grad_norm"]
    assert not (math.isfinite(norm) and norm < BOUND), norm


@pytest.mark.parametrize("task", ["images", "cue"])
def test_generic_initialisation_is_bounded_too(task: str) -> None:
    tr = _trainer(task, "snn-stdp", init="generic")
    recs = [tr.step() for _ in range(2)]
    norms = [r["grad_norm"] for r in recs]
    assert not any(r["skipped"] for r in recs) and all(math.isfinite(n) and 0.0 < n < BOUND for n in norms), norms
