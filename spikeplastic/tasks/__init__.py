"""Literature tasks (Miconi et al. 2018, 2019) and spike encoders.

Registry::

    task = make_task("pattern")                       # the 1000-bit pattern task
    task = make_task("oneshot", root="/data/omniglot")  # config fields as keyword overrides

Ids: the papers' tasks with the original code's settings ``pattern``, ``pattern50``, ``images``,
``oneshot``, ``maze`` (2018), ``maze13`` (Backpropamine), ``cue``; and CPU reductions of them
(``TaskSpec.reduces``) ``images-cpu``, ``maze-cpu``, ``maze13-cpu``, ``cue-small``, ``cue-cpu``, ``oneshot-cpu``. ``docs/REPRODUCTION.md`` lists
every setting with its source and every difference.

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
from .cue import CUE, CUE_CPU, CUE_SMALL, CueConfig, CueState, CueTask
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
    "CueConfig", "CueTask", "CueState", "CUE", "CUE_CPU", "CUE_SMALL",
    # encoders
    "SpikeEncoder", "RateEncoder", "LatencyEncoder", "DirectCurrent", "Signed",
]


@dataclass(frozen=True, kw_only=True)
class TrainDefaults:
    """A task's outer-loop training defaults (the papers' settings where they exist).

    ``lr`` (Adam learning rate) and ``batch`` (episodes per optimiser step) are always set; the other
    fields are :class:`~spikeplastic.meta.config.TrainConfig` fields that a task may set, ``None``
    meaning "not set by the task" (the config's own default applies: ``clip`` 10, Shannon penalty
    0.03, value weight 0.1, Adam ``eps`` 1e-8, constant ``lr``). ``clip=0`` means *no* clipping
    (the originals clip none on the supervised tasks; ``TrainConfig(clip=None)``, the CLI's
    ``--clip 0``). ``models`` maps a model id to replacements of these fields for that model (the
    original ran some controls with other settings, e.g. ``pattern50``'s RNN and LSTM at lr 3e-5).
    The CLI and :mod:`spikeplastic.meta.compare` use them where not given explicitly
    (:func:`spikeplastic.meta.config.recommended`). ``TrainDefaults()`` is what a task without its
    own gets.
    """

    lr: float = 3e-4
    batch: int = 1
    clip: float | None = None
    entropy_kind: str | None = None
    entropy_coef: float | None = None
    value_coef: float | None = None
    adam_eps: float | None = None
    lr_decay: float | None = None
    lr_decay_every: int | None = None
    models: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.models, Mapping):
            raise TypeError(f"models: expected a mapping {{model id: {{field: value}}}}, got {self.models!r}")
        names = {f.name for f in dataclasses.fields(self)} - {"models"}
        for model, fields in self.models.items():
            if not isinstance(model, str) or not isinstance(fields, Mapping):
                raise TypeError(f"models: expected {{model id (str): {{field: value}}}}, got {model!r}: {fields!r}")
            unknown = sorted(set(fields) - names)
            if unknown:
                raise TypeError(f"models[{model!r}]: unknown field(s) {unknown}; valid: {sorted(names)}")
        frozen = {m: MappingProxyType(dict(f)) for m, f in self.models.items()}
        object.__setattr__(self, "models", MappingProxyType(frozen))

    def as_dict(self, model: str | None = None) -> dict[str, float | int | str | None]:
        """The fields the task sets (``lr``, ``batch`` and those not ``None``), in field order, with
        ``model``'s replacements applied, as :class:`TrainConfig` takes them (``clip=0`` -> ``None``)."""
        d: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "models"}
        if model is not None:
            d.update(self.models.get(model, {}))
        d = {k: v for k, v in d.items() if v is not None}
        if d.get("clip") == 0:
            d["clip"] = None
        return d


@dataclass(frozen=True)
class TaskSpec:
    """A registry entry: the preset config, the task class built from it, the task's training
    defaults, the config field naming its dataset folder (``None``: the task reads none) and, for a
    CPU reduction, the paper id it reduces (``None``: a paper's own setting)."""

    config: Any
    factory: Callable[..., SupervisedTask | RLTask]
    train: TrainDefaults = TrainDefaults()
    data_field: str | None = None
    reduces: str | None = None


# Each paper id carries the original code's settings; docs/REPRODUCTION.md lists each one with its
# source (file and line of uber-research/differentiable-plasticity = "DP" and
# uber-research/backpropamine = "BPA") and every difference. clip=0: no gradient clipping.
#   pattern:   DP simple/simple.py:44 (Adam lr 3e-4, one episode per step, no clipping)
#   pattern50: DP simple/README.md:15-17 (plastic lr 3e-4; non-plastic RNN and LSTM lr 3e-5)
#   images:    DP images/images.py:67 (lr 1e-4), no clipping
#   oneshot:   DP omniglot/README.md:10, omniglot.py:299-301 (lr 3e-5, StepLR x0.666 every 1e6 episodes)
#   maze:      DP maze/maze.py:253 (Adam eps 1e-4), 495-496 (Simpson 0.1, value 0.03), 507 (lr 1e-4), batch 1
#   maze13:    BPA maze/request_modul.json (batch.py --bs 30 --gc 4.0 --bent 0.03 --blossv 0.1 --lr 1e-4),
#              batch.py:301 (Adam eps 1e-4), 463 (Simpson)
#   cue:       BPA sr/README.md (srbatch.py --bs 30 --gc 2.0 --bent 0.1 --eps 1e-6 --lr 1e-4), srbatch.py:566
#              (value 0.1)
_SIMPSON = "simpson"
#: our spiking models have no paper setting: where a paper's preset clips none they keep the gradient-norm
#: clip 10 under which their results were measured (docs/STABILITY.md: rare gradient spikes on long episodes)
_SNN_CLIP: Mapping[str, Mapping[str, Any]] = {m: {"clip": 10.0} for m in ("snn-stdp", "snn-stdp-mod", "snn-static",
                                                                  "snn-np")}
