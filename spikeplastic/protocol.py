"""Interfaces shared by every task and every model on the meta-training harness (the episode protocol).

This module sits below the tasks, the baselines, the models and the trainer (all of which use it)
and imports nothing of theirs: only torch and :mod:`spikeplastic._validation`.
:mod:`spikeplastic.meta` re-exports its names (and :mod:`spikeplastic.meta.protocol`, the old
home, still does).

A *task* generates batched episodes; a *model* is stepped through an episode one time step
at a time, so supervised tasks (a fixed input sequence) and RL tasks (inputs that depend on
the agent's actions) drive models the same way:

    state = model.initial_state(batch)
    for t in range(T):
        out, state = model.step(x[t], state)      # x[t]: [B, n_in] -> out: [B, n_out]

Models own all learnable parameters (fixed weights, plasticity coefficients, rule parameters,
modulation weights); the plastic part of a weight matrix lives in ``state`` (per episode, per
batch element), never in ``.data``.

Whole-sequence forward and the lean path: ``model(inputs)`` (supervised episodes) runs the step
loop above, unless the model has a memory-lean whole-episode op (:mod:`spikeplastic.lean`) and
its ``lean`` setting selects it (:meth:`EpisodeModel.use_lean`): ``"auto"`` (default) = the lean
op when the model qualifies and gradients are enabled, else the step loop; ``"on"`` = the lean op
or a ``ValueError`` saying why the model does not qualify; ``"off"`` = always the step loop.
Models with a lean op: :class:`~spikeplastic.models.SpikingModel` (networks accepted by
:func:`spikeplastic.lean.check_network`) and :class:`~spikeplastic.baselines.PlasticRNN`
(``rule="hebb"``). RL episodes call ``step`` only, so they always use the step loop.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ._validation import check_state_batch, check_tensor

__all__ = ["Episode", "EpisodeModel", "SupervisedTask", "RLTask", "Task", "run_supervised", "LEAN_MODES", "check_lean"]

#: values of the ``lean`` setting (:attr:`EpisodeModel.lean`, :class:`~spikeplastic.meta.config.TrainConfig`, ``--lean``);
#: the setting belongs to the model interface, so its check lives here too
LEAN_MODES = ("auto", "on", "off")


def check_lean(value: Any, name: str = "lean") -> str:
    """``value`` if it is one of :data:`LEAN_MODES`, else ``ValueError`` naming ``name``."""
    if not isinstance(value, str) or value not in LEAN_MODES:
        raise ValueError(f"{name} must be one of {list(LEAN_MODES)}, got {value!r}")
    return value


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
    """A model that can be stepped through an episode (rate or spiking, plastic or not).

    ``lean`` (``"auto"`` | ``"on"`` | ``"off"``, default ``"auto"``; validated on assignment)
    chooses how :meth:`forward` runs a whole sequence (module docstring). Models with a lean
    whole-episode op override :meth:`lean_unsupported` and :meth:`lean_forward`.
    """

    n_in: int
    n_out: int

    @property
    def lean(self) -> str:
        """The lean-path setting: ``"auto"`` | ``"on"`` | ``"off"``."""
        return self.__dict__.get("_lean_mode", "auto")

    @lean.setter
    def lean(self, value: str) -> None:
        self.__dict__["_lean_mode"] = check_lean(value)

    def lean_unsupported(self) -> str | None:
        """Why this model's whole-sequence forward cannot run a lean op (``None``: it can)."""
        return (f"{type(self).__name__} has no memory-lean whole-episode op (only SpikingModel with a "
                "supported network and PlasticRNN(rule='hebb') have one)")

    def lean_forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """:meth:`forward` through the model's lean op (same outputs, final state and gradients)."""
        raise ValueError(f"lean path: {self.lean_unsupported()}")

    def use_lean(self, mode: str | None = None) -> bool:
        """Whether a whole-sequence forward now runs :meth:`lean_forward` under ``mode`` (default ``self.lean``).

        ``"off"``: never. ``"auto"``: when the model qualifies and ``torch.is_grad_enabled()``.
        ``"on"``: always; ``ValueError`` (naming ``lean`` and the reason) when the model does not qualify.
        """
        mode = self.lean if mode is None else check_lean(mode)
        if mode == "off":
            return False
        reason = self.lean_unsupported()
        if reason is not None:
            if mode == "on":
                raise ValueError(f"lean='on' but {type(self).__name__} cannot use the lean path: {reason}")
            return False
        return mode == "on" or torch.is_grad_enabled()

    @abstractmethod
    def initial_state(self, batch: int) -> Any:
        """Fresh per-episode state (plastic weights start at zero) on the model's device/dtype."""

    @abstractmethod
    def step(self, x: Tensor, state: Any) -> tuple[Tensor, Any]:
        """One time step: ``x`` is ``[B, n_in]``; returns ``([B, n_out], new_state)``."""

    def forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Run a whole input sequence ``[T, B, n_in]``; returns outputs ``[T, B, n_out]`` and the final state.

        Runs :meth:`lean_forward` instead of the step loop when :meth:`use_lean` says so.
        ``T`` and ``B`` must be >= 1 (``ValueError`` naming ``inputs`` otherwise); a given ``state``
        must be one for ``B`` samples (``ValueError`` naming ``state`` otherwise).
        """
        check_tensor("inputs", inputs, ndim=3, last_dim=self.n_in, finite=False, nonempty=True)
        if state is not None:
            check_state_batch("state", state, inputs.shape[1])
        if self.use_lean():
            return self.lean_forward(inputs, state)
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
    #: The disjoint data splits (sets of classes or images) that ``sample(..., split=...)`` accepts,
    #: ``("train", "test")`` where the task has them: the trainer samples ``"train"`` only, held-out
    #: evaluation ``"test"``. Empty (default): every episode draws new random data, and ``sample``
    #: takes no ``split`` (held out then means episodes from a seed stream training never uses).
    data_splits: tuple[str, ...] = ()
    #: ``True`` when one episode's metric is 0 or 1 (one answer, right or wrong) and the batch metric
    #: is their mean, as for a query accuracy: a held-out evaluation then reports a binomial interval.
    metric_is_binary: bool = False

    @abstractmethod
    def sample(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Episode:
        """Draw ``batch`` independent episodes (deterministic given ``generator``)."""

    def split_items(self, split: str) -> tuple[str, ...]:
        """Names of the data items (classes, source images, files) that ``split`` draws from; ``()``
        for a task without :attr:`data_splits`. Tasks with data splits override it."""
        return ()

    def describe_split(self, split: str) -> str:
        """One line saying what ``split`` holds (tasks with :attr:`data_splits` say more)."""
        if not self.data_splits:
            return "no data split: every episode draws new random data"
        items = self.split_items(split)
        shown = ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
        return f"{split} split: {len(items)} items ({shown})"

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
    #: index of the observation entry holding the previous step's reward (``None``: not observed);
    #: reward-driven rules (``snn-np``) read their third factor there
    reward_input: int | None = None

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
