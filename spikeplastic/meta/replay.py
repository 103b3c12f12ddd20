"""A trained model rebuilt from its checkpoint, and its task's episodes as its network sees them.

The checkpoint records the task and the model configuration (``TrainConfig``); :func:`load_model`
rebuilds both and loads the trained weights. :func:`network_inputs` draws episodes of that task
(RL tasks: rolled out with the trained model, sampling its actions) and encodes them with the
model's own encoder, frame by frame as :meth:`~spikeplastic.models.SpikingModel.step` does: the
result is what the exported :class:`~spikeplastic.Network` receives in each episode, so a
verification run on it exercises the network in the regime it was trained for, each episode from
a fresh state (``spikeplastic verify``/``export`` use it).

Example::

    >>> from spikeplastic.meta.replay import network_inputs
    >>> ti = network_inputs("runs/p50/checkpoint.pt", episodes=10)       # doctest: +SKIP
    >>> ti.x.shape, ti.describe()                                        # doctest: +SKIP
    ((10, 11, 50), 'task pattern50: 10 episodes x 11 steps, seed 0')
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..protocol import EpisodeModel, RLTask
from .build import build_task
from .checkpoint import load_checkpoint
from .config import TrainConfig

__all__ = ["TaskInputs", "load_model", "episode_inputs", "network_inputs"]


@dataclass(frozen=True)
class TaskInputs:
    """Encoded task episodes: ``x`` ``[episodes, steps_per_episode, n_enc]`` (float64), one row per episode."""

    x: np.ndarray
    task: str
    episodes: int
    steps_per_episode: int
    seed: int

    def describe(self) -> str:
        """One line saying where the inputs come from."""
        ep = "episode" if self.episodes == 1 else "episodes"
        return f"task {self.task}: {self.episodes} {ep} x {self.steps_per_episode} steps, seed {self.seed}"


def load_model(path_or_checkpoint: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[EpisodeModel, Any, TrainConfig]:
    """``(model, task, config)`` of a checkpoint (path, run folder or loaded dict); the model is in eval mode.

    The caller's global torch RNG is left untouched (building a model draws initial weights).
    """
    from ..models import make_model

    ck = path_or_checkpoint if isinstance(path_or_checkpoint, Mapping) else load_checkpoint(path_or_checkpoint)
    if "config" not in ck or "model_state" not in ck:
        raise ValueError("the checkpoint has no 'config'/'model_state' (expected one written by 'spikeplastic train')")
    cfg = TrainConfig.from_dict(ck["config"])
    task = build_task(cfg)
    with torch.random.fork_rng(devices=[]):
        model = make_model(cfg.model, task, **cfg.model_kwargs)
    model.load_state_dict(ck["model_state"])
    model.eval()
    return model, task, cfg


def episode_inputs(model: EpisodeModel, task: Any, episodes: int = 1, seed: int = 0) -> torch.Tensor:
    """Task inputs ``[T, episodes, n_in]`` of ``episodes`` episodes drawn with seed ``seed``.

    Supervised tasks: ``task.sample``. RL tasks: observations of a rollout in which ``model``
    acts (actions sampled from the softmax of its first ``n_actions`` outputs, seed ``seed + 1``).
    """
    g = torch.Generator().manual_seed(seed)
    if not isinstance(task, RLTask):
        return task.sample(episodes, g).inputs
    ag = torch.Generator().manual_seed(seed + 1)
    obs = task.reset(episodes, g)
    state = model.initial_state(episodes)
    xs = []
    with torch.no_grad():
        for _ in range(task.T):
            xs.append(obs)
            out, state = model.step(obs, state)
            p = torch.softmax(out[:, : task.n_actions], dim=-1)
            a = torch.multinomial(p, 1, generator=ag).squeeze(1)
            obs, _ = task.step(a)
    return torch.stack(xs)


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def network_inputs(
    path_or_checkpoint: str | os.PathLike[str] | Mapping[str, Any],
    *,
    episodes: int | None = None,
    min_steps: int = 200,
    max_episodes: int | None = None,
    seed: int = 0,
) -> TaskInputs:
    """Episodes of the checkpoint's own task, encoded by its model (no batch dim).

    Args:
        path_or_checkpoint: checkpoint file, run folder or a loaded checkpoint dict of a spiking
            model (``snn-*``: a :class:`~spikeplastic.models.SpikingModel`, or ``snn-oneshot``, whose conv
            features and spike encoder give its readout network's input).
        episodes: episodes to draw; default: the fewest whole episodes with ``>= min_steps``
            spiking steps in all, at most ``max_episodes`` (when given).
        min_steps, max_episodes: see ``episodes``. seed: episode seed (and, for stochastic
            encoders, the torch seed of the encoding; the caller's global RNG is restored afterwards).

    Returns: :class:`TaskInputs`, ``x`` ``[episodes, T * steps_per_frame, n_enc]`` float64.

    Raises:
        ValueError: not a spiking model's checkpoint, or a bad ``episodes``/``min_steps``/``seed``.
    """
    from ..models import SpikingModel

    min_steps = _check_count("min_steps", min_steps, 1)
    seed = _check_count("seed", seed, 0)
    if episodes is not None:
        episodes = _check_count("episodes", episodes, 1)
    if max_episodes is not None:
        max_episodes = _check_count("max_episodes", max_episodes, 1)
    model, task, cfg = load_model(path_or_checkpoint)
    streamed = callable(getattr(model, "encode_episode", None))  # snn-oneshot: torch front end -> network
    if not (isinstance(model, SpikingModel) or streamed):
        raise ValueError(f"task inputs need a spiking model (snn-*): the checkpoint holds {cfg.model!r}, "
                         "which wraps no spikeplastic Network")
    per_frame = int(model.frame) if streamed else int(model.encoder.steps_per_frame)
    per_episode = int(task.T) * per_frame
    n = episodes
    if n is None:
        n = max(1, math.ceil(min_steps / per_episode))
        n = n if max_episodes is None else min(n, max_episodes)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        if streamed:
            x = episode_inputs(model, task, n, seed)
            xs = model.encode_episode(x)[0]                                       # [S, n, n_net]
        else:
            x = episode_inputs(model, task, n, seed).to(model.network.dtype)
            # frame by frame, as SpikingModel.step encodes (same draws for the stochastic encoders)
            xs = torch.cat([model.encode(x[t:t + 1]) for t in range(x.shape[0])])   # [S, n, n_enc]
    return TaskInputs(x=xs.permute(1, 0, 2).double().cpu().numpy(), task=cfg.task, episodes=n,
                      steps_per_episode=int(xs.shape[0]), seed=seed)