_MAZE = TrainDefaults(lr=1e-4, batch=1, clip=0, entropy_kind=_SIMPSON, entropy_coef=0.1, value_coef=0.03,
                      adam_eps=1e-4, models=_SNN_CLIP)
_MAZE13 = TrainDefaults(lr=1e-4, batch=30, clip=4.0, entropy_kind=_SIMPSON, entropy_coef=0.03, value_coef=0.1,
                        adam_eps=1e-4)
TASKS: Mapping[str, TaskSpec] = MappingProxyType(
    {
        "pattern": TaskSpec(PATTERN, PatternTask, TrainDefaults(lr=3e-4, batch=1, clip=0, models=_SNN_CLIP)),
        "pattern50": TaskSpec(PATTERN50, PatternTask, TrainDefaults(
            lr=3e-4, batch=1, clip=0, models={"rnn": {"lr": 3e-5}, "lstm": {"lr": 3e-5}, **_SNN_CLIP})),
        "images": TaskSpec(IMAGES, ImageTask, TrainDefaults(lr=1e-4, batch=1, clip=0, models=_SNN_CLIP),
                           data_field="cifar_root"),
        "oneshot": TaskSpec(ONESHOT, OneShotTask, TrainDefaults(lr=3e-5, batch=1, clip=0, lr_decay=0.666,
                                                                lr_decay_every=1_000_000, models=_SNN_CLIP),
                            data_field="root"),
        "maze": TaskSpec(MAZE, MazeTask, _MAZE),
        "maze13": TaskSpec(MAZE13, MazeTask, _MAZE13),
        "cue": TaskSpec(CUE, CueTask, TrainDefaults(lr=1e-4, batch=30, clip=2.0, entropy_kind=_SIMPSON,
                                                    entropy_coef=0.1, value_coef=0.1, adam_eps=1e-6)),
        # CPU reductions (docs/REPRODUCTION.md says what each reduces and why). maze-cpu, maze13-cpu: the
        # paper's task and loss settings, smaller nets (spikeplastic.models.RL_HIDDEN / MODEL_HIDDEN) and
        # lr 1e-3 (maze13-cpu: batch 16), as cue-small; starting points, not yet measured to learn.
        "maze-cpu": TaskSpec(MAZE, MazeTask, dataclasses.replace(_MAZE, lr=1e-3), reduces="maze"),
        "maze13-cpu": TaskSpec(MAZE13, MazeTask, dataclasses.replace(_MAZE13, lr=1e-3, batch=16), reduces="maze13"),
        # one-shot on a CPU (issue 12): 16 episodes per Adam step at lr 1e-3 halved every 5000 steps
        # (snn-oneshot: lr 3e-4 halved every 8000; at 1e-3 it collapsed to chance in a probe); measured on
        # alphabet-disjoint synthetic data (examples/results/oneshot_synth), docs/REPRODUCTION.md
        "oneshot-cpu": TaskSpec(ONESHOT, OneShotTask, TrainDefaults(
            lr=1e-3, batch=16, clip=0, lr_decay=0.5, lr_decay_every=5000,
            models={**_SNN_CLIP, "snn-oneshot": {"lr": 3e-4, "lr_decay_every": 8000}}), data_field="root",
            reduces="oneshot"),
        # images on a CPU: 16x16 patches (257 units, 16x fewer synapses), the paper's schedule (T = 201),
        # lr 1e-3 (pilot, rate-hebb, 300 episodes: trailing-50 error 0.75 at 1e-4, 0.56 at 1e-3); CIFAR-10
        # (32x32) needs the paper's id
        "images-cpu": TaskSpec(dataclasses.replace(IMAGES, patch_size=16), ImageTask,
                               TrainDefaults(lr=1e-3, batch=1, clip=0, models=_SNN_CLIP), reduces="images"),
        # the reduced cue task: settings under which backpropamine learned it on a 2-core CPU (README)
        "cue-small": TaskSpec(CUE_SMALL, CueTask, TrainDefaults(lr=1e-3, batch=16, clip=2.0, entropy_kind="shannon",
                                                                entropy_coef=0.03, adam_eps=1e-6), reduces="cue"),
        # a cue reduction that still needs evidence from several trials (4 cues, 2 per trial: issue 16):
        # the paper's loss settings (Simpson 0.1, value 0.1, eps 1e-6, clip 2), cue-small's lr and batch
        "cue-cpu": TaskSpec(CUE_CPU, CueTask, TrainDefaults(lr=1e-3, batch=16, clip=2.0, entropy_kind=_SIMPSON,
                                                            entropy_coef=0.1, value_coef=0.1, adam_eps=1e-6),
                            reduces="cue"),
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
