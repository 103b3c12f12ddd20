"""Each paper id carries the original code's settings (docs/REPRODUCTION.md, with sources): the
registry is compared with the tables below, so that a silent change of a preset fails here. CPU
reductions are separate ids, each listed in docs/REPRODUCTION.md."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from spikeplastic.meta.config import recommended
from spikeplastic.tasks import TASKS

DOC = Path(__file__).resolve().parents[2] / "docs" / "REPRODUCTION.md"

#: training settings per paper id as TrainConfig takes them (clip None: no clipping), from the
#: original code: DP = uber-research/differentiable-plasticity, BPA = uber-research/backpropamine
PAPER_TRAIN = {
    "pattern": {"lr": 3e-4, "batch": 1, "clip": None},                            # DP simple/simple.py:44
    "pattern50": {"lr": 3e-4, "batch": 1, "clip": None},                          # DP simple/README.md:15
    "images": {"lr": 1e-4, "batch": 1, "clip": None},                             # DP images/images.py:67
    "oneshot": {"lr": 3e-5, "batch": 1, "clip": None, "lr_decay": 0.666,          # DP omniglot/README.md:10
                "lr_decay_every": 1_000_000},
    "maze": {"lr": 1e-4, "batch": 1, "clip": None, "entropy_kind": "simpson",     # DP maze/maze.py:253,495-507
             "entropy_coef": 0.1, "value_coef": 0.03, "adam_eps": 1e-4},
    "maze13": {"lr": 1e-4, "batch": 30, "clip": 4.0, "entropy_kind": "simpson",   # BPA maze/README.md:34
               "entropy_coef": 0.03, "value_coef": 0.1, "adam_eps": 1e-4},
    "cue": {"lr": 1e-4, "batch": 30, "clip": 2.0, "entropy_kind": "simpson",      # BPA sr/README.md:24
            "entropy_coef": 0.1, "value_coef": 0.1, "adam_eps": 1e-6},
}

#: model-specific training settings: the pattern50 controls (DP simple/README.md:14,16) and our
#: spiking models, which keep clip 10 where the paper's preset clips none
PER_MODEL = {
    ("pattern50", "rnn"): {"lr": 3e-5},
    ("pattern50", "lstm"): {"lr": 3e-5},
    ("oneshot-cpu", "snn-oneshot"): {"lr": 3e-4, "lr_decay_every": 8000},
    **{(t, m): {"clip": 10.0} for t in ("pattern", "pattern50", "images", "images-cpu", "oneshot", "oneshot-cpu", "maze", "maze-cpu")
       for m in ("snn-stdp", "snn-stdp-mod", "snn-static", "snn-np")},
}

#: task-config values per paper id
PAPER_CONFIG = {
    "pattern": dict(n_bits=1000, n_patterns=5, cycles=2, present_steps=6, gap_steps=4, test_steps=6,
                    degrade_fraction=0.5, input_scale=20.0),
    "pattern50": dict(n_bits=50, n_patterns=2, cycles=1, present_steps=3, gap_steps=1, test_steps=3,
                      degrade_fraction=0.5, input_scale=20.0),
    "images": dict(n_images=3, repeats=3, present_steps=20, gap_steps=2, test_steps=3, patch_size=32),
    "oneshot": dict(n_way=5, k_shot=1, image_size=31, rotate=True, loss="bce"),
    "maze": dict(size=9, episode_steps=250, reward_value=10.0, wall_penalty=0.1, gamma=0.9, prev_action_input=False,
                 time_input="steps", reward_excludes_centre=False, teleport_excludes_reward=False),
    "maze13": dict(size=13, episode_steps=200, reward_value=10.0, wall_penalty=0.0, gamma=0.9, prev_action_input=True,
                   time_input="fraction", reward_excludes_centre=True, teleport_excludes_reward=True),
    "cue": dict(n_cues=4, cue_bits=20, cues_per_trial=2, trial_min=5, trial_max=8, episode_steps=120,
                reward_correct=1.0, reward_wrong=-1.0, action_penalty=0.0, gamma=0.9),
}

UNSET = "unset"  # a field the reduction leaves to TrainConfig's default

#: CPU reductions: the paper id they reduce, and what they change of its training settings
REDUCTIONS = {
    "images-cpu": ("images", {"lr": 1e-3}),
    "maze-cpu": ("maze", {"lr": 1e-3}),
    "maze13-cpu": ("maze13", {"lr": 1e-3, "batch": 16}),
    "oneshot-cpu": ("oneshot", {"lr": 1e-3, "batch": 16, "lr_decay": 0.5, "lr_decay_every": 5000}),
    "cue-small": ("cue", {"lr": 1e-3, "batch": 16, "entropy_kind": "shannon", "entropy_coef": 0.03,
                          "value_coef": UNSET}),
    "cue-cpu": ("cue", {"lr": 1e-3, "batch": 16}),
}

#: reductions that also shrink the task itself, with the fields they change
TASK_REDUCTIONS = {
    "images-cpu": {"patch_size": 16},
    "cue-small": {"n_cues": 2, "cue_bits": 10, "cues_per_trial": 1, "trial_min": 4, "trial_max": 6,
                  "episode_steps": 60, "success_threshold": 6.0},
    "cue-cpu": {"cue_bits": 10, "episode_steps": 80, "success_threshold": 6.0},
}


def test_paper_ids_and_reductions_cover_the_registry() -> None:
    assert set(PAPER_TRAIN) | set(REDUCTIONS) == set(TASKS)
    assert {k: s.reduces for k, s in TASKS.items() if s.reduces} == {k: v[0] for k, v in REDUCTIONS.items()}


@pytest.mark.parametrize("task", list(PAPER_TRAIN))
def test_paper_training_settings(task: str) -> None:
    assert recommended(task) == PAPER_TRAIN[task]
    for model in ("rate-hebb", "rnn", "lstm", "backpropamine", "snn-stdp"):
        assert recommended(task, model) == {**PAPER_TRAIN[task], **PER_MODEL.get((task, model), {})}, model


@pytest.mark.parametrize("task", list(PAPER_CONFIG))
def test_paper_task_configs(task: str) -> None:
    cfg = TASKS[task].config
    assert {k: getattr(cfg, k) for k in PAPER_CONFIG[task]} == PAPER_CONFIG[task]


@pytest.mark.parametrize("task", list(REDUCTIONS))
def test_reductions_change_only_what_they_list(task: str) -> None:
    parent, changes = REDUCTIONS[task]
    expect = {k: v for k, v in {**PAPER_TRAIN[parent], **changes}.items() if v != UNSET}
    assert recommended(task) == expect
    for model in ("rnn", "snn-stdp"):
        assert recommended(task, model) == {**expect, **PER_MODEL.get((task, model), {})}
    expect_cfg = {**dataclasses.asdict(TASKS[parent].config), **TASK_REDUCTIONS.get(task, {})}
    assert dataclasses.asdict(TASKS[task].config) == expect_cfg


def test_cue_cpu_needs_evidence_from_several_trials() -> None:
    """cue-cpu keeps the paper's 4 cues with 2 per trial (a rewarded trial leaves 2 candidates) and
    its loss settings; cue-small shows 1 of 2 (one trial identifies the target)."""
    cpu, paper = TASKS["cue-cpu"].config, TASKS["cue"].config
    assert (cpu.n_cues, cpu.cues_per_trial) == (paper.n_cues, paper.cues_per_trial) == (4, 2)
    for k in ("entropy_kind", "entropy_coef", "value_coef", "adam_eps", "clip"):
        assert recommended("cue-cpu")[k] == recommended("cue")[k], k


def test_reproduction_doc_lists_every_id() -> None:
    """Every task id has rows in docs/REPRODUCTION.md's tables (first column), every CPU reduction
    one saying which paper id it reduces."""
    text = DOC.read_text()
    first_column = set(re.findall(r"^\| ([a-z0-9-]+) \|", text, flags=re.M)) - {"task"}
    assert first_column == set(TASKS)
    for task, (parent, _) in REDUCTIONS.items():
        assert re.search(rf"^\| {task} \| reduces \| `{parent}` \|", text, flags=re.M), task
