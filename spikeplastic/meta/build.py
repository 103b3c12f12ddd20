"""A run's task and model from the ids in its :class:`~spikeplastic.meta.config.TrainConfig`.

Ids are resolved by the registries' own functions, :func:`spikeplastic.tasks.make_task` and
:func:`spikeplastic.models.make_model` (also ``spikeplastic.make_task`` / ``spikeplastic.make_model``);
this module applies them to a config, for the trainer (when it is not handed the objects), the
``compare`` worker and checkpoint replay. The model registry is imported on first use, so importing the trainer does not
load the models.
"""
from __future__ import annotations

import torch

from ..protocol import EpisodeModel, RLTask, SupervisedTask
from .config import TrainConfig

__all__ = ["build_task", "build_model"]


def build_task(config: TrainConfig) -> SupervisedTask | RLTask:
    """``make_task(config.task, **config.task_kwargs)`` (tasks imported lazily)."""
    from ..tasks import make_task

    return make_task(config.task, **config.task_kwargs)


def build_model(config: TrainConfig, task: SupervisedTask | RLTask) -> EpisodeModel:
    """``make_model(config.model, task, **config.model_kwargs)`` after ``torch.manual_seed(config.seed)``."""
    from ..models import make_model

    torch.manual_seed(config.seed)
    return make_model(config.model, task, **config.model_kwargs)
