"""Episode-based meta-training: protocol, trainer, checkpoints, metrics, devices, comparisons.

Public API::

    from spikeplastic.meta import TrainConfig, evaluate, train
    result = train(TrainConfig(task="pattern", model="rate-hebb", episodes=500, out="runs/p"))
    held_out = evaluate("runs/p", episodes=1000)      # EvalResult: metric, 95% CI, per-episode values

The task/model interfaces (:class:`Episode`, :class:`EpisodeModel`, :class:`SupervisedTask`,
:class:`RLTask`) live in :mod:`spikeplastic.protocol`, below the tasks, models and this package;
they are re-exported here (and from :mod:`.protocol`, their old home).
Modules: :mod:`.config` (:class:`TrainConfig`),
:mod:`.trainer` (:func:`train`, :class:`Trainer`), :mod:`.heldout` (:func:`evaluate`: a run's network on
held-out episodes and data, with 95% CIs), :mod:`.episodes` (supervised loss and A2C),
:mod:`.checkpoint`, :mod:`.metrics`, :mod:`.devices`, :mod:`.distributed` (``torchrun``),
:mod:`.compare` (multi-model, multi-seed runs), :mod:`.plot` (rasters and weight traces),
:mod:`.replay` (a checkpoint's model and its task's encoded episodes, e.g. for verification),
:mod:`.build` (a config's task and model from their ids), and the outer loops besides BPTT:
:mod:`.es` (evolution strategies, ``outer="es"``) and :mod:`.eprop` (e-prop, ``outer="eprop"``).
Task and model ids are resolved by :mod:`.build` (with the registries' ``make_task``/``make_model``);
the trainer also takes the objects themselves. This package imports the task registry (for each
task's training defaults, :func:`recommended`) but not the models at import time; the tasks, the
baselines and the models never import it (they import :mod:`spikeplastic.protocol`), so importing
them does not load the trainer.
"""
from ..protocol import LEAN_MODES, Episode, EpisodeModel, RLTask, SupervisedTask, Task, run_supervised
from .checkpoint import CheckpointError, load_checkpoint, load_ir
from .config import TASK_DEFAULTS, TrainConfig, recommended
from .devices import resolve_device
from .episodes import a2c_episode, discounted_returns, supervised_episode
from .heldout import EvalResult, evaluate, read_result
from .metrics import read_metrics
from .trainer import Trainer, TrainingError, TrainResult, World, count_parameters, train

__all__ = [
    "Episode",
    "EpisodeModel",
    "RLTask",
    "SupervisedTask",
    "Task",
    "run_supervised",
    "LEAN_MODES",
    "TrainConfig",
    "TASK_DEFAULTS",
    "recommended",
    "Trainer",
    "TrainResult",
    "World",
    "train",
    "evaluate",
    "EvalResult",
    "read_result",
    "TrainingError",
    "CheckpointError",
    "count_parameters",
    "resolve_device",
    "supervised_episode",
    "a2c_episode",
    "discounted_returns",
    "load_checkpoint",
    "load_ir",
    "read_metrics",
]
