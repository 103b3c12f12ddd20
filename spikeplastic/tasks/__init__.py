"""Literature tasks (Miconi et al. 2018, 2019) and spike encoders.

Registry::

    task = make_task("pattern")                       # the 1000-bit pattern task
    task = make_task("oneshot", root="/data/omniglot")  # config fields as keyword overrides

Ids: ``pattern``, ``pattern50``, ``images``, ``oneshot``, ``maze``, ``maze13``, ``cue``, ``cue-small``.

Each id's :class:`TaskSpec` in :data:`TASKS` is that task's one place of settings: its preset config,
its class, its outer-loop training defaults (:class:`TrainDefaults`, read by
:func:`spikeplastic.meta.config.recommended`, the CLI and :mod:`spikeplastic.meta.compare`) and the
config field that the CLI's ``--data`` sets.
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
from .synth_omniglot import make_synthetic_omniglot, synthetic_alphabets

__all__: list[str] = [
    "TASKS",
    "TaskSpec",
    "TrainDefaults",
    "make_task",
    # pattern
    "PatternConfig", "PatternTask", "PATTERN", "PATTERN50",
    # images
    "ImageConfig", "ImageTask", "IMAGES", "load_cifar10", "load_skimage_gray", "normalize_images", "occluded_mse",
    # one-shot
    "OneShotConfig", "OneShotTask", "ONESHOT", "ClassImages", "load_omniglot", "load_digits_classes",
    "make_synthetic_omniglot", "synthetic_alphabets",
    # RL
    "MazeConfig", "MazeTask", "MazeState", "MAZE", "MAZE13", "maze_walls",
    "CueConfig", "CueTask", "CueState", "CUE", "CUE_SMALL",
    # encoders
    "SpikeEncoder", "RateEncoder", "LatencyEncoder", "DirectCurrent", "Signed",
]


@dataclass(frozen=True, kw_only=True)
class TrainDefaults:
    """A task's outer-loop training defaults (the papers' settings where they exist).

    ``lr`` (Adam learning rate) and ``batch`` (episodes per optimiser step) are always set; the other
    fields are :class:`~spikeplastic.meta.config.TrainConfig` fields that a task may set, ``None``
    meaning "not set by the task" (the config's own default applies: ``clip`` 10, Shannon penalty
    0.03, Adam ``eps`` 1e-8). The CLI and :mod:`spikeplastic.meta.compare` use them where not given
    explicitly (:func:`spikeplastic.meta.config.recommended`); :class:`TrainConfig` itself has
    task-independent defaults. ``TrainDefaults()`` is what a task without its own gets.
    """

    lr: float = 3e-4
    batch: int = 1
    clip: float | None = None
    entropy_kind: str | None = None
    entropy_coef: float | None = None
    adam_eps: float | None = None

    def as_dict(self) -> dict[str, float | int | str]:
        """The fields the task sets (``lr``, ``batch`` and those not ``None``), in field order."""
        return {f.name: v for f in dataclasses.fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class TaskSpec:
    """A registry entry: the preset config, the task class built from it, the task's training
    defaults and the config field naming its dataset folder (``None``: the task reads none)."""

    config: Any
    factory: Callable[..., SupervisedTask | RLTask]
    train: TrainDefaults = TrainDefaults()
    data_field: str | None = None


# Training defaults: Miconi et al. 2018: pattern lr 3e-4 batch 1, images lr 1e-4; Backpropamine 2019:
# batch 30 for the RL tasks; cue: the original Backpropamine cue-reward runs' A2C settings
# (gradient-norm clip 2.0, Simpson diversity penalty 0.1, Adam eps 1e-6).
TASKS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        "pattern": TaskSpec(PATTERN, PatternTask, TrainDefaults(lr=3e-4, batch=1)),
        "pattern50": TaskSpec(PATTERN50, PatternTask, TrainDefaults(lr=3e-4, batch=1)),
        "images": TaskSpec(IMAGES, ImageTask, TrainDefaults(lr=1e-4, batch=1), data_field="cifar_root"),
        "oneshot": TaskSpec(ONESHOT, OneShotTask, TrainDefaults(lr=3e-5, batch=1), data_field="root"),
        "maze": TaskSpec(MAZE, MazeTask, TrainDefaults(lr=1e-4, batch=30)),
        "maze13": TaskSpec(MAZE13, MazeTask, TrainDefaults(lr=1e-4, batch=30)),
        "cue": TaskSpec(CUE, CueTask, TrainDefaults(lr=1e-4, batch=30, clip=2.0, entropy_kind="simpson",
                                                    entropy_coef=0.1, adam_eps=1e-6)),
        # the reduced cue task: settings under which backpropamine learned it on a 2-core CPU (README)
        "cue-small": TaskSpec(CUE_SMALL, CueTask, TrainDefaults(lr=1e-3, batch=16, clip=2.0, entropy_kind="shannon",
                                                                entropy_coef=0.03, adam_eps=1e-6)),
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
