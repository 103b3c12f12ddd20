"""A run's task and model from the ids in its :class:`~spikeplastic.meta.config.TrainConfig`.

Ids are resolved by the registries' own functions, :func:`spikeplastic.tasks.make_task` and
:func:`spikeplastic.models.make_model` (also ``spikeplastic.make_task`` / ``spikeplastic.make_model``);
this module applies them to a config, for the trainer (when it is not handed the objects), the
``compare`` worker, held-out evaluation and checkpoint replay. The model registry is imported on
first use, so importing the trainer does not load the models.

A task config with a ``split_seed`` field (``oneshot``: its random train/test class split) gets the
run's seed there unless the run's ``task_kwargs`` set it (:func:`run_task_kwargs`): each run holds
out its own classes, and rebuilding the task from the run's config gives the same split again.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from ..protocol import EpisodeModel, RLTask, SupervisedTask
from .config import TrainConfig

__all__ = ["build_task", "build_model", "run_task_kwargs", "SPLIT_SEED_FIELD"]

#: the task config field bound to the run's seed (:func:`run_task_kwargs`)
SPLIT_SEED_FIELD = "split_seed"


def run_task_kwargs(task: str, task_kwargs: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """``task_kwargs`` plus ``split_seed=seed`` when the registry task ``task`` has that config field
    and ``task_kwargs`` leaves it unset (unknown ids: ``task_kwargs`` unchanged)."""
    from ..tasks import TASKS

    kw = dict(task_kwargs)
    spec = TASKS.get(task)
    if spec is not None and SPLIT_SEED_FIELD not in kw and any(
            f.name == SPLIT_SEED_FIELD for f in dataclasses.fields(spec.config)):
        kw[SPLIT_SEED_FIELD] = seed
    return kw


def build_task(config: TrainConfig) -> SupervisedTask | RLTask:
    """``make_task(config.task, **run_task_kwargs(...))`` (tasks imported lazily)."""
    from ..tasks import make_task

    return make_task(config.task, **run_task_kwargs(config.task, config.task_kwargs, config.seed))


def build_model(config: TrainConfig, task: SupervisedTask | RLTask) -> EpisodeModel:
    """``make_model(config.model, task, **config.model_kwargs)`` after ``torch.manual_seed(config.seed)``."""
    from ..models import make_model

    torch.manual_seed(config.seed)
    return make_model(config.model, task, **config.model_kwargs)
