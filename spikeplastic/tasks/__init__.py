"""Literature tasks (Miconi et al. 2018, 2019) and spike encoders.

Registry::

    task = make_task("pattern")                       # the 1000-bit pattern task
    task = make_task("oneshot", root="/data/omniglot")  # config fields as keyword overrides

Ids: ``pattern``, ``pattern50``, ``images``, ``oneshot``, ``maze``, ``maze13``, ``cue``, ``cue-small``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..protocol import RLTask, SupervisedTask
from .cue import CUE, CUE_SMALL, CueConfig, CueState, CueTask
from .encoders import DirectCurrent, LatencyEncoder, RateEncoder, Signed, SpikeEncoder
from .images import IMAGES, ImageConfig, ImageTask, load_cifar10, load_skimage_gray, normalize_images, occluded_mse
from .maze import MAZE, MAZE13, MazeConfig, MazeState, MazeTask, maze_walls
from .oneshot import ONESHOT, ClassImages, OneShotConfig, OneShotTask, load_digits_classes, load_omniglot
from .pattern import PATTERN, PATTERN50, PatternConfig, PatternTask

__all__: list[str] = [
    "TASKS",
    "TaskSpec",
    "make_task",
    # pattern
    "PatternConfig", "PatternTask", "PATTERN", "PATTERN50",
    # images
    "ImageConfig", "ImageTask", "IMAGES", "load_cifar10", "load_skimage_gray", "normalize_images", "occluded_mse",
    # one-shot
    "OneShotConfig", "OneShotTask", "ONESHOT", "ClassImages", "load_omniglot", "load_digits_classes",
    # RL
    "MazeConfig", "MazeTask", "MazeState", "MAZE", "MAZE13", "maze_walls",
    "CueConfig", "CueTask", "CueState", "CUE", "CUE_SMALL",
    # encoders
    "SpikeEncoder", "RateEncoder", "LatencyEncoder", "DirectCurrent", "Signed",
]


@dataclass(frozen=True)
class TaskSpec:
    """A registry entry: the preset config and the task class built from it."""

    config: Any
    factory: Callable[..., SupervisedTask | RLTask]


TASKS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        "pattern": TaskSpec(PATTERN, PatternTask),
        "pattern50": TaskSpec(PATTERN50, PatternTask),
        "images": TaskSpec(IMAGES, ImageTask),
        "oneshot": TaskSpec(ONESHOT, OneShotTask),
        "maze": TaskSpec(MAZE, MazeTask),
        "maze13": TaskSpec(MAZE13, MazeTask),
        "cue": TaskSpec(CUE, CueTask),
        "cue-small": TaskSpec(CUE_SMALL, CueTask),
    }
)


def make_task(name: str, **overrides: Any) -> SupervisedTask | RLTask:
    """Build the task ``name`` from its preset config with fields replaced by ``overrides``.

    Raises:
        ValueError: unknown ``name`` (the message lists the valid ids).
        TypeError: override keys that are not fields of the task's config (named in the message).
    """
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown task {name!r}; valid ids: {sorted(TASKS)}")
    spec = TASKS[name]
    fields = {f.name for f in dataclasses.fields(spec.config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown config key(s) {unknown} for task {name!r}; valid keys: {sorted(fields)}")
    config = dataclasses.replace(spec.config, **overrides)
    return spec.factory(config, name=name)
