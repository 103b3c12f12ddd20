"""Interfaces shared by every task and every model on the meta-training harness.

A *task* generates batched episodes; a *model* is stepped through an episode one time step
at a time, so supervised tasks (a fixed input sequence) and RL tasks (inputs that depend on
the agent's actions) drive models the same way:

    state = model.initial_state(batch)
    for t in range(T):
        out, state = model.step(x[t], state)      # x[t]: [B, n_in] -> out: [B, n_out]

Models own all learnable parameters (fixed weights, plasticity coefficients, rule parameters,
modulation weights); the plastic part of a weight matrix lives in ``state`` (per episode, per
batch element), never in ``.data``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["Episode", "EpisodeModel", "SupervisedTask", "RLTask", "Task", "run_supervised"]


@dataclass(frozen=True)
class Episode:
    """A batch of supervised episodes.

    Attributes:
        inputs: ``[T, B, n_in]`` float rate-coded inputs (spiking models encode them).
        targets: task-specific target tensor (e.g. ``[B, n_out]`` for the final step).
        mask: optional ``[T, B]`` bool, steps whose outputs enter the loss.
        info: free-form extras (e.g. which pattern was degraded), tensors or python values.
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor | None = None
    info: dict[str, Any] | None = None


class EpisodeModel(nn.Module, ABC):
    """A model that can be stepped through an episode (rate or spiking, plastic or not)."""

    n_in: int
    n_out: int

    @abstractmethod
    def initial_state(self, batch: int) -> Any:
        """Fresh per-episode state (plastic weights start at zero) on the model's device/dtype."""

    @abstractmethod
    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One time step: ``x`` is ``[B, n_in]``; returns ``([B, n_out], new_state)``."""

    def forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Run a whole input sequence ``[T, B, n_in]``; returns outputs ``[T, B, n_out]`` and the final state."""
        if state is None:
            state = self.initial_state(inputs.shape[1])
        outs = []
        for t in range(inputs.shape[0]):
            y, state = self.step(inputs[t], state)
            outs.append(y)
        return torch.stack(outs), state


class SupervisedTask(ABC):
    """A task whose inputs do not depend on the model's outputs."""

    name: str
    kind: Literal["supervised"] = "supervised"
    n_in: int
    n_out: int
    T: int
    #: metric value that counts as "solved" (compared with ``higher_is_better``)
    success_threshold: float
    higher_is_better: bool = False

    @abstractmethod
    def sample(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Episode:
        """Draw ``batch`` independent episodes (deterministic given ``generator``)."""

    @abstractmethod
    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        """Scalar training loss from model outputs ``[T, B, n_out]``."""

    @abstractmethod
    def metric(self, outputs: Tensor, episode: Episode) -> float:
        """Task metric (e.g. bit error fraction, accuracy) for logging and comparison."""


class RLTask(ABC):
    """A task whose observations depend on the agent's actions (trained with A2C by the harness).

    The environment is batched and lives in torch tensors:
        obs = env.reset(batch, generator, device)          # [B, n_in]
        obs, reward, done = env.step(action)              # action: [B] long; reward: [B]
    The model's output is ``[B, n_actions + 1]``: policy logits then a value estimate.
    """

    name: str
    kind: Literal["rl"] = "rl"
    n_in: int
    n_actions: int
    T: int
    gamma: float
    success_threshold: float
    higher_is_better: bool = True

    @property
    def n_out(self) -> int:
        return self.n_actions + 1

    @abstractmethod
    def reset(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
        """Start ``batch`` new episodes; returns the first observation ``[B, n_in]``."""

    @abstractmethod
    def step(self, action: Tensor) -> tuple[Tensor, Tensor]:
        """Apply actions ``[B]``; returns ``(next_obs [B, n_in], reward [B])``."""


Task = SupervisedTask | RLTask


def run_supervised(model: EpisodeModel, episode: Episode) -> Tensor:
    """Step ``model`` through ``episode.inputs``; returns outputs ``[T, B, n_out]``."""
    outputs, _ = model(episode.inputs)
    return outputs
